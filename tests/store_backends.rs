//! One behaviour suite for every store backend: each behaviour is written
//! once (`check_*`, over `Arc<dyn Backend>` or a [`Fixture`] that can
//! reopen the store) and run against SQLite (a temporary file) and
//! PostgreSQL (a throwaway database, `gleaner_testing::postgres::TestDb`;
//! skipped in one line when no server answers, required under CI).

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use gleaner_framework::store::{
    Account, Backend, BackendKind, Counts, PgStore, RunCommit, SealedSession, SealedStore,
    SealedTokens, SqliteStore, StagedDoc, TokenStore,
};
use gleaner_framework::vault::Vault;
use gleaner_framework::{ErrorCode, Secret};
use gleaner_testing::postgres::TestDb;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const BILLS: &str = "io.cozy.bills";
const OPERATIONS: &str = "io.cozy.bank.operations";

/// Where a test's store lives, kept for the test's length (the temporary
/// directory or database goes with it).
enum Place {
    Sqlite(tempfile::TempDir),
    Postgres(TestDb),
}

/// A store to test, and how to open it again.
struct Fixture {
    place: Place,
    store: Arc<dyn Backend>,
}

impl Fixture {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let place = Place::Sqlite(dir);
        let store = open(&place).await.unwrap();
        Self { place, store }
    }

    async fn postgres(label: &str) -> Option<Self> {
        let db = TestDb::create(label).await?;
        let place = Place::Postgres(db);
        let store = open(&place).await.unwrap();
        Some(Self { place, store })
    }

    async fn reopen(&self) -> Result<Arc<dyn Backend>, gleaner_framework::KonnectorError> {
        open(&self.place).await
    }
}

async fn open(place: &Place) -> Result<Arc<dyn Backend>, gleaner_framework::KonnectorError> {
    Ok(match place {
        Place::Sqlite(dir) => Arc::new(SqliteStore::open(&dir.path().join("g.db")).await?),
        Place::Postgres(db) => Arc::new(PgStore::open(&db.url).await?),
    })
}

/// Emits, for each check, a test on SQLite and one on PostgreSQL.
macro_rules! both {
    (store: $($check:ident),* ; fixture: $($fcheck:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let f = super::Fixture::sqlite().await;
                    super::$check(f.store.clone()).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $fcheck() {
                    let f = super::Fixture::sqlite().await;
                    super::$fcheck(&f).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let Some(f) = super::Fixture::postgres(stringify!($check)).await else {
                        return;
                    };
                    super::$check(f.store.clone()).await;
                    f.store.close().await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $fcheck() {
                    let Some(f) = super::Fixture::postgres(stringify!($fcheck)).await else {
                        return;
                    };
                    super::$fcheck(&f).await;
                    f.store.close().await;
                }
            )*
        }
    };
}

both!(
    store:
        check_commit_counts_and_revs,
        check_concurrent_commits_of_the_same_keys,
        check_replaces,
        check_a_failed_commit_writes_nothing,
        check_list_paging,
        check_count_by_doctype,
        check_get_by_key,
        check_pending_bank_operations,
        check_accounts,
        check_remove_account,
        check_sessions,
        check_tokens,
        check_token_locks_serialize,
        check_sealed,
        check_docs_by_id_and_project,
        check_linking,
        check_describe_and_check;
    fixture:
        check_newer_schema_refused,
        check_reopen_keeps_everything,
);

// ---------------------------------------------------------------- helpers

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600 + secs, 0).single().unwrap()
}

fn commit(account: &str, docs: Vec<StagedDoc>, state: Value, finished: i64) -> RunCommit {
    RunCommit {
        account_id: account.into(),
        account_identifier: Some("0612345678".into()),
        run_id: format!("run-{finished}"),
        konnector: "test".into(),
        docs,
        deletes: Vec::new(),
        state,
        finished_at: at(finished),
    }
}

fn doc(doctype: &'static str, key: &str, data: Value) -> StagedDoc {
    StagedDoc::from_value(doctype, key.into(), None, &data)
}

fn bill(key: &str, amount: u32) -> StagedDoc {
    doc(BILLS, key, json!({"vendor": "V", "amount": amount}))
}

/// The revision SQLite's store gives: `N-` and the first 8 hex digits of
/// the content hash.
fn rev(n: u64, data: &Value) -> String {
    let digest = Sha256::digest(data.to_string().as_bytes());
    format!("{n}-{}", &hex::encode(&digest[..16])[..8])
}

fn account(id: &str, label: &str, created: i64) -> Account {
    Account {
        id: id.into(),
        konnector: "free-mobile".into(),
        label: label.into(),
        fields: BTreeMap::from([("login".to_owned(), format!("{id}-login"))]),
        sealed_secrets: vec![1, 2, 3],
        endpoint: None,
        created_at: at(created),
        folder: Account::default_folder("Free Mobile", id),
    }
}

fn vault(dir: &tempfile::TempDir, name: &str) -> Vault {
    Vault::open_or_create(&dir.path().join(name)).unwrap()
}

// ----------------------------------------------------------------- checks

