//! Tenants on the PostgreSQL store: two tenants on one database never see
//! or touch each other's rows, through the store's own filters (the first
//! wall) and through row-level security (the second: raw queries in a
//! tenant's scoped transaction); removing a tenant; a database written
//! before tenants existed lands in the default tenant.
//!
//! Each test takes a throwaway database (`gleaner_testing::postgres::TestDb`):
//! skipped in one line when no server answers, required under CI.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use gleaner_framework::store::postgres::tenant::begin_scoped;
use gleaner_framework::store::postgres::tenants::{
    RemoveTenantError, RemovedTenant, remove_tenant_rows,
};
use gleaner_framework::store::{
    Account, AccountStore, Backend, DocStore, PgStore, RunCommit, SealedSession, SealedStore,
    SealedTokens, SessionStore, StagedDoc, TokenStore,
};
use gleaner_framework::{ErrorCode, TenantId};
use gleaner_testing::postgres::TestDb;
use serde_json::{Value, json};
use sqlx::Row as _;

const BILLS: &str = "io.cozy.bills";

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600 + secs, 0).single().unwrap()
}

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
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

fn bill(key: &str, amount: u32) -> StagedDoc {
    StagedDoc::from_value(
        BILLS,
        key.into(),
        None,
        &json!({"vendor": "V", "amount": amount}),
    )
}

/// An account labelled `bank` in the folder `Bank/bank`: the same label
/// and folder in every tenant.
fn account(id: &str) -> Account {
    Account {
        id: id.into(),
        konnector: "free-mobile".into(),
        label: "bank".into(),
        fields: BTreeMap::from([("login".to_owned(), format!("{id}-login"))]),
        sealed_secrets: id.as_bytes().to_vec(),
        endpoint: None,
        created_at: at(0),
        folder: "Bank/bank".into(),
    }
}

fn tokens(tag: &str) -> SealedTokens {
    SealedTokens {
        sealed: tag.as_bytes().to_vec(),
        expires_at: Some(at(3600)),
    }
}

fn session(tag: &str) -> SealedSession {
    SealedSession {
        sealed: tag.as_bytes().to_vec(),
        expires_at: at(3600),
    }
}

