//! The bank methods end to end: runs through `run_konnector` into a
//! SQLite store, with a manual clock.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::json;

use super::*;
use crate::clock::ManualClock;
use crate::doctypes::BankAccount;
use crate::filters::Currency;
use crate::http::RetryPolicy;
use crate::konnector::Konnector;
use crate::manifest::Manifest;
use crate::runner::{RunEnv, RunOptions, RunReport, run_konnector};
use crate::store::{Account, DocStore, FileStore, SqliteStore};

const MANIFEST: &str = r#"
slug = "testbank"
name = "Test Bank"
version = "1.0.0"
category = "bank"
vendor_link = "https://bank.example"
base_url = "https://api.bank.example"
hosts = ["api.bank.example"]
frequency = "daily"
time_interval = [1, 6]
data_types = ["io.cozy.bank.accounts", "io.cozy.bank.operations", "io.cozy.bank.balancehistories"]

[fields.login]
type = "text"
label = "Login"
identifier = true
"#;

/// What one run of the test konnector saves.
#[derive(Clone, Default)]
struct Plan {
    operations: Vec<BankOperation>,
    balances: Vec<(NaiveDate, Decimal)>,
}

struct TestBank {
    manifest: Manifest,
    plan: Plan,
    seen: Arc<Mutex<Vec<(SyncWindow, ReconcileSummary, serde_json::Value)>>>,
}

#[async_trait::async_trait]
impl Konnector for TestBank {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    async fn run(&self, ctx: &mut RunContext) -> Result<()> {
        let account = BankAccount {
            label: "Compte courant".into(),
            institution_label: "Test Bank".into(),
            account_type: "checkings".into(),
            number: None,
            iban: Some("FR7630006000011234567890189".into()),
            balance: Decimal::new(123_456, 2),
            balance_date: None,
            currency: Currency::EUR,
            vendor_id: "ACC".into(),
        };
        let id = ctx.save_bank_account(&account).await?;
        let window = ctx.sync_window("ACC")?;
        let summary = ctx
            .save_bank_operations(OperationBatch {
                vendor_account_id: "ACC".into(),
                window,
                operations: self.plan.operations.clone(),
            })
            .await?;
        ctx.save_balances(&id, "ACC", &self.plan.balances).await?;
        let konnector_state = ctx.state().clone();
        ctx.set_state(json!({"konnector": "own"}));
        if let Ok(mut seen) = self.seen.lock() {
            seen.push((window, summary, konnector_state));
        }
        Ok(())
    }
}

fn op(day: u32, cents: i64, label: &str, vendor_id: Option<&str>, pending: bool) -> BankOperation {
    BankOperation {
        label: label.into(),
        original_bank_label: None,
        operation_type: None,
        date: Utc.with_ymd_and_hms(2026, 3, day, 0, 0, 0).unwrap(),
        realisation_date: None,
        amount: Decimal::new(cents, 2),
        currency: Currency::EUR,
        account: None,
        vendor_id: vendor_id.map(str::to_owned),
        vendor_account_id: "ACC".into(),
        is_coming: pending,
        bills: Vec::new(),
    }
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
}

struct Env {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    env: RunEnv,
    account: Account,
    clock: ManualClock,
    seen: Arc<Mutex<Vec<(SyncWindow, ReconcileSummary, serde_json::Value)>>>,
}

impl Env {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("g.db")).await.unwrap());
        let files = FileStore::open(&dir.path().join("files")).unwrap();
        let env = RunEnv {
            store: Arc::clone(&store) as Arc<dyn DocStore>,
            files,
            retry: RetryPolicy::default(),
        };
        let account = Account {
            id: "acc-1".into(),
            konnector: "testbank".into(),
            label: "bank".into(),
            fields: BTreeMap::from([
                ("login".to_owned(), "me".to_owned()),
                ("history_days".to_owned(), "30".to_owned()),
            ]),
            sealed_secrets: Vec::new(),
            endpoint: None,
            created_at: Utc::now(),
            folder: "Test Bank/acc-1".into(),
        };
        Self {
            _dir: dir,
            store,
            env,
            account,
            clock: ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 12, 8, 0, 0).unwrap()),
            seen: Arc::default(),
        }
    }

    async fn run(&self, plan: Plan) -> Result<RunReport> {
        let konnector = TestBank {
            manifest: Manifest::from_toml("testbank.toml", MANIFEST).unwrap(),
            plan,
            seen: Arc::clone(&self.seen),
        };
        let options = RunOptions {
            clock: Arc::new(self.clock.clone()),
            ..RunOptions::default()
        };
        run_konnector(
            &konnector,
            &self.account,
            BTreeMap::new(),
            &self.env,
            options,
        )
        .await
    }

    fn last(&self) -> (SyncWindow, ReconcileSummary, serde_json::Value) {
        self.seen.lock().unwrap().last().cloned().unwrap()
    }

    async fn operations(&self) -> Vec<crate::store::StoredDoc> {
        self.store
            .list(BankOperation::DOCTYPE, None, None, 100)
            .await
            .unwrap()
    }
}