async fn check_commit_counts_and_revs(store: Arc<dyn Backend>) {
    let c = store
        .commit_run(commit(
            "acc",
            vec![bill("a", 1), bill("b", 2)],
            json!({"cursor": 1}),
            0,
        ))
        .await
        .unwrap();
    assert_eq!(
        c[BILLS],
        Counts {
            created: 2,
            ..Counts::default()
        }
    );
    let mut again = commit(
        "acc",
        vec![bill("a", 1), bill("b", 3), bill("c", 4)],
        json!({"cursor": 2}),
        60,
    );
    again.deletes = vec![
        (BILLS.to_owned(), "gone-already".to_owned()),
        (OPERATIONS.to_owned(), "never".to_owned()),
    ];
    let c = store.commit_run(again).await.unwrap();
    assert_eq!(
        c[BILLS],
        Counts {
            created: 1,
            updated: 1,
            skipped: 1,
            deleted: 0
        }
    );
    // A delete of a key not stored still names its doctype, with zeros.
    assert_eq!(c[OPERATIONS], Counts::default());

    let docs = store.list(BILLS, None, None, 100).await.unwrap();
    assert_eq!(docs.len(), 3);
    let by_amount = |n: u32| docs.iter().find(|d| d.data["amount"] == json!(n)).unwrap();
    let a = by_amount(1);
    let b = by_amount(3);
    assert_eq!(a.rev, rev(1, &json!({"vendor": "V", "amount": 1})));
    assert_eq!(b.rev, rev(2, &json!({"vendor": "V", "amount": 3})));
    assert_eq!(b.data["_rev"], json!(b.rev));
    assert_eq!(b.data["_id"], json!(b.id));
    assert_eq!(b.account_id, "acc");
    let meta = &b.data["cozyMetadata"];
    assert_eq!(meta["sourceAccount"], "acc");
    assert_eq!(meta["sourceAccountIdentifier"], "0612345678");
    assert_eq!(meta["importedFrom"], "test");
    assert_eq!(meta["createdByApp"], "gleaner");
    assert_eq!(meta["createdAt"], json!(at(0).to_rfc3339()));
    assert_eq!(meta["updatedAt"], json!(at(60).to_rfc3339()));
    assert_eq!(
        a.data["cozyMetadata"]["updatedAt"],
        json!(at(0).to_rfc3339())
    );
    // New ids: 32 hex digits, in creation order.
    let c_doc = by_amount(4);
    assert!(c_doc.id.len() == 32 && c_doc.id.chars().all(|c| c.is_ascii_hexdigit()));

    let state = store.state("acc").await.unwrap().unwrap();
    assert_eq!(state.state, json!({"cursor": 2}));
    assert_eq!(state.last_sync, at(60));
    assert_eq!(state.last_run_id, "run-60");
    assert!(store.state("other").await.unwrap().is_none());
    assert_eq!(
        store.find_id("acc", BILLS, "c").await.unwrap(),
        Some(c_doc.id.clone())
    );
    assert!(store.find_id("other", BILLS, "c").await.unwrap().is_none());

    // Deletes: counted, in the same commit as new documents.
    let mut del = commit("acc", vec![bill("d", 5)], json!(null), 120);
    del.deletes = vec![(BILLS.to_owned(), "a".to_owned())];
    let c = store.commit_run(del).await.unwrap();
    assert_eq!(
        c[BILLS],
        Counts {
            created: 1,
            deleted: 1,
            ..Counts::default()
        }
    );
    assert!(store.find_id("acc", BILLS, "a").await.unwrap().is_none());
    assert_eq!(
        store.state("acc").await.unwrap().unwrap().state,
        json!(null)
    );

    // More than one chunk of each engine, mixed with existing ones.
    let many: Vec<StagedDoc> = (0..2500).map(|i| bill(&format!("m{i:05}"), i)).collect();
    let c = store
        .commit_run(commit("acc", many, json!(null), 180))
        .await
        .unwrap();
    assert_eq!(c[BILLS].created, 2500);
    let mut many: Vec<StagedDoc> = (0..2500)
        .map(|i| bill(&format!("m{i:05}"), if i % 7 == 0 { i + 1 } else { i }))
        .collect();
    many.push(bill("m99999", 1));
    let c = store
        .commit_run(commit("acc", many, json!(null), 240))
        .await
        .unwrap();
    assert_eq!(
        c[BILLS],
        Counts {
            created: 1,
            updated: 358,
            skipped: 2142,
            deleted: 0
        }
    );
}