/// A database with tenants `alice` and `bob`, each with one account
/// (`acc-a`, `acc-b`; the same label and folder), the same three bills
/// committed, a state, a session and tokens.
async fn two_tenants(label: &str) -> Option<(TestDb, PgStore, PgStore, PgStore)> {
    let db = TestDb::create(label).await?;
    let admin = PgStore::open(&db.url).await.unwrap();
    admin.create_tenant(&tenant("alice"), at(1)).await.unwrap();
    admin.create_tenant(&tenant("bob"), at(2)).await.unwrap();
    let a = admin.with_tenant(tenant("alice"));
    let b = admin.with_tenant(tenant("bob"));
    for (store, id, tag) in [(&a, "acc-a", "A"), (&b, "acc-b", "B")] {
        store.put_account(&account(id)).await.unwrap();
        let docs = vec![bill("x", 1), bill("y", 2), bill("z", 3)];
        let c = store
            .commit_run(commit(id, docs, json!({ "who": tag }), 10))
            .await
            .unwrap();
        // The same keys in both tenants: created in both.
        assert_eq!(c[BILLS].created, 3, "{tag}");
        store.save_session(id, &session(tag)).await.unwrap();
        store.save_tokens(id, &tokens(tag), at(20)).await.unwrap();
    }
    Some((db, admin, a, b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_see_only_their_own_rows() {
    let Some((_db, default, a, b)) = two_tenants("tenants_own_rows").await else {
        return;
    };
    assert_eq!(a.tenant().as_str(), "alice");
    assert!(default.tenant().is_default());

    // Accounts: the same label and folder in both, each sees its own.
    let ids = |v: Vec<Account>| v.into_iter().map(|a| a.id).collect::<Vec<_>>();
    assert_eq!(ids(a.list_accounts().await.unwrap()), ["acc-a"]);
    assert_eq!(ids(b.list_accounts().await.unwrap()), ["acc-b"]);
    assert!(default.list_accounts().await.unwrap().is_empty());
    assert!(a.get_account("acc-b").await.unwrap().is_none());
    assert_eq!(
        b.get_account("acc-b")
            .await
            .unwrap()
            .unwrap()
            .sealed_secrets,
        b"acc-b"
    );
    // Within a tenant the label stays unique.
    let mut twin = account("acc-a2");
    twin.folder = "Other".into();
    let e = a.put_account(&twin).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidData, "{e}");
    // Another tenant's account id is never overwritten.
    let mut stolen = account("acc-b");
    stolen.label = "mine".into();
    stolen.folder = "Mine".into();
    assert!(a.put_account(&stolen).await.is_err());
    assert_eq!(b.get_account("acc-b").await.unwrap().unwrap().label, "bank");

    // Documents: listing, paging, lookups, counts.
    let a_docs = a.list(BILLS, None, None, 100).await.unwrap();
    let b_docs = b.list(BILLS, None, None, 100).await.unwrap();
    assert_eq!(a_docs.len(), 3);
    assert_eq!(b_docs.len(), 3);
    assert!(a_docs.iter().all(|d| d.account_id == "acc-a"));
    assert!(b_docs.iter().all(|d| d.account_id == "acc-b"));
    assert!(
        a.list(BILLS, Some("acc-b"), None, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = a.list(BILLS, None, after.as_deref(), 1).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        paged.extend(page.into_iter().map(|d| d.id));
    }
    assert_eq!(
        paged,
        a_docs.iter().map(|d| d.id.clone()).collect::<Vec<_>>()
    );
    assert_eq!(a.count_by_doctype().await.unwrap()[BILLS], 3);
    assert!(default.count_by_doctype().await.unwrap().is_empty());
    let b_ids: Vec<String> = b_docs.iter().map(|d| d.id.clone()).collect();
    assert!(a.docs_by_id(BILLS, &b_ids).await.unwrap().is_empty());
    assert_eq!(b.docs_by_id(BILLS, &b_ids).await.unwrap().len(), 3);
    assert!(a.find_id("acc-b", BILLS, "x").await.unwrap().is_none());
    assert!(a.get_by_key("acc-b", BILLS, "x").await.unwrap().is_none());
    assert_eq!(
        b.find_id("acc-b", BILLS, "x").await.unwrap(),
        b_docs
            .iter()
            .find(|d| d.data["amount"] == json!(1))
            .map(|d| d.id.clone())
    );
    assert_eq!(a.project(BILLS, None, &["amount"]).await.unwrap().len(), 3);
    assert!(
        a.project(BILLS, Some("acc-b"), &["amount"])
            .await
            .unwrap()
            .is_empty()
    );

    // Konnector state, sessions, tokens.
    assert_eq!(
        a.state("acc-a").await.unwrap().unwrap().state,
        json!({"who": "A"})
    );
    assert!(a.state("acc-b").await.unwrap().is_none());
    assert!(a.load_session("acc-b").await.unwrap().is_none());
    assert_eq!(b.load_session("acc-b").await.unwrap().unwrap().sealed, b"B");
    assert!(a.load_tokens("acc-b").await.unwrap().is_none());
    assert!(a.save_tokens("acc-b", &tokens("A"), at(30)).await.is_err());
    assert!(a.save_session("acc-b", &session("A")).await.is_err());
    {
        let mut lock = a.lock_tokens("acc-b").await.unwrap();
        assert!(lock.current().await.unwrap().is_none());
        assert!(lock.write(&tokens("A"), at(30)).await.is_err());
    }
    a.delete_tokens("acc-b").await.unwrap();
    a.delete_session("acc-b").await.unwrap();
    assert_eq!(b.load_tokens("acc-b").await.unwrap().unwrap().sealed, b"B");
    assert_eq!(b.load_session("acc-b").await.unwrap().unwrap().sealed, b"B");
    // The vault's checks count every tenant's sealed records (they all
    // depend on the installation's key); a tenant's own are its data key's.
    let counts = a.sealed_counts().await.unwrap();
    assert_eq!(counts.get("accounts"), Some(&2));
    assert_eq!(counts.get("oauth_tokens"), Some(&2));
    assert_eq!(counts.get("sessions"), Some(&2));
    let counts = a.tenant_sealed_counts().await.unwrap();
    assert_eq!(counts.get("accounts"), Some(&1));
    assert_eq!(counts.get("oauth_tokens"), Some(&1));
    assert_eq!(counts.get("sessions"), Some(&1));
    let counts = default.tenant_sealed_counts().await.unwrap();
    assert_eq!(counts.values().sum::<u64>(), 0, "{counts:?}");

    // A commit of another tenant's account id writes nothing.
    assert!(
        a.commit_run(commit("acc-b", vec![bill("w", 9)], json!(null), 40))
            .await
            .is_err()
    );
    assert_eq!(b.count_by_doctype().await.unwrap()[BILLS], 3);
    assert_eq!(
        b.state("acc-b").await.unwrap().unwrap().state,
        json!({"who": "B"})
    );

    // Removal and purge never reach the other tenant.
    assert!(!a.remove_account("acc-b", true).await.unwrap());
    assert_eq!(b.list(BILLS, None, None, 100).await.unwrap().len(), 3);
    assert!(a.remove_account("acc-a", true).await.unwrap());
    assert!(a.list(BILLS, None, None, 100).await.unwrap().is_empty());
    assert!(a.list_accounts().await.unwrap().is_empty());
    assert_eq!(b.list(BILLS, None, None, 100).await.unwrap().len(), 3);
    assert_eq!(b.list_accounts().await.unwrap().len(), 1);
    assert!(b.state("acc-b").await.unwrap().is_some());
    assert!(b.load_tokens("acc-b").await.unwrap().is_some());
    b.check().await.unwrap();
    default.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_level_security_is_the_second_wall() {
    let Some((_db, admin, _a, _b)) = two_tenants("tenants_rls").await else {
        return;
    };
    let pool = admin.pool();
    let mut tx = begin_scoped(pool, &tenant("alice")).await.unwrap();
    // No WHERE: the policies alone confine the counts.
    let docs: i64 = sqlx::query_scalar("SELECT count(*) FROM documents")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(docs, 3);
    let accounts: Vec<String> = sqlx::query_scalar("SELECT id FROM accounts")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(accounts, ["acc-a"]);
    for table in ["konnector_state", "oauth_tokens", "sessions"] {
        let owners: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT account_id FROM {table}"
        )))
        .fetch_all(&mut *tx)
        .await
        .unwrap();
        assert_eq!(owners, ["acc-a"], "{table}");
    }
    // Bob's account by id: nothing.
    let row = sqlx::query("SELECT id FROM accounts WHERE id = 'acc-b'")
        .fetch_optional(&mut *tx)
        .await
        .unwrap();
    assert!(row.is_none());
    // An update without WHERE touches only Alice's rows.
    let n = sqlx::query("UPDATE documents SET rev = rev")
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(n, 3);
    // Bob's rows cannot be written from Alice's transaction.
    let e = sqlx::query(
        "INSERT INTO konnector_state (account_id, state, last_sync, last_run_id, tenant_id)
         VALUES ('acc-x', 'null'::jsonb, now(), 'r', 'bob')",
    )
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert!(
        e.to_string().contains("row-level security"),
        "not refused by RLS: {e}"
    );
    tx.rollback().await.unwrap();

    // The installation's tables: readable, not writable.
    let mut tx = begin_scoped(pool, &tenant("alice")).await.unwrap();
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(tenants, 3);
    assert!(
        sqlx::query("DELETE FROM tenants")
            .execute(&mut *tx)
            .await
            .is_err()
    );
    tx.rollback().await.unwrap();

    // The owner's un-scoped connection sees everything.
    let all: i64 = sqlx::query_scalar("SELECT count(*) FROM documents")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(all, 6);
    admin.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_tenant_leaves_the_others() {
    let Some((_db, admin, a, b)) = two_tenants("tenants_remove").await else {
        return;
    };
    // A default-tenant row, to see it survive too.
    admin.put_account(&account("acc-d")).await.unwrap();

    let listed = admin.list_tenants().await.unwrap();
    let summary: Vec<(&str, u64, u64)> = listed
        .iter()
        .map(|t| (t.id.as_str(), t.accounts, t.documents))
        .collect();
    assert_eq!(summary, [("alice", 1, 3), ("bob", 1, 3), ("default", 1, 0)]);
    assert_eq!(listed[0].created_at, at(1));

    let e = admin
        .create_tenant(&tenant("bob"), at(5))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("`bob`"), "{e}");
    assert!(
        admin
            .create_tenant(&TenantId::default_tenant(), at(5))
            .await
            .is_err()
    );

    let mut tx = admin.pool().begin().await.unwrap();
    assert!(matches!(
        remove_tenant_rows(&mut tx, &TenantId::default_tenant()).await,
        Err(RemoveTenantError::DefaultTenant)
    ));
    let removed = remove_tenant_rows(&mut tx, &tenant("bob")).await.unwrap();
    assert_eq!(
        removed,
        RemovedTenant {
            accounts: 1,
            documents: 3
        }
    );
    tx.commit().await.unwrap();

    assert!(!admin.tenant_exists(&tenant("bob")).await.unwrap());
    assert!(admin.tenant_exists(&tenant("alice")).await.unwrap());
    assert!(
        admin
            .tenant_exists(&TenantId::default_tenant())
            .await
            .unwrap()
    );
    assert!(b.list_accounts().await.unwrap().is_empty());
    assert!(b.list(BILLS, None, None, 100).await.unwrap().is_empty());
    assert!(b.state("acc-b").await.unwrap().is_none());
    assert!(b.load_tokens("acc-b").await.unwrap().is_none());
    assert!(b.load_session("acc-b").await.unwrap().is_none());
    // No row of bob is left anywhere (the owner's view).
    for table in [
        "accounts",
        "documents",
        "konnector_state",
        "oauth_tokens",
        "sessions",
    ] {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {table} WHERE tenant_id = 'bob'"
        )))
        .fetch_one(admin.pool())
        .await
        .unwrap();
        assert_eq!(n, 0, "{table}");
    }
    assert_eq!(a.list(BILLS, None, None, 100).await.unwrap().len(), 3);
    assert!(a.load_tokens("acc-a").await.unwrap().is_some());
    assert!(admin.get_account("acc-d").await.unwrap().is_some());
    let summary: Vec<String> = admin
        .list_tenants()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id.to_string())
        .collect();
    assert_eq!(summary, ["alice", "default"]);
    // Removing again removes nothing.
    let mut conn = admin.pool().acquire().await.unwrap();
    assert_eq!(
        remove_tenant_rows(&mut conn, &tenant("bob")).await.unwrap(),
        RemovedTenant::default()
    );
    drop(conn);
    admin.close().await;
}