fn by_label<'a>(docs: &'a [crate::store::StoredDoc], label: &str) -> &'a crate::store::StoredDoc {
    docs.iter()
        .find(|d| d.data["label"] == label)
        .unwrap_or_else(|| panic!("no operation labelled {label}"))
}

#[tokio::test]
async fn a_pending_operation_books_in_place_and_a_cancelled_one_goes() {
    let env = Env::new().await;
    // Run 1, on 12 March: one booked, three pending.
    let first = Plan {
        operations: vec![
            op(1, -4500, "PRLV SEPA FREE MOBILE", Some("b0"), false),
            op(10, -3000, "PAIEMENT CB AMAZON 10/03", None, true),
            op(11, -10_000, "HOTEL DU PORT", Some("auth-2"), true),
            op(11, -1500, "CB CINEMA", Some("auth-3"), true),
        ],
        balances: vec![
            (day(11), Decimal::new(100_000, 2)),
            (day(12), Decimal::new(95_000, 2)),
        ],
    };
    let report = env.run(first.clone()).await.unwrap();
    let (window, summary, state) = env.last();
    assert!(window.first_run);
    assert_eq!(
        (window.from, window.to),
        (NaiveDate::from_ymd_opt(2026, 2, 10).unwrap(), day(12))
    );
    assert_eq!(summary.created_or_updated, 4);
    assert_eq!(
        state,
        serde_json::Value::Null,
        "the konnector sees its own state only"
    );
    assert_eq!(report.counts[BankOperation::DOCTYPE].created, 4);
    assert_eq!(report.counts[BankAccount::DOCTYPE].created, 1);
    assert_eq!(report.counts[BalanceHistory::DOCTYPE].created, 1);
    let ops = env.operations().await;
    let account_id = env
        .store
        .find_id("acc-1", BankAccount::DOCTYPE, "ACC")
        .await
        .unwrap()
        .unwrap();
    assert!(ops.iter().all(|d| d.data["account"] == account_id.as_str()));
    let amazon_id = by_label(&ops, "PAIEMENT CB AMAZON 10/03").id.clone();
    let stored_state = env.store.state("acc-1").await.unwrap().unwrap().state;
    assert_eq!(
        stored_state,
        json!({"konnector": "own", "_gleaner": {"bank": {"cursors": {"ACC": "2026-03-12"}}}})
    );

    // Run 2, on 14 March: Amazon booked two days later with another label
    // and amount; the hotel authorisation was cancelled; the cinema is
    // still pending. The first booked one is before the window.
    env.clock
        .set(Utc.with_ymd_and_hms(2026, 3, 14, 8, 0, 0).unwrap());
    let second = Plan {
        operations: vec![
            op(12, -3120, "AMAZON EU SARL", Some("tx-9"), false),
            op(11, -1500, "CB CINEMA", Some("auth-3"), true),
        ],
        balances: vec![
            (day(12), Decimal::new(94_000, 2)),
            (day(14), Decimal::new(90_000, 2)),
        ],
    };
    let report = env.run(second.clone()).await.unwrap();
    let (window, summary, state) = env.last();
    assert!(!window.first_run);
    assert_eq!((window.from, window.to), (day(2), day(14)));
    assert_eq!(state, json!({"konnector": "own"}));
    assert_eq!(
        summary,
        ReconcileSummary {
            created_or_updated: 2,
            booked_from_pending: 1,
            pending_vanished: 1
        }
    );
    let c = report.counts[BankOperation::DOCTYPE];
    assert_eq!(
        (c.created, c.updated, c.skipped, c.deleted),
        (0, 1, 1, 1),
        "{c:?}"
    );
    let ops = env.operations().await;
    assert_eq!(ops.len(), 3, "{ops:?}");
    let amazon = by_label(&ops, "AMAZON EU SARL");
    assert_eq!(
        amazon.id, amazon_id,
        "the pending document was updated in place"
    );
    assert_eq!(amazon.data["isComing"], false);
    assert_eq!(amazon.data["amount"].to_string(), "-31.20");
    assert!(amazon.rev.starts_with("2-"));
    assert_eq!(
        env.store
            .find_id("acc-1", BankOperation::DOCTYPE, "ACC|tx-9")
            .await
            .unwrap(),
        Some(amazon_id),
        "re-keyed"
    );
    assert!(ops.iter().all(|d| d.data["label"] != "HOTEL DU PORT"));
    let history = env
        .store
        .get_by_key("acc-1", BalanceHistory::DOCTYPE, "ACC|2026")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        history.data["balances"].to_string(),
        r#"{"2026-03-11":1000.00,"2026-03-12":940.00,"2026-03-14":900.00}"#
    );

    // Run 3, the same day, the same data: nothing created, nothing changed.
    let report = env.run(second).await.unwrap();
    assert_eq!(report.created(), 0);
    let c = report.counts[BankOperation::DOCTYPE];
    assert_eq!((c.updated, c.skipped, c.deleted), (0, 2, 0), "{c:?}");
    assert_eq!(env.operations().await.len(), 3);
}