async fn check_concurrent_commits_of_the_same_keys(store: Arc<dyn Backend>) {
    // The account has documents already: both commits take the lookup path.
    store
        .commit_run(commit("acc", vec![bill("seed", 0)], json!(null), 0))
        .await
        .unwrap();
    let docs = || {
        (0..300)
            .map(|i| bill(&format!("k{i}"), i))
            .collect::<Vec<_>>()
    };
    let (s1, s2) = (store.clone(), store.clone());
    let one = tokio::spawn(async move { s1.commit_run(commit("acc", docs(), json!(1), 10)).await });
    let two = tokio::spawn(async move { s2.commit_run(commit("acc", docs(), json!(2), 20)).await });
    let one = one.await.unwrap().unwrap();
    let two = two.await.unwrap().unwrap();
    let (a, b) = (one[BILLS], two[BILLS]);
    // One of them created the documents, the other found them all.
    assert_eq!(a.created + b.created, 300, "{a:?} {b:?}");
    assert_eq!(a.skipped + b.skipped, 300, "{a:?} {b:?}");
    assert_eq!(store.count_by_doctype().await.unwrap()[BILLS], 301);
    let listed = store.list(BILLS, Some("acc"), None, 1000).await.unwrap();
    assert_eq!(listed.len(), 301);

    // And on a first import (no lookup): the second waits and skips.
    let fresh = || {
        (0..200)
            .map(|i| bill(&format!("f{i}"), i))
            .collect::<Vec<_>>()
    };
    let (s1, s2) = (store.clone(), store.clone());
    let one =
        tokio::spawn(async move { s1.commit_run(commit("new", fresh(), json!(1), 30)).await });
    let two =
        tokio::spawn(async move { s2.commit_run(commit("new", fresh(), json!(2), 40)).await });
    let one = one.await.unwrap().unwrap();
    let two = two.await.unwrap().unwrap();
    assert_eq!(one[BILLS].created + two[BILLS].created, 200);
    assert_eq!(one[BILLS].skipped + two[BILLS].skipped, 200);
    assert_eq!(
        store
            .list(BILLS, Some("new"), None, 1000)
            .await
            .unwrap()
            .len(),
        200
    );
}

fn op(key: &str, coming: bool, vendor: &str, date: &str, amount: f64) -> StagedDoc {
    doc(
        OPERATIONS,
        key,
        json!({"label": format!("OP {key}"), "amount": amount, "currency": "EUR",
               "date": format!("{date}T00:00:00Z"), "vendorAccountId": vendor,
               "isComing": coming}),
    )
}

async fn check_replaces(store: Arc<dyn Backend>) {
    store
        .commit_run(commit(
            "bank",
            vec![
                op("p1", true, "v", "2026-01-02", -5.0),
                op("p2", true, "v", "2026-01-03", -6.0),
                op("b2", false, "v", "2026-01-03", -6.0),
            ],
            json!(null),
            0,
        ))
        .await
        .unwrap();
    let p1 = store
        .find_id("bank", OPERATIONS, "p1")
        .await
        .unwrap()
        .unwrap();
    let b2 = store
        .find_id("bank", OPERATIONS, "b2")
        .await
        .unwrap()
        .unwrap();

    // The pending p1 booked as b1: same document, new key and content.
    let mut booked = op("b1", false, "v", "2026-01-02", -5.0);
    booked.replaces = Some("p1".into());
    // p2 booked as b2, which is stored already: b2 kept, p2 deleted.
    let mut twin = op("b2", false, "v", "2026-01-03", -6.0);
    twin.replaces = Some("p2".into());
    // p9 is not stored: b9 created.
    let mut orphan = op("b9", false, "v", "2026-01-04", -7.0);
    orphan.replaces = Some("p9".into());
    let c = store
        .commit_run(commit("bank", vec![booked, twin, orphan], json!(null), 60))
        .await
        .unwrap();
    assert_eq!(
        c[OPERATIONS],
        Counts {
            created: 1,
            updated: 1,
            skipped: 1,
            deleted: 1
        }
    );
    assert_eq!(
        store.find_id("bank", OPERATIONS, "b1").await.unwrap(),
        Some(p1.clone())
    );
    assert!(
        store
            .find_id("bank", OPERATIONS, "p1")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_id("bank", OPERATIONS, "p2")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.find_id("bank", OPERATIONS, "b2").await.unwrap(),
        Some(b2)
    );
    assert!(
        store
            .find_id("bank", OPERATIONS, "b9")
            .await
            .unwrap()
            .is_some()
    );
    let docs = store
        .docs_by_id(OPERATIONS, std::slice::from_ref(&p1))
        .await
        .unwrap();
    assert_eq!(docs[&p1].data["isComing"], json!(false));
    assert!(docs[&p1].rev.starts_with("2-"));
    assert_eq!(store.count_by_doctype().await.unwrap()[OPERATIONS], 3);
}

async fn check_a_failed_commit_writes_nothing(store: Arc<dyn Backend>) {
    store
        .commit_run(commit("acc", vec![bill("a", 1)], json!({"cursor": 1}), 0))
        .await
        .unwrap();
    // A key staged twice: the unique index refuses the commit midway.
    let bad = commit(
        "acc",
        vec![bill("x", 1), bill("y", 2), bill("x", 3)],
        json!({"cursor": 2}),
        60,
    );
    let err = store.commit_run(bad).await.err().unwrap();
    assert_eq!(err.code, ErrorCode::StoreFailed, "{}", err.message);
    assert_eq!(
        store.state("acc").await.unwrap().unwrap().state,
        json!({"cursor": 1})
    );
    assert!(store.find_id("acc", BILLS, "x").await.unwrap().is_none());
    assert!(store.find_id("acc", BILLS, "y").await.unwrap().is_none());
    // The same on a first import, and with deletes in the failed commit.
    let mut bad = commit(
        "fresh",
        vec![bill("x", 1), bill("x", 2)],
        json!({"cursor": 9}),
        60,
    );
    bad.deletes = vec![(BILLS.to_owned(), "a".to_owned())];
    assert!(store.commit_run(bad).await.is_err());
    assert!(store.state("fresh").await.unwrap().is_none());
    assert_eq!(store.count_by_doctype().await.unwrap()[BILLS], 1);
    // The store is usable afterwards.
    store
        .commit_run(commit("acc", vec![bill("x", 1)], json!({"cursor": 3}), 90))
        .await
        .unwrap();
}