/// A database written before tenants (migration 0001 only, rows in every
/// table) opens with its rows in the default tenant, which works as before;
/// new tenants start empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_from_before_tenants_is_the_default_tenant() {
    let Some(db) = TestDb::create("tenants_upgrade").await else {
        return;
    };
    // Migration 0001 alone, recorded where the store's migrator looks.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/framework/migrations/postgres/0001_store.sql"
        ),
        dir.path().join("0001_store.sql"),
    )
    .unwrap();
    let mut old = sqlx::migrate::Migrator::new(dir.path()).await.unwrap();
    old.dangerous_set_table_name(gleaner_framework::store::postgres::MIGRATIONS_TABLE);
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    old.run(&pool).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO accounts (id, konnector, label, fields, sealed_secrets, created_at, folder)
           VALUES ('acc-old', 'free-mobile', 'bank', '{}'::jsonb, '\\x01'::bytea, now(), 'Bank/bank');
         INSERT INTO documents (doctype, id, account_id, dedup_key, rev, content_hash, data, created_at, updated_at)
           VALUES ('io.cozy.bills', 'doc-old', 'acc-old', 'x', 1, 'h', '{\"amount\": 1}'::jsonb, now(), now());
         INSERT INTO konnector_state VALUES ('acc-old', '{\"cursor\": 7}'::jsonb, now(), 'run-old');
         INSERT INTO oauth_tokens (account_id, sealed, updated_at) VALUES ('acc-old', '\\x02'::bytea, now());
         INSERT INTO sessions VALUES ('acc-old', '\\x03'::bytea, now(), now());
         INSERT INTO vault_meta VALUES ('key_id', 'k1');",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let store = PgStore::open(&db.url).await.unwrap();
    for table in [
        "accounts",
        "documents",
        "konnector_state",
        "oauth_tokens",
        "sessions",
    ] {
        let tenants: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT tenant_id FROM {table}"
        )))
        .fetch_all(store.pool())
        .await
        .unwrap();
        assert_eq!(tenants, ["default"], "{table}");
    }
    assert_eq!(store.list_accounts().await.unwrap().len(), 1);
    let docs = store.list(BILLS, None, None, 10).await.unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].id, "doc-old");
    assert_eq!(
        store.state("acc-old").await.unwrap().unwrap().state,
        json!({"cursor": 7})
    );
    assert!(store.load_tokens("acc-old").await.unwrap().is_some());
    assert!(store.load_session("acc-old").await.unwrap().is_some());
    assert_eq!(store.vault_key_id().await.unwrap().as_deref(), Some("k1"));
    // The default tenant goes on committing as before.
    let c = store
        .commit_run(commit(
            "acc-old",
            vec![bill("x", 2), bill("y", 3)],
            json!(null),
            50,
        ))
        .await
        .unwrap();
    assert_eq!((c[BILLS].created, c[BILLS].updated), (1, 1));
    // Every insert must name its tenant now.
    let e = sqlx::query(
        "INSERT INTO sessions (account_id, sealed, expires_at, updated_at) VALUES ('z', '\\x00'::bytea, now(), now())",
    )
    .execute(store.pool())
    .await
    .unwrap_err();
    assert!(e.to_string().contains("tenant_id"), "{e}");
    // A new tenant starts empty, with the same label free.
    store.create_tenant(&tenant("carol"), at(0)).await.unwrap();
    let carol = store.with_tenant(tenant("carol"));
    assert!(carol.list_accounts().await.unwrap().is_empty());
    carol.put_account(&account("acc-c")).await.unwrap();
    let info = store.list_tenants().await.unwrap();
    let default = info.iter().find(|t| t.id.is_default()).unwrap();
    assert_eq!((default.accounts, default.documents), (1, 2));
    // Reopening (0002 applied already) changes nothing.
    drop(store);
    let again = PgStore::open(&db.url).await.unwrap();
    assert_eq!(again.list_accounts().await.unwrap()[0].id, "acc-old");
    let row = sqlx::query("SELECT count(*) AS n FROM tenants")
        .fetch_one(again.pool())
        .await
        .unwrap();
    assert_eq!(row.get::<i64, _>("n"), 2);
    again.close().await;
}