#[tokio::test]
async fn identical_payments_without_ids_are_two_documents_and_a_failed_run_keeps_the_cursor() {
    let env = Env::new().await;
    let coffee = op(10, -250, "CB CAFE", None, false);
    let plan = Plan {
        operations: vec![coffee.clone(), coffee],
        balances: Vec::new(),
    };
    let report = env.run(plan.clone()).await.unwrap();
    assert_eq!(report.counts[BankOperation::DOCTYPE].created, 2);
    let report = env.run(plan).await.unwrap();
    assert_eq!(report.counts[BankOperation::DOCTYPE].skipped, 2);

    // A batch with an operation of another account fails the run: nothing
    // is saved, the cursor stays.
    env.clock
        .set(Utc.with_ymd_and_hms(2026, 3, 20, 8, 0, 0).unwrap());
    let mut stray = op(19, -100, "X", Some("x"), false);
    stray.vendor_account_id = "OTHER".into();
    let err = env
        .run(Plan {
            operations: vec![stray],
            balances: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidData);
    assert!(err.message.contains("****THER"), "{}", err.message);
    let state = env.store.state("acc-1").await.unwrap().unwrap().state;
    assert_eq!(state["_gleaner"]["bank"]["cursors"]["ACC"], "2026-03-12");
}

#[tokio::test]
async fn the_store_re_keys_replaces_and_deletes_in_one_commit() {
    let env = Env::new().await;
    let store = &env.store;
    let commit = |docs: Vec<StagedDoc>, deletes: Vec<(String, String)>| crate::store::RunCommit {
        account_id: "acc-1".into(),
        account_identifier: None,
        run_id: crate::ids::new_id(),
        konnector: "testbank".into(),
        docs,
        deletes,
        state: serde_json::Value::Null,
        finished_at: Utc::now(),
    };
    let doc = |key: &str, v: u32, replaces: Option<&str>| {
        let mut d =
            StagedDoc::from_value(BankOperation::DOCTYPE, key.into(), None, &json!({ "v": v }));
        d.replaces = replaces.map(str::to_owned);
        d
    };
    store
        .commit_run(commit(
            vec![doc("a", 1, None), doc("b", 2, None), doc("c", 3, None)],
            vec![],
        ))
        .await
        .unwrap();
    let id_a = store
        .find_id("acc-1", BankOperation::DOCTYPE, "a")
        .await
        .unwrap()
        .unwrap();
    // a → a2: re-keyed in place. c → b: the new key exists, so b is
    // updated and c deleted. "gone" is absent: n is created. "zz" is
    // absent: nothing to delete.
    let counts = store
        .commit_run(commit(
            vec![
                doc("a2", 10, Some("a")),
                doc("b", 20, Some("c")),
                doc("n", 5, Some("gone")),
            ],
            vec![(BankOperation::DOCTYPE.into(), "zz".into())],
        ))
        .await
        .unwrap();
    let c = counts[BankOperation::DOCTYPE];
    assert_eq!(
        (c.created, c.updated, c.skipped, c.deleted),
        (1, 2, 0, 1),
        "{c:?}"
    );
    assert_eq!(
        store
            .find_id("acc-1", BankOperation::DOCTYPE, "a2")
            .await
            .unwrap(),
        Some(id_a)
    );
    assert!(
        store
            .find_id("acc-1", BankOperation::DOCTYPE, "a")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_id("acc-1", BankOperation::DOCTYPE, "c")
            .await
            .unwrap()
            .is_none()
    );
    let b = store
        .get_by_key("acc-1", BankOperation::DOCTYPE, "b")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.data, json!({"v": 20}));
    let counts = store
        .commit_run(commit(
            vec![],
            vec![(BankOperation::DOCTYPE.into(), "n".into())],
        ))
        .await
        .unwrap();
    assert_eq!(counts[BankOperation::DOCTYPE].deleted, 1);
    assert_eq!(
        store.count_by_doctype().await.unwrap()[BankOperation::DOCTYPE],
        2
    );
}

#[tokio::test]
async fn a_bad_history_field_is_refused_by_name() {
    let mut env = Env::new().await;
    env.account
        .fields
        .insert("lookback_days".into(), "ten".into());
    let err = env.run(Plan::default()).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidData);
    assert!(err.message.contains("lookback_days"), "{}", err.message);
}