async fn check_list_paging(store: Arc<dyn Backend>) {
    let docs: Vec<StagedDoc> = (0..25).map(|i| bill(&format!("k{i}"), i)).collect();
    store
        .commit_run(commit("one", docs, json!(null), 0))
        .await
        .unwrap();
    store
        .commit_run(commit("two", vec![bill("k0", 0)], json!(null), 0))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let page = store
            .list(BILLS, Some("one"), after.as_deref(), 10)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        pages.push(page.len());
        after = page.last().map(|d| d.id.clone());
        seen.extend(page.into_iter().map(|d| d.id));
    }
    assert_eq!(pages, [10, 10, 5]);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted, "ids in order, none twice");
    assert_eq!(store.list(BILLS, None, None, 100).await.unwrap().len(), 26);
    assert_eq!(
        store
            .list(BILLS, Some("two"), None, 100)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .list(OPERATIONS, None, None, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.list(BILLS, None, None, 0).await.unwrap().len(), 0);
}

async fn check_count_by_doctype(store: Arc<dyn Backend>) {
    assert!(store.count_by_doctype().await.unwrap().is_empty());
    store
        .commit_run(commit(
            "acc",
            vec![
                bill("a", 1),
                bill("b", 2),
                op("o", false, "v", "2026-01-01", 1.0),
            ],
            json!(null),
            0,
        ))
        .await
        .unwrap();
    store
        .commit_run(commit("other", vec![bill("a", 1)], json!(null), 0))
        .await
        .unwrap();
    assert_eq!(
        store.count_by_doctype().await.unwrap(),
        BTreeMap::from([(BILLS.to_owned(), 3), (OPERATIONS.to_owned(), 1)])
    );
}

async fn check_get_by_key(store: Arc<dyn Backend>) {
    let data =
        json!({"vendor": "V", "amount": 12.50, "nested": {"z": [1, "two", null]}, "text": "é\"\\"});
    store
        .commit_run(commit(
            "acc",
            vec![doc(BILLS, "k", data.clone())],
            json!(null),
            0,
        ))
        .await
        .unwrap();
    let got = store.get_by_key("acc", BILLS, "k").await.unwrap().unwrap();
    assert_eq!(got.key, "k");
    assert_eq!(got.data, data, "as staged: no _id, _rev or cozyMetadata");
    assert_eq!(
        Some(got.id),
        store.find_id("acc", BILLS, "k").await.unwrap()
    );
    assert!(
        store
            .get_by_key("acc", BILLS, "nope")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get_by_key("other", BILLS, "k")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get_by_key("acc", OPERATIONS, "k")
            .await
            .unwrap()
            .is_none()
    );
}