/// An operator's database is not the superuser's: Gleaner connects as a
/// plain user that owns its database, and an administrator has made the
/// role `gleaner_tenant` and granted it (docs/postgres.md, "Tenants").
/// Without the grant the migration stops with the server's reason; with
/// it, that user migrates both schemas and the walls hold as they do for a
/// superuser (as the tables' owner it sees every row un-scoped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_user_owning_its_database_migrates_and_is_walled() {
    let Some(db) = TestDb::create("tenants_owner").await else {
        return;
    };
    let owner = format!("gleaner_owner_{:08x}", rand::random::<u32>());
    let admin = sqlx::PgPool::connect(&db.url).await.unwrap();
    for sql in [
        format!("CREATE ROLE {owner} LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB"),
        format!("ALTER DATABASE {} OWNER TO {owner}", db.name),
        // The role exists once per cluster; another test may have made it.
        "DO $$ BEGIN CREATE ROLE gleaner_tenant NOLOGIN; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
            .to_owned(),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&admin)
            .await
            .unwrap();
    }
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_username(&owner).unwrap();
    let url = url.to_string();

    // Not a member of gleaner_tenant, and no right to grant it.
    let e = PgStore::open(&url)
        .await
        .err()
        .expect("migrated without the grant");
    let shown = e.to_string();
    assert!(
        shown.contains("gleaner_tenant") || shown.contains("permission denied"),
        "{shown}"
    );

    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "GRANT gleaner_tenant TO {owner}"
    )))
    .execute(&admin)
    .await
    .unwrap();
    let store = PgStore::open(&url).await.unwrap();
    let queue = gleaner_scheduler::PgQueue::open(
        store.pool().clone(),
        std::sync::Arc::new(gleaner_scheduler::SystemClock),
    )
    .await
    .unwrap();
    let is_super: bool =
        sqlx::query_scalar("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert!(!is_super);
    store.create_tenant(&tenant("alice"), at(1)).await.unwrap();
    store.create_tenant(&tenant("bob"), at(2)).await.unwrap();
    for (name, id) in [("alice", "acc-a"), ("bob", "acc-b")] {
        let scoped = store.with_tenant(tenant(name));
        scoped.put_account(&account(id)).await.unwrap();
        scoped
            .commit_run(commit(id, vec![bill("x", 1)], json!(null), 10))
            .await
            .unwrap();
        assert_eq!(scoped.list_accounts().await.unwrap().len(), 1, "{name}");
    }
    let mut tx = begin_scoped(store.pool(), &tenant("alice")).await.unwrap();
    let ids: Vec<String> = sqlx::query_scalar("SELECT account_id FROM documents")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(
        ids,
        ["acc-a"],
        "RLS confines the owner's scoped transaction"
    );
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM sched_jobs")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(jobs, 0, "the queue's tables are granted to the role");
    tx.rollback().await.unwrap();
    let all: i64 = sqlx::query_scalar("SELECT count(*) FROM documents")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(all, 2, "the owner's un-scoped connection sees every row");
    drop(queue);
    store.close().await;
    admin.close().await;
    let server = gleaner_testing::postgres::server_url();
    drop(db);
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&server)
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP ROLE IF EXISTS {owner}")))
        .execute(&mut conn)
        .await
        .unwrap();
}