async fn check_pending_bank_operations(store: Arc<dyn Backend>) {
    store
        .commit_run(commit(
            "bank",
            vec![
                op("c", true, "v1", "2026-01-05", -1.0),
                op("a", true, "v1", "2026-01-01", -2.0),
                op("b", true, "v1", "2026-01-10", -3.0),
                op("early", true, "v1", "2025-12-31", -4.0),
                op("late", true, "v1", "2026-01-11", -5.0),
                op("booked", false, "v1", "2026-01-05", -6.0),
                op("otherbank", true, "v2", "2026-01-05", -7.0),
            ],
            json!(null),
            0,
        ))
        .await
        .unwrap();
    store
        .commit_run(commit(
            "other",
            vec![op("x", true, "v1", "2026-01-05", -8.0)],
            json!(null),
            0,
        ))
        .await
        .unwrap();
    let from = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let to = NaiveDate::from_ymd_opt(2026, 1, 10).unwrap();
    let found = store
        .pending_bank_operations("bank", "v1", from, to)
        .await
        .unwrap();
    let keys: Vec<&str> = found.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(keys, ["a", "b", "c"]);
    assert!(found.iter().all(|d| d.data.get("cozyMetadata").is_none()));
    assert_eq!(found[0].data["amount"], json!(-2.0));
    assert!(
        store
            .pending_bank_operations("bank", "v3", from, to)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn check_accounts(store: Arc<dyn Backend>) {
    assert!(store.list_accounts().await.unwrap().is_empty());
    let first = account("id-1", "phone", 0);
    store.put_account(&first).await.unwrap();
    store
        .put_account(&account("id-0", "bank", 60))
        .await
        .unwrap();
    store
        .put_account(&account("id-2", "energy", 60))
        .await
        .unwrap();
    assert_eq!(
        store.get_account("id-1").await.unwrap(),
        Some(first.clone())
    );
    assert!(store.get_account("nope").await.unwrap().is_none());
    let ids: Vec<String> = store
        .list_accounts()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids, ["id-1", "id-0", "id-2"], "oldest first, then by id");

    // Replacing keeps the creation time given first.
    let mut changed = first.clone();
    changed.label = "my phone".into();
    changed.endpoint = Some("http://127.0.0.1:9/".into());
    changed.sealed_secrets = vec![9; 40];
    store.put_account(&changed).await.unwrap();
    assert_eq!(store.get_account("id-1").await.unwrap(), Some(changed));

    // A label or a folder another account has: the same refusal.
    let dup = account("id-3", "bank", 120);
    let err = store.put_account(&dup).await.err().unwrap();
    assert_eq!(err.code, ErrorCode::InvalidData);
    assert_eq!(err.message, "an account labelled `bank` exists already");
    let mut shared = account("id-3", "fourth", 120);
    shared.folder = Account::default_folder("Free Mobile", "id-0");
    let err = store.put_account(&shared).await.err().unwrap();
    assert_eq!(err.code, ErrorCode::InvalidData);
    assert_eq!(
        err.message,
        format!(
            "the files folder `{}` belongs to another account already",
            shared.folder
        )
    );
    // Labels are compared exactly.
    store
        .put_account(&account("id-4", "Bank", 180))
        .await
        .unwrap();
    // Refused before the store: a bad label, an empty folder.
    let err = store
        .put_account(&account("id-5", " x", 0))
        .await
        .err()
        .unwrap();
    assert_eq!(err.code, ErrorCode::InvalidData);
    let mut no_folder = account("id-5", "five", 0);
    no_folder.folder.clear();
    assert!(store.put_account(&no_folder).await.is_err());
    assert_eq!(store.list_accounts().await.unwrap().len(), 4);

    // Folders assigned to accounts that have none (none here).
    let legacy = |a: &Account| (format!("legacy/{}", a.label), format!("own/{}", a.id));
    assert!(
        store
            .assign_missing_folders(&legacy)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn check_remove_account(store: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let v = vault(&dir, "k");
    for (id, label) in [("keep", "keep"), ("purge", "purge")] {
        store.put_account(&account(id, label, 0)).await.unwrap();
        store
            .commit_run(commit(id, vec![bill("a", 1)], json!({"n": 1}), 0))
            .await
            .unwrap();
        store
            .save_session(
                id,
                &SealedSession {
                    sealed: vec![1],
                    expires_at: at(3600),
                },
            )
            .await
            .unwrap();
        let sealed = v
            .seal_bytes(format!("{id}/oauth").as_bytes(), b"t")
            .unwrap();
        store
            .save_tokens(
                id,
                &SealedTokens {
                    sealed,
                    expires_at: None,
                },
                at(0),
            )
            .await
            .unwrap();
    }
    assert!(store.remove_account("keep", false).await.unwrap());
    assert!(store.get_account("keep").await.unwrap().is_none());
    assert!(store.state("keep").await.unwrap().is_none());
    assert!(store.load_session("keep").await.unwrap().is_none());
    assert!(store.load_tokens("keep").await.unwrap().is_none());
    assert!(
        store.find_id("keep", BILLS, "a").await.unwrap().is_some(),
        "documents kept without purge"
    );
    assert!(store.remove_account("purge", true).await.unwrap());
    assert!(store.find_id("purge", BILLS, "a").await.unwrap().is_none());
    assert!(store.load_tokens("purge").await.unwrap().is_none());
    assert!(!store.remove_account("purge", true).await.unwrap());
    assert_eq!(store.count_by_doctype().await.unwrap()[BILLS], 1);
}

async fn check_sessions(store: Arc<dyn Backend>) {
    assert!(store.load_session("acc").await.unwrap().is_none());
    let s = SealedSession {
        sealed: vec![7; 100],
        expires_at: at(3600),
    };
    store.save_session("acc", &s).await.unwrap();
    let got = store.load_session("acc").await.unwrap().unwrap();
    assert_eq!((got.sealed, got.expires_at), (s.sealed, s.expires_at));
    let s2 = SealedSession {
        sealed: vec![8],
        expires_at: at(-10),
    };
    store.save_session("acc", &s2).await.unwrap();
    let got = store.load_session("acc").await.unwrap().unwrap();
    assert_eq!(
        (got.sealed, got.expires_at),
        (s2.sealed, s2.expires_at),
        "replaced, expired or not"
    );
    store.delete_session("acc").await.unwrap();
    assert!(store.load_session("acc").await.unwrap().is_none());
    store.delete_session("acc").await.unwrap();
}

async fn check_tokens(store: Arc<dyn Backend>) {
    assert!(store.load_tokens("acc").await.unwrap().is_none());
    let t = SealedTokens {
        sealed: vec![1, 2],
        expires_at: Some(at(3600)),
    };
    store.save_tokens("acc", &t, at(0)).await.unwrap();
    let got = store.load_tokens("acc").await.unwrap().unwrap();
    assert_eq!((got.sealed, got.expires_at), (t.sealed, t.expires_at));

    // Written under the lock: visible at the commit, not before.
    let mut lock = store.lock_tokens("acc").await.unwrap();
    assert_eq!(lock.current().await.unwrap().unwrap().sealed, vec![1, 2]);
    lock.write(
        &SealedTokens {
            sealed: vec![3],
            expires_at: None,
        },
        at(10),
    )
    .await
    .unwrap();
    lock.commit().await.unwrap();
    let got = store.load_tokens("acc").await.unwrap().unwrap();
    assert_eq!((got.sealed, got.expires_at), (vec![3], None));
    // A lock dropped without commit writes nothing.
    let mut lock = store.lock_tokens("acc").await.unwrap();
    lock.write(
        &SealedTokens {
            sealed: vec![4],
            expires_at: None,
        },
        at(20),
    )
    .await
    .unwrap();
    drop(lock);
    assert_eq!(
        store.load_tokens("acc").await.unwrap().unwrap().sealed,
        vec![3]
    );
    store.delete_tokens("acc").await.unwrap();
    assert!(store.load_tokens("acc").await.unwrap().is_none());

    // The token manager over either store: sealed under "{id}/oauth".
    let dir = tempfile::tempdir().unwrap();
    let v = Arc::new(vault(&dir, "k"));
    let tokens: Arc<dyn TokenStore> = store.clone();
    let manager = gleaner_framework::oauth::TokenManager::new(tokens, Arc::clone(&v)).unwrap();
    let set = gleaner_framework::oauth::TokenSet {
        access_token: Secret::new("access"),
        refresh_token: Some(Secret::new("refresh")),
        expires_at: Some(at(7200)),
    };
    manager.save("acc", &set).await.unwrap();
    let loaded = manager.load("acc").await.unwrap().unwrap();
    assert_eq!(loaded.access_token.expose(), "access");
    assert_eq!(
        loaded.refresh_token.as_ref().map(Secret::expose),
        Some("refresh")
    );
    assert_eq!(loaded.expires_at, Some(at(7200)));
    let row = store.load_tokens("acc").await.unwrap().unwrap();
    assert!(v.open_bytes(b"acc/oauth", &row.sealed, "tokens").is_ok());
    manager.remove("acc").await.unwrap();
    assert!(manager.load("acc").await.unwrap().is_none());
}

async fn check_token_locks_serialize(store: Arc<dyn Backend>) {
    let mut first = store.lock_tokens("acc").await.unwrap();
    assert!(first.current().await.unwrap().is_none());
    let got_it = Arc::new(AtomicBool::new(false));
    let second = {
        let (store, got_it) = (store.clone(), Arc::clone(&got_it));
        tokio::spawn(async move {
            let mut lock = store.lock_tokens("acc").await.unwrap();
            got_it.store(true, Ordering::SeqCst);
            // Under the lock, the first holder's tokens are there.
            let seen = lock.current().await.unwrap().map(|t| t.sealed);
            lock.write(
                &SealedTokens {
                    sealed: vec![2],
                    expires_at: None,
                },
                at(2),
            )
            .await
            .unwrap();
            lock.commit().await.unwrap();
            seen
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        !got_it.load(Ordering::SeqCst),
        "the second locker waits for the first"
    );
    first
        .write(
            &SealedTokens {
                sealed: vec![1],
                expires_at: None,
            },
            at(1),
        )
        .await
        .unwrap();
    first.commit().await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(20), second)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen, Some(vec![1]));
    assert_eq!(
        store.load_tokens("acc").await.unwrap().unwrap().sealed,
        vec![2]
    );
}

async fn check_sealed(store: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let old = vault(&dir, "old");
    let new = vault(&dir, "new");
    assert!(store.vault_key_id().await.unwrap().is_none());
    store.set_vault_key_id(&old.key_id()).await.unwrap();
    assert_eq!(store.vault_key_id().await.unwrap(), Some(old.key_id()));
    let counts = store.sealed_counts().await.unwrap();
    assert_eq!(counts.get("accounts"), Some(&0));
    assert_eq!(counts.get("sessions"), Some(&0));
    assert_eq!(counts.get("oauth_tokens"), Some(&0));
    assert!(!counts.contains_key("sched_twofa_answers"), "no such table");

    for i in 0..3 {
        let id = format!("acc{i}");
        let secrets = BTreeMap::from([("password".to_owned(), Secret::new(format!("pw{i}")))]);
        let mut a = account(&id, &id, i);
        a.sealed_secrets = old.seal(&id, &secrets).unwrap();
        store.put_account(&a).await.unwrap();
        let session = old
            .seal_bytes(format!("{id}/session").as_bytes(), b"cookies")
            .unwrap();
        store
            .save_session(
                &id,
                &SealedSession {
                    sealed: session,
                    expires_at: at(60),
                },
            )
            .await
            .unwrap();
    }
    let t = old.seal_bytes(b"acc0/oauth", b"tokens").unwrap();
    store
        .save_tokens(
            "acc0",
            &SealedTokens {
                sealed: t,
                expires_at: None,
            },
            at(0),
        )
        .await
        .unwrap();
    let counts = store.sealed_counts().await.unwrap();
    assert_eq!(
        (
            counts["accounts"],
            counts["sessions"],
            counts["oauth_tokens"]
        ),
        (3, 3, 1)
    );

    // A wrong old key: refused, nothing changed.
    let stranger = vault(&dir, "stranger");
    assert!(store.reseal_all(&stranger, &new).await.is_err());
    assert_eq!(store.vault_key_id().await.unwrap(), Some(old.key_id()));
    let a0 = store.get_account("acc0").await.unwrap().unwrap();
    assert!(old.open("acc0", &a0.sealed_secrets).is_ok());

    let counts = store.reseal_all(&old, &new).await.unwrap();
    assert_eq!(
        counts,
        BTreeMap::from([
            ("accounts".to_owned(), 3),
            ("sessions".to_owned(), 3),
            ("oauth_tokens".to_owned(), 1),
        ])
    );
    assert_eq!(store.vault_key_id().await.unwrap(), Some(new.key_id()));
    for i in 0..3 {
        let id = format!("acc{i}");
        let a = store.get_account(&id).await.unwrap().unwrap();
        let opened = new.open(&id, &a.sealed_secrets).unwrap();
        assert_eq!(opened["password"].expose(), format!("pw{i}"));
        assert!(old.open(&id, &a.sealed_secrets).is_err());
        let s = store.load_session(&id).await.unwrap().unwrap();
        let plain = new
            .open_bytes(format!("{id}/session").as_bytes(), &s.sealed, "session")
            .unwrap();
        assert_eq!(&plain[..], b"cookies");
    }
    let t = store.load_tokens("acc0").await.unwrap().unwrap();
    assert!(new.open_bytes(b"acc0/oauth", &t.sealed, "tokens").is_ok());

    // Through the vault's own entry point too.
    let dir2 = tempfile::tempdir().unwrap();
    let loc = gleaner_framework::vault::VaultLocation::new(dir2.path());
    let sealed: &dyn SealedStore = &*store;
    let opened = gleaner_framework::vault::open_for_store(
        &loc,
        sealed,
        None,
        &|| Ok(None),
        gleaner_framework::vault::KdfParams::INSECURE_FOR_TESTS,
    )
    .await;
    // A store with sealed records and no key on disk: refused.
    assert!(opened.is_err());
}

async fn check_docs_by_id_and_project(store: Arc<dyn Backend>) {
    store
        .commit_run(commit(
            "acc",
            vec![
                doc(
                    BILLS,
                    "a",
                    json!({"amount": 12.5, "date": "2026-01-01", "vendor": "V"}),
                ),
                doc(
                    BILLS,
                    "b",
                    json!({"amount": 3, "vendor": "W", "extra": {"x": 1}}),
                ),
            ],
            json!(null),
            0,
        ))
        .await
        .unwrap();
    store
        .commit_run(commit(
            "other",
            vec![doc(BILLS, "c", json!({"amount": 1}))],
            json!(null),
            0,
        ))
        .await
        .unwrap();
    let a = store.find_id("acc", BILLS, "a").await.unwrap().unwrap();
    let b = store.find_id("acc", BILLS, "b").await.unwrap().unwrap();
    let mut ids = vec![a.clone(), b.clone()];
    ids.sort();

    let p = store
        .project(BILLS, Some("acc"), &["amount", "date", "extra"])
        .await
        .unwrap();
    assert_eq!(p.iter().map(|x| x.id.clone()).collect::<Vec<_>>(), ids);
    let pa = p.iter().find(|x| x.id == a).unwrap();
    assert_eq!(
        pa.values,
        vec![json!(12.5), json!("2026-01-01"), Value::Null]
    );
    let pb = p.iter().find(|x| x.id == b).unwrap();
    assert_eq!(pb.values, vec![json!(3), Value::Null, json!({"x": 1})]);
    assert_eq!(
        store.project(BILLS, None, &["amount"]).await.unwrap().len(),
        3
    );
    let err = store
        .project(BILLS, None, &["x') OR 1=1 --"])
        .await
        .err()
        .unwrap();
    assert_eq!(err.code, ErrorCode::StoreFailed);

    let got = store
        .docs_by_id(BILLS, &[a.clone(), "missing".into(), b.clone()])
        .await
        .unwrap();
    assert_eq!(got.keys().cloned().collect::<Vec<_>>(), ids);
    assert_eq!(got[&a].data["_id"], json!(a));
    assert_eq!(got[&a].rev, got[&a].data["_rev"].as_str().unwrap());
    assert_eq!(got[&a].account_id, "acc");
    assert!(
        store
            .docs_by_id(OPERATIONS, std::slice::from_ref(&a))
            .await
            .unwrap()
            .is_empty()
    );
}

fn linked_bill(key: &str, amount: f64, date: &str) -> StagedDoc {
    doc(
        BILLS,
        key,
        json!({"vendor": "Free Mobile", "amount": amount, "currency": "EUR",
               "date": format!("{date}T00:00:00Z"), "contractId": "0612345678"}),
    )
}

fn linked_op(key: &str, label: &str, amount: f64, date: &str) -> StagedDoc {
    doc(
        OPERATIONS,
        key,
        json!({"label": label, "amount": amount, "currency": "EUR",
               "date": format!("{date}T00:00:00Z"), "vendorAccountId": "acc-1"}),
    )
}

async fn check_linking(store: Arc<dyn Backend>) {
    let bills = || {
        vec![
            linked_bill("b-nov", 19.99, "2025-11-02"),
            linked_bill("b-dec", 19.99, "2025-12-02"),
            linked_bill("b-unpaid", 7.5, "2025-12-02"),
        ]
    };
    let ops = || {
        vec![
            linked_op("o-nov", "PRLV SEPA FREE MOBILE", -19.99, "2025-11-04"),
            linked_op("o-dec", "PRLV SEPA FREE MOBILE", -19.99, "2025-12-03"),
            linked_op("o-shop", "CB CARREFOUR", -7.5, "2025-12-03"),
        ]
    };
    store
        .commit_run(commit("phone", bills(), json!(null), 0))
        .await
        .unwrap();
    store
        .commit_run(commit("bank", ops(), json!(null), 0))
        .await
        .unwrap();
    let s = store.link_bills_and_operations(at(100)).await.unwrap();
    assert_eq!(
        (
            s.bills,
            s.operations,
            s.links,
            s.operations_changed,
            s.bills_changed
        ),
        (3, 3, 2, 2, 2)
    );
    assert_eq!(store.link_count().await.unwrap(), 2);
    let linked = store.linked_operations(10).await.unwrap();
    let dates: Vec<&Value> = linked.iter().map(|d| &d.data["date"]).collect();
    assert_eq!(
        dates,
        [
            &json!("2025-12-03T00:00:00Z"),
            &json!("2025-11-04T00:00:00Z")
        ]
    );
    let dec_op = &linked[0];
    assert!(dec_op.rev.starts_with("2-"));
    let dec_bill = store
        .get_by_key("phone", BILLS, "b-dec")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        dec_op.data["bills"],
        json!([format!("io.cozy.bills:{}", dec_bill.id)])
    );
    assert_eq!(
        dec_bill.data["relationships"]["bankOperations"]["data"],
        json!([{"_id": dec_op.id, "_type": OPERATIONS}])
    );
    assert_eq!(store.linked_operations(1).await.unwrap().len(), 1);
    // Again: nothing changes. A re-run of the same content: skipped.
    let s = store.link_bills_and_operations(at(200)).await.unwrap();
    assert_eq!((s.links, s.changed()), (2, 0));
    let c = store
        .commit_run(commit("bank", ops(), json!(null), 300))
        .await
        .unwrap();
    assert_eq!(c[OPERATIONS].skipped, 3);
    assert_eq!(store.link_count().await.unwrap(), 2);
}

async fn check_describe_and_check(store: Arc<dyn Backend>) {
    store.check().await.unwrap();
    let place = store.describe();
    match store.kind() {
        BackendKind::Sqlite => assert!(place.ends_with("g.db"), "{place}"),
        BackendKind::Postgres => {
            assert!(place.starts_with("postgres://"), "{place}");
            assert!(place.contains("gleaner_test_"), "{place}");
        }
    }
}

async fn check_newer_schema_refused(f: &Fixture) {
    f.store.close().await;
    match &f.place {
        Place::Sqlite(dir) => {
            let pool = sqlx::SqlitePool::connect(&format!(
                "sqlite://{}",
                dir.path().join("g.db").display()
            ))
            .await
            .unwrap();
            sqlx::query("PRAGMA user_version = 99")
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
        Place::Postgres(db) => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            sqlx::query(
                "INSERT INTO gleaner_store_migrations (version, description, success, checksum, execution_time)
                 VALUES (9999, 'from the future', true, '\\x00'::bytea, 1)",
            )
            .execute(&pool)
            .await
            .unwrap();
            pool.close().await;
        }
    }
    let err = f.reopen().await.err().unwrap();
    assert_eq!(err.code, ErrorCode::StoreFailed);
    assert!(err.message.contains("upgrade Gleaner"), "{}", err.message);
    if let Place::Postgres(_) = f.place {
        assert!(err.message.contains("9999"), "{}", err.message);
        assert!(err.message.contains("newer Gleaner"), "{}", err.message);
    }
}

async fn check_reopen_keeps_everything(f: &Fixture) {
    f.store.put_account(&account("a", "a", 0)).await.unwrap();
    f.store
        .commit_run(commit("a", vec![bill("k", 1)], json!({"n": 1}), 0))
        .await
        .unwrap();
    f.store.close().await;
    // Opening again (migrations already applied) is a no-op.
    let again = f.reopen().await.unwrap();
    let again2 = f.reopen().await.unwrap();
    assert_eq!(again.list_accounts().await.unwrap().len(), 1);
    assert_eq!(
        again2.state("a").await.unwrap().unwrap().state,
        json!({"n": 1})
    );
    let c = again
        .commit_run(commit("a", vec![bill("k", 1)], json!(null), 60))
        .await
        .unwrap();
    assert_eq!(c[BILLS].skipped, 1);
    again.close().await;
    again2.close().await;
}

/// PostgreSQL only: a server that does not answer is a store error naming
/// the host and port, never the password.
#[tokio::test]
async fn postgres_unreachable_is_a_store_error_naming_the_host() {
    let err = PgStore::open("postgres://gleaner:hunter2@127.0.0.1:1/gleaner")
        .await
        .err()
        .unwrap();
    assert_eq!(err.code, ErrorCode::StoreFailed);
    assert!(err.message.contains("127.0.0.1:1"), "{}", err.message);
    assert!(!err.message.contains("hunter2"), "{}", err.message);
    assert!(err.message.contains("check"), "{}", err.message);
}
