//! One behaviour suite for every [`JobQueue`] backend: each behaviour is
//! written once, as `async fn x(q: Arc<dyn JobQueue>, env: &Env)`, and
//! [`both!`] emits a test per backend: SQLite (a store file in a temporary
//! folder) and PostgreSQL (a throwaway database of
//! `gleaner_testing::postgres::TestDb`; skipped in one line without a
//! server, required under CI).
//!
//! Time is a [`ManualClock`] shared by every queue of a test: no test
//! sleeps to make time pass, except the wake-up test, which measures it.
//! "Two machines" are two queues over two pools of one database.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use gleaner_framework::ErrorCode;
use gleaner_framework::store::SqliteStore;
use gleaner_framework::store::postgres::tenant::begin_scoped;
use gleaner_framework::tenant::TenantId;
use gleaner_scheduler::Clock as _;
use gleaner_scheduler::queue::{JobFilter, QueueDepth, RemovedRows, remove_tenant_rows};
use gleaner_scheduler::retry::AfterFailure;
use gleaner_scheduler::{
    Job, JobCode, JobQueue, JobState, ManualClock, Outcome, PgQueue, Queue, SchedulerError,
    TriggerKind,
};
use gleaner_testing::postgres::TestDb;
use sqlx::postgres::PgPoolOptions;

const LEASE: Duration = Duration::from_secs(60);

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn start() -> DateTime<Utc> {
    at("2026-11-23T12:00:00Z")
}

fn unlimited(_: &str) -> usize {
    1000
}

fn minutes(n: i64) -> chrono::Duration {
    chrono::Duration::minutes(n)
}

enum Backend {
    Sqlite {
        dir: tempfile::TempDir,
        store: SqliteStore,
    },
    Postgres {
        db: TestDb,
        pool: sqlx::PgPool,
    },
}

/// What a behaviour needs beside its queue: accounts, the konnectors'
/// committed runs, the clock, and more queues on the same database.
pub struct Env {
    backend: Backend,
    clock: ManualClock,
}

impl Env {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("gleaner.db"))
            .await
            .unwrap();
        Self {
            backend: Backend::Sqlite { dir, store },
            clock: ManualClock::new(start()),
        }
    }

    async fn postgres(label: &str) -> Option<Self> {
        let db = TestDb::create(label).await?;
        let pool = pg_pool(&db.url).await;
        let mut m = sqlx::migrate!("../framework/migrations/postgres");
        m.dangerous_set_table_name("gleaner_store_migrations");
        m.run(&pool).await.unwrap();
        sqlx::raw_sql(STORE_TENANTS).execute(&pool).await.unwrap();
        Some(Self {
            backend: Backend::Postgres { db, pool },
            clock: ManualClock::new(start()),
        })
    }

    fn is_pg(&self) -> bool {
        matches!(self.backend, Backend::Postgres { .. })
    }

    /// The test's first queue.
    async fn queue(&self) -> Arc<dyn JobQueue> {
        let clock = Arc::new(self.clock.clone());
        match &self.backend {
            Backend::Sqlite { store, .. } => {
                Arc::new(Queue::open(store.pool().clone(), clock).await.unwrap())
            }
            Backend::Postgres { pool, .. } => {
                Arc::new(PgQueue::open(pool.clone(), clock).await.unwrap())
            }
        }
    }

    /// Another machine: a queue over a pool of its own on the same
    /// database (SQLite: a second store on the same file).
    async fn other_machine(&self) -> Arc<dyn JobQueue> {
        let clock = Arc::new(self.clock.clone());
        match &self.backend {
            Backend::Sqlite { dir, .. } => {
                let store = SqliteStore::open(&dir.path().join("gleaner.db"))
                    .await
                    .unwrap();
                Arc::new(Queue::open(store.pool().clone(), clock).await.unwrap())
            }
            Backend::Postgres { db, .. } => {
                let pool = pg_pool(&db.url).await;
                Arc::new(PgQueue::open(pool, clock).await.unwrap())
            }
        }
    }

    /// Runs one statement of plain SQL (no parameters: both dialects).
    async fn exec(&self, sql: &str) {
        match &self.backend {
            Backend::Sqlite { store, .. } => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(store.pool())
                    .await
                    .unwrap();
            }
            Backend::Postgres { pool, .. } => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(pool)
                    .await
                    .unwrap();
            }
        }
    }

    /// Adds an account of `konnector` to the store.
    async fn account(&self, id: &str, konnector: &str) {
        let now = self.clock.now().to_rfc3339();
        match &self.backend {
            Backend::Sqlite { .. } => {
                self.exec(&format!(
                    "INSERT INTO accounts (id, konnector, label, fields, sealed_secrets, created_at, folder)
                     VALUES ('{id}', '{konnector}', '{id}', '{{}}', x'', '{now}', '{id}')"
                ))
                .await;
            }
            Backend::Postgres { .. } => {
                self.exec(&format!(
                    "INSERT INTO accounts (id, konnector, label, fields, sealed_secrets, created_at, folder)
                     VALUES ('{id}', '{konnector}', '{id}', '{{}}'::jsonb, '\\x'::bytea, now(), '{id}')"
                ))
                .await;
            }
        }
    }

    /// Records that a run of `account` committed with `run_id` (what a
    /// konnector run writes with its documents).
    async fn committed(&self, account: &str, run_id: &str) {
        let (state, now) = if self.is_pg() {
            ("'{}'::jsonb", "now()".to_owned())
        } else {
            ("'{}'", format!("'{}'", self.clock.now().to_rfc3339()))
        };
        self.exec(&format!(
            "INSERT INTO konnector_state (account_id, state, last_sync, last_run_id)
             VALUES ('{account}', {state}, {now}, '{run_id}')
             ON CONFLICT (account_id) DO UPDATE SET last_run_id = excluded.last_run_id"
        ))
        .await;
    }

    fn advance(&self, by: chrono::Duration) {
        self.clock.advance(by);
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

/// What the queue reads of the store's tenants, made sure of whichever
/// store migrations this build has: `accounts.tenant_id` and
/// `konnector_state.tenant_id` (the store's migration adds them; added
/// here when missing), given a default in this test database so the
/// helpers above write default-tenant rows, and the tenant role's grants on
/// them (recovery and planning read them inside a tenant's scope).
const STORE_TENANTS: &str = r#"
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gleaner_tenant') THEN
        CREATE ROLE gleaner_tenant NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;
ALTER TABLE accounts ADD COLUMN IF NOT EXISTS tenant_id TEXT COLLATE "C" NOT NULL DEFAULT 'default';
ALTER TABLE accounts ALTER COLUMN tenant_id SET DEFAULT 'default';
ALTER TABLE konnector_state ADD COLUMN IF NOT EXISTS tenant_id TEXT COLLATE "C" NOT NULL DEFAULT 'default';
ALTER TABLE konnector_state ALTER COLUMN tenant_id SET DEFAULT 'default';
GRANT SELECT, INSERT, UPDATE, DELETE ON accounts, konnector_state TO gleaner_tenant;
"#;

async fn pg_pool(url: &str) -> sqlx::PgPool {
    PgPoolOptions::new()
        .max_connections(8)
        .connect(url)
        .await
        .unwrap()
}

/// Emits, for each behaviour, a test on SQLite and one on PostgreSQL.
macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let env = super::Env::sqlite().await;
                    let q = env.queue().await;
                    super::$name(q, &env).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(env) = super::Env::postgres(stringify!($name)).await else {
                        return;
                    };
                    let q = env.queue().await;
                    super::$name(q, &env).await;
                }
            )*
        }
    };
}

both!(
    two_machines_never_claim_a_job_twice,
    the_konnector_limit_holds_under_concurrent_claimers,
    one_active_job_per_account,
    a_batch_fills_each_konnectors_room_oldest_first,
    a_manual_request_joins_the_queued_job,
    due_triggers_become_jobs_or_skips_with_reasons,
    a_failure_queues_its_retry_as_a_new_row,
    leases_are_renewed_and_expired_ones_recovered,
    a_stopping_worker_requeues_its_jobs,
    second_factor_answers_are_given_once_and_taken_once,
    prune_deletes_old_history_only,
    unknown_codes_read_back_as_stored,
    waiting_for_work_ends_early_or_at_most_max,
    workers_and_depth_are_reported,
    triggers_follow_the_accounts,
);

fn failed(code: ErrorCode, next: AfterFailure) -> Outcome {
    Outcome::Failed {
        code,
        message: format!("{code} happened"),
        next,
    }
}

async fn claim_one(q: &Arc<dyn JobQueue>, owner: &str) -> Option<Job> {
    q.claim(owner, LEASE, &unlimited).await.unwrap()
}

async fn two_machines_never_claim_a_job_twice(q: Arc<dyn JobQueue>, env: &Env) {
    let other = env.other_machine().await;
    for i in 0..40 {
        let id = format!("acc{i:02}");
        let konnector = format!("k{}", i % 4);
        env.account(&id, &konnector).await;
        q.enqueue_manual(&id, &konnector).await.unwrap();
    }
    let mut claimers = Vec::new();
    for c in 0..8 {
        let queue = if c % 2 == 0 {
            Arc::clone(&q)
        } else {
            Arc::clone(&other)
        };
        claimers.push(tokio::spawn(async move {
            let owner = format!("worker-{c}");
            let mut mine = Vec::new();
            loop {
                let jobs = queue
                    .claim_batch(&owner, LEASE, &unlimited, 1 + c % 3)
                    .await
                    .unwrap();
                if jobs.is_empty() {
                    return mine;
                }
                assert!(
                    jobs.iter()
                        .all(|j| j.lease_owner.as_deref() == Some(&*owner))
                );
                mine.extend(jobs.into_iter().map(|j| j.id));
            }
        }));
    }
    let mut all = Vec::new();
    for c in claimers {
        all.extend(c.await.unwrap());
    }
    let distinct: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 40, "every job claimed once: {all:?}");
    assert_eq!(distinct.len(), 40, "no job claimed twice");
    assert_eq!(q.counts().await.unwrap().get("running"), Some(&40));
}

async fn the_konnector_limit_holds_under_concurrent_claimers(q: Arc<dyn JobQueue>, env: &Env) {
    const LIMIT: usize = 3;
    let other = env.other_machine().await;
    for i in 0..50 {
        let id = format!("acc{i:02}");
        env.account(&id, "busy").await;
        q.enqueue_manual(&id, "busy").await.unwrap();
    }
    // A konnector of its own limit beside it, not held back by the first.
    env.account("side", "quiet").await;
    q.enqueue_manual("side", "quiet").await.unwrap();
    let limit = |k: &str| if k == "busy" { LIMIT } else { 10 };
    let mut done = 0;
    let mut rounds = 0;
    while done < 50 {
        rounds += 1;
        assert!(rounds < 60, "no progress");
        let mut claimers = Vec::new();
        for c in 0..8 {
            let queue = if c % 2 == 0 {
                Arc::clone(&q)
            } else {
                Arc::clone(&other)
            };
            claimers.push(tokio::spawn(async move {
                queue
                    .claim_batch(&format!("worker-{c}"), LEASE, &limit, 2)
                    .await
                    .unwrap()
            }));
        }
        let mut claimed = Vec::new();
        for c in claimers {
            claimed.extend(c.await.unwrap());
        }
        let running = q
            .jobs(&JobFilter {
                states: vec![JobState::Running],
                limit: 1000,
                ..JobFilter::default()
            })
            .await
            .unwrap();
        let busy = running.iter().filter(|j| j.konnector == "busy").count();
        assert!(busy <= LIMIT, "{busy} runs of `busy` at once");
        assert_eq!(busy, LIMIT.min(50 - done), "the free slots are filled");
        // Every run of the round ends; the next round fills the slots.
        for job in claimed.iter().filter(|j| j.konnector == "busy") {
            let owner = job.lease_owner.clone().unwrap();
            q.finish(job, &owner, &Outcome::Done(serde_json::json!({})))
                .await
                .unwrap();
            done += 1;
        }
    }
    let side = q.jobs(&JobFilter::default()).await.unwrap();
    let side = side.iter().find(|j| j.account_id == "side").unwrap();
    assert_eq!(side.state, JobState::Running, "the other konnector ran");
}

async fn one_active_job_per_account(q: Arc<dyn JobQueue>, env: &Env) {
    env.account("a", "k").await;
    let first = q.enqueue_manual("a", "k").await.unwrap();
    let job = claim_one(&q, "w1").await.unwrap();
    assert_eq!(job.id, first);
    let second = q.enqueue_manual("a", "k").await.unwrap();
    assert_ne!(second, first, "a new queued job beside the running one");
    assert!(claim_one(&q, "w2").await.is_none(), "the account is held");
    match q.start_manual("a", "k", "cli", LEASE).await {
        Err(SchedulerError::Busy { job, state, .. }) => {
            assert_eq!((job, state.as_str()), (first, "running"));
        }
        other => panic!("expected Busy, got {other:?}"),
    }
    assert_eq!(
        q.job(second).await.unwrap().unwrap().state,
        JobState::Queued,
        "a refused start changes nothing"
    );
    // Waiting for a code still holds the account.
    q.set_awaiting(first, "sms", None, env.now() + minutes(5))
        .await
        .unwrap();
    assert!(claim_one(&q, "w2").await.is_none());
    q.finish(&job, "w1", &Outcome::Done(serde_json::json!({"n": 1})))
        .await
        .unwrap();
    let next = claim_one(&q, "w2").await.unwrap();
    assert_eq!(next.id, second);
    // The database itself refuses a second active job of an account.
    env.account("b", "k").await;
    let started = q.start_manual("b", "k", "cli", LEASE).await.unwrap();
    assert_eq!(started.state, JobState::Running);
    assert_eq!(started.lease_owner.as_deref(), Some("cli"));
    assert!(matches!(
        q.start_manual("b", "k", "cli2", LEASE).await,
        Err(SchedulerError::Busy { .. })
    ));
}

/// One batch over several konnectors: each gets as many jobs as its limit
/// leaves room for, the batch stops at `max`, and the jobs come oldest
/// first, as the candidates were read.
async fn a_batch_fills_each_konnectors_room_oldest_first(q: Arc<dyn JobQueue>, env: &Env) {
    // Queued in this order: a1 b1 c1 a2 b2 c2 a3 b3 a4 b4 c3.
    let order = [
        ("a1", "ka"),
        ("b1", "kb"),
        ("c1", "kc"),
        ("a2", "ka"),
        ("b2", "kb"),
        ("c2", "kc"),
        ("a3", "ka"),
        ("b3", "kb"),
        ("a4", "ka"),
        ("b4", "kb"),
        ("c3", "kc"),
    ];
    for (id, konnector) in order {
        env.account(id, konnector).await;
        q.enqueue_manual(id, konnector).await.unwrap();
        env.advance(chrono::Duration::seconds(1));
    }
    let limit = |k: &str| match k {
        "ka" => 2,
        "kb" => 1,
        _ => 10,
    };
    let accounts =
        |jobs: &[Job]| -> Vec<String> { jobs.iter().map(|j| j.account_id.clone()).collect() };
    // `ka` has one run already.
    let first = q.claim_batch("w", LEASE, &limit, 1).await.unwrap();
    assert_eq!(accounts(&first), ["a1"]);
    let batch = q.claim_batch("w", LEASE, &limit, 4).await.unwrap();
    assert_eq!(
        accounts(&batch),
        ["b1", "c1", "a2", "c2"],
        "ka's one free slot, kb's one, kc's first two: four at most"
    );
    for job in &batch {
        assert_eq!(job.state, JobState::Running);
        assert_eq!(job.lease_owner.as_deref(), Some("w"));
        assert_eq!(job.started_at, Some(env.now()));
    }
    let rest = q.claim_batch("w", LEASE, &limit, 10).await.unwrap();
    assert_eq!(accounts(&rest), ["c3"], "ka and kb are full");
    assert!(
        q.claim_batch("w", LEASE, &limit, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_manual_request_joins_the_queued_job(q: Arc<dyn JobQueue>, env: &Env) {
    env.account("a", "k").await;
    q.add_triggers(&[("a".into(), "k".into(), env.now())])
        .await
        .unwrap();
    let planned = q
        .enqueue_due(&|_, now| Some(now + chrono::Duration::days(1)), minutes(10))
        .await
        .unwrap();
    assert_eq!(planned.len(), 1);
    let auto = q.job(planned[0]).await.unwrap().unwrap();
    assert_eq!((auto.trigger, auto.manual), (TriggerKind::Slot, false));
    let manual = q.enqueue_manual("a", "k").await.unwrap();
    assert_eq!(manual, planned[0], "the queued job, not a second one");
    let job = q.job(manual).await.unwrap().unwrap();
    assert_eq!((job.trigger, job.manual), (TriggerKind::Manual, true));
    assert_eq!(q.enqueue_manual("a", "k").await.unwrap(), manual);
    assert_eq!(q.counts().await.unwrap().get("queued"), Some(&1));
}

async fn due_triggers_become_jobs_or_skips_with_reasons(q: Arc<dyn JobQueue>, env: &Env) {
    for id in ["ok", "blocked", "busy", "paused", "late", "later"] {
        env.account(id, "k").await;
    }
    let now = env.now();
    q.add_triggers(&[
        ("ok".into(), "k".into(), now - minutes(1)),
        ("blocked".into(), "k".into(), now - minutes(1)),
        ("busy".into(), "k".into(), now - minutes(1)),
        ("paused".into(), "k".into(), now - minutes(1)),
        ("late".into(), "k".into(), now - minutes(600)),
        ("later".into(), "k".into(), now + minutes(60)),
    ])
    .await
    .unwrap();
    // Adding again keeps each trigger as it is.
    q.add_triggers(&[("ok".into(), "k".into(), now + minutes(999))])
        .await
        .unwrap();
    assert_eq!(
        q.trigger("ok").await.unwrap().unwrap().next_run_at,
        now - minutes(1)
    );
    // `blocked` failed with an error that needs the person.
    let b = q.start_manual("blocked", "k", "w", LEASE).await.unwrap();
    q.finish(
        &b,
        "w",
        &failed(ErrorCode::LoginFailed, AfterFailure::BlockAccount),
    )
    .await
    .unwrap();
    let busy = q.enqueue_manual("busy", "k").await.unwrap();
    q.set_paused("paused", true).await.unwrap();
    assert!(matches!(
        q.set_paused("nobody", true).await,
        Err(SchedulerError::NotFound(_))
    ));
    let tomorrow = |_: &gleaner_scheduler::TriggerState, now: DateTime<Utc>| {
        Some(now + chrono::Duration::days(1))
    };
    let queued = q.enqueue_due(&tomorrow, minutes(10)).await.unwrap();
    assert_eq!(queued.len(), 2, "ok and late");
    let jobs = q.jobs(&JobFilter::default()).await.unwrap();
    let of = |account: &str| -> Vec<&Job> {
        jobs.iter()
            .filter(|j| j.account_id == account && j.id != b.id && j.id != busy)
            .collect()
    };
    assert_eq!(of("ok")[0].trigger, TriggerKind::Slot);
    assert_eq!(of("ok")[0].state, JobState::Queued);
    assert_eq!(of("late")[0].trigger, TriggerKind::CatchUp);
    let skipped = of("blocked")[0];
    assert_eq!(skipped.state, JobState::Skipped);
    assert_eq!(skipped.error_code, Some(JobCode::SkippedNeedsUser));
    assert!(
        skipped
            .error_message
            .as_deref()
            .unwrap()
            .contains("LOGIN_FAILED")
    );
    let skipped = of("busy")[0];
    assert_eq!(skipped.error_code, Some(JobCode::SkippedAlreadyActive));
    assert!(
        skipped
            .error_message
            .as_deref()
            .unwrap()
            .contains(&format!("job #{busy} of this account is queued"))
    );
    assert!(of("paused").is_empty(), "paused: no job, no skip");
    assert!(of("later").is_empty(), "not due yet");
    for t in q.triggers().await.unwrap() {
        let expected = if t.account_id == "later" {
            now + minutes(60)
        } else {
            now + chrono::Duration::days(1)
        };
        assert_eq!(t.next_run_at, expected, "{}", t.account_id);
    }
    // Nothing due any more: planning again queues nothing.
    assert!(
        q.enqueue_due(&tomorrow, minutes(10))
            .await
            .unwrap()
            .is_empty()
    );
    // A block lifts with new credentials; a cron override is kept.
    q.credentials_changed("blocked").await.unwrap();
    let t = q.trigger("blocked").await.unwrap().unwrap();
    assert_eq!(t.blocked_code, None);
    assert_eq!(
        t.last_error_code,
        Some(JobCode::Konnector(ErrorCode::LoginFailed))
    );
    q.set_cron("ok", Some("0 3 * * *"), now + minutes(5))
        .await
        .unwrap();
    let t = q.trigger("ok").await.unwrap().unwrap();
    assert_eq!(
        (t.cron.as_deref(), t.next_run_at),
        (Some("0 3 * * *"), now + minutes(5))
    );
    assert!(matches!(
        q.set_cron("nobody", None, now).await,
        Err(SchedulerError::NotFound(_))
    ));
}

async fn a_failure_queues_its_retry_as_a_new_row(q: Arc<dyn JobQueue>, env: &Env) {
    env.account("a", "k").await;
    q.add_triggers(&[("a".into(), "k".into(), env.now() + minutes(600))])
        .await
        .unwrap();
    let first = q.enqueue_manual("a", "k").await.unwrap();
    let job = claim_one(&q, "w").await.unwrap();
    let retry = q
        .finish(
            &job,
            "w",
            &failed(
                ErrorCode::VendorDown,
                AfterFailure::Retry(Duration::from_secs(600)),
            ),
        )
        .await
        .unwrap()
        .expect("a retry");
    assert_ne!(retry, first);
    let old = q.job(first).await.unwrap().unwrap();
    assert_eq!(old.state, JobState::Errored);
    assert_eq!(
        old.error_code,
        Some(JobCode::Konnector(ErrorCode::VendorDown))
    );
    assert_eq!(old.lease_owner, None);
    let next = q.job(retry).await.unwrap().unwrap();
    assert_eq!(
        (next.trigger, next.attempt, next.manual, next.state),
        (TriggerKind::Retry, 2, true, JobState::Queued)
    );
    assert_eq!(next.not_before, env.now() + minutes(10));
    let t = q.trigger("a").await.unwrap().unwrap();
    assert_eq!(t.status, "errored");
    assert_eq!(t.last_manual_execution, Some(env.now()));
    assert!(claim_one(&q, "w").await.is_none(), "not before its time");
    env.advance(minutes(10));
    let again = claim_one(&q, "w").await.unwrap();
    assert_eq!((again.id, again.attempt), (retry, 2));
    // Finishing twice, or by another worker, changes nothing.
    assert_eq!(
        q.finish(&again, "intruder", &Outcome::Done(serde_json::json!({})))
            .await
            .unwrap(),
        None
    );
    let report = serde_json::json!({"created": 3, "note": "ok"});
    assert_eq!(
        q.finish(&again, "w", &Outcome::Done(report.clone()))
            .await
            .unwrap(),
        None
    );
    let done = q.job(retry).await.unwrap().unwrap();
    assert_eq!(done.state, JobState::Done);
    assert_eq!(done.report, Some(report));
    assert_eq!(done.finished_at, Some(env.now()));
    let t = q.trigger("a").await.unwrap().unwrap();
    assert_eq!(
        (t.status.as_str(), t.last_error_code.clone()),
        ("done", None)
    );
    assert_eq!(t.last_success, Some(env.now()));
    // A failure that gives up queues nothing.
    q.enqueue_manual("a", "k").await.unwrap();
    let job = claim_one(&q, "w").await.unwrap();
    assert_eq!(
        q.finish(
            &job,
            "w",
            &failed(ErrorCode::UnknownError, AfterFailure::GiveUp)
        )
        .await
        .unwrap(),
        None
    );
    assert_eq!(q.counts().await.unwrap().get("queued"), None);
}

async fn leases_are_renewed_and_expired_ones_recovered(q: Arc<dyn JobQueue>, env: &Env) {
    for id in ["committed", "lost", "replaced"] {
        env.account(id, "k").await;
        q.enqueue_manual(id, "k").await.unwrap();
    }
    let jobs = q.claim_batch("w-gone", LEASE, &unlimited, 3).await.unwrap();
    assert_eq!(jobs.len(), 3);
    let of = |a: &str| jobs.iter().find(|j| j.account_id == a).unwrap().clone();
    env.advance(chrono::Duration::seconds(40));
    assert!(q.heartbeat(of("lost").id, "w-gone", LEASE).await.unwrap());
    assert!(!q.heartbeat(of("lost").id, "someone", LEASE).await.unwrap());
    env.advance(chrono::Duration::seconds(40));
    // 80 s after the claim: `lost` was renewed at 40 s, the others ran out.
    let r = q.recover().await.unwrap();
    assert_eq!(r.completed, Vec::<i64>::new());
    let mut requeued = r.requeued.clone();
    requeued.sort_unstable();
    let mut expected = vec![of("committed").id, of("replaced").id];
    expected.sort_unstable();
    assert_eq!(requeued, expected);
    assert_eq!(
        q.job(of("lost").id).await.unwrap().unwrap().state,
        JobState::Running
    );
    let back = q.job(of("committed").id).await.unwrap().unwrap();
    assert_eq!(
        (back.state, back.recoveries, back.lease_owner),
        (JobState::Queued, 1, None)
    );
    // The recovered jobs' old worker has lost them.
    assert!(!q.heartbeat(back.id, "w-gone", LEASE).await.unwrap());
    assert_eq!(
        q.finish(
            &of("committed"),
            "w-gone",
            &Outcome::Done(serde_json::json!({}))
        )
        .await
        .unwrap(),
        None
    );
    // Claimed again, the run commits, and the worker dies before finishing.
    let again = q.claim_batch("w2", LEASE, &unlimited, 3).await.unwrap();
    assert_eq!(again.len(), 2);
    let committed = again.iter().find(|j| j.account_id == "committed").unwrap();
    env.committed("committed", &committed.run_id).await;
    env.committed("replaced", "an-older-run").await;
    // A manual request queued meanwhile replaces the lost run of `replaced`.
    let newer = q.enqueue_manual("replaced", "k").await.unwrap();
    env.advance(chrono::Duration::seconds(200));
    let r = q.recover().await.unwrap();
    assert_eq!(r.completed, vec![committed.id]);
    assert_eq!(r.requeued, vec![of("lost").id]);
    let done = q.job(committed.id).await.unwrap().unwrap();
    assert_eq!(done.state, JobState::Done);
    assert!(
        done.report.unwrap()["note"]
            .as_str()
            .unwrap()
            .contains("committed")
    );
    let t = q.trigger("committed").await;
    assert!(t.unwrap().is_none(), "no trigger: nothing to update");
    let replaced = q.job(of("replaced").id).await.unwrap().unwrap();
    assert_eq!(replaced.state, JobState::Errored);
    assert_eq!(
        replaced.error_code,
        Some(JobCode::Konnector(ErrorCode::UnknownError))
    );
    assert_eq!(q.job(newer).await.unwrap().unwrap().state, JobState::Queued);
    assert_eq!(q.recover().await.unwrap(), Default::default());
}

async fn a_stopping_worker_requeues_its_jobs(q: Arc<dyn JobQueue>, env: &Env) {
    for id in ["a", "b", "c"] {
        env.account(id, "k").await;
        q.enqueue_manual(id, "k").await.unwrap();
    }
    let mine = q.claim_batch("me", LEASE, &unlimited, 2).await.unwrap();
    let theirs = claim_one(&q, "them").await.unwrap();
    q.set_awaiting(mine[1].id, "sms", Some("06…"), env.now() + minutes(5))
        .await
        .unwrap();
    let mut back = q.requeue_owned("me").await.unwrap();
    back.sort_unstable();
    let mut expected: Vec<i64> = mine.iter().map(|j| j.id).collect();
    expected.sort_unstable();
    assert_eq!(back, expected);
    for id in back {
        let j = q.job(id).await.unwrap().unwrap();
        assert_eq!(
            (j.state, j.lease_owner, j.started_at, j.twofa_kind),
            (JobState::Queued, None, None, None)
        );
    }
    assert_eq!(
        q.job(theirs.id).await.unwrap().unwrap().state,
        JobState::Running
    );
    assert!(q.requeue_owned("me").await.unwrap().is_empty());
}

async fn second_factor_answers_are_given_once_and_taken_once(q: Arc<dyn JobQueue>, env: &Env) {
    env.account("a", "k").await;
    q.enqueue_manual("a", "k").await.unwrap();
    assert!(matches!(
        q.give_answer("a", b"123").await,
        Err(SchedulerError::NoQuestion { .. })
    ));
    let job = claim_one(&q, "w").await.unwrap();
    let deadline = env.now() + minutes(5);
    q.set_awaiting(job.id, "sms", Some("06 •• 42"), deadline)
        .await
        .unwrap();
    let waiting = q.job(job.id).await.unwrap().unwrap();
    assert_eq!(waiting.state, JobState::AwaitingUser);
    assert_eq!(
        (waiting.twofa_kind.as_deref(), waiting.twofa_hint.as_deref()),
        (Some("sms"), Some("06 •• 42"))
    );
    assert_eq!(q.take_answer(job.id).await.unwrap(), None);
    assert_eq!(q.give_answer("a", b"111111").await.unwrap(), job.id);
    assert_eq!(q.give_answer("a", b"\x00\xff222").await.unwrap(), job.id);
    assert_eq!(
        q.take_answer(job.id).await.unwrap().as_deref(),
        Some(&b"\x00\xff222"[..]),
        "the last code given"
    );
    assert_eq!(q.take_answer(job.id).await.unwrap(), None, "taken once");
    // The lease is renewed while it waits.
    assert!(q.heartbeat(job.id, "w", LEASE).await.unwrap());
    q.set_running(job.id).await.unwrap();
    let running = q.job(job.id).await.unwrap().unwrap();
    assert_eq!(
        (running.state, running.twofa_kind),
        (JobState::Running, None)
    );
    // A code left when the run ends is deleted with it.
    q.set_awaiting(job.id, "app", None, deadline).await.unwrap();
    q.give_answer("a", b"333").await.unwrap();
    q.finish(&job, "w", &Outcome::Done(serde_json::json!({})))
        .await
        .unwrap();
    assert_eq!(q.take_answer(job.id).await.unwrap(), None);
    // A finished job does not wait again.
    q.set_awaiting(job.id, "sms", None, deadline).await.unwrap();
    assert_eq!(q.job(job.id).await.unwrap().unwrap().state, JobState::Done);
}

async fn prune_deletes_old_history_only(q: Arc<dyn JobQueue>, env: &Env) {
    for id in ["old", "recent", "waiting"] {
        env.account(id, "k").await;
    }
    q.enqueue_manual("old", "k").await.unwrap();
    let old = claim_one(&q, "w").await.unwrap();
    q.finish(&old, "w", &Outcome::Done(serde_json::json!({})))
        .await
        .unwrap();
    q.worker_beat("w-old", 0).await.unwrap();
    env.advance(chrono::Duration::days(20));
    q.enqueue_manual("recent", "k").await.unwrap();
    let recent = claim_one(&q, "w").await.unwrap();
    q.finish(&recent, "w", &Outcome::Done(serde_json::json!({})))
        .await
        .unwrap();
    q.worker_beat("w-new", 0).await.unwrap();
    let waiting = q.enqueue_manual("waiting", "k").await.unwrap();
    env.advance(chrono::Duration::days(15));
    assert_eq!(q.prune(chrono::Duration::days(30)).await.unwrap(), 1);
    assert!(q.job(old.id).await.unwrap().is_none());
    assert!(q.job(recent.id).await.unwrap().is_some());
    assert!(q.job(waiting).await.unwrap().is_some(), "queued jobs stay");
    let workers: Vec<String> = q
        .workers()
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.worker_id)
        .collect();
    assert_eq!(
        workers,
        vec!["w-new".to_owned()],
        "silent workers forgotten"
    );
    assert_eq!(q.prune(chrono::Duration::days(30)).await.unwrap(), 0);
}

async fn unknown_codes_read_back_as_stored(q: Arc<dyn JobQueue>, env: &Env) {
    env.account("a", "k").await;
    let id = q.start_manual("a", "k", "w", LEASE).await.unwrap().id;
    q.add_triggers(&[("a".into(), "k".into(), env.now())])
        .await
        .unwrap();
    env.exec(&format!(
        "UPDATE sched_jobs SET state = 'errored', error_code = 'SOME_FUTURE.CODE', trigger = 'someday' WHERE id = {id}"
    ))
    .await;
    env.exec(
        "UPDATE sched_triggers SET blocked_code = 'ANOTHER.ONE', last_error_code = 'LOGIN_FAILED'",
    )
    .await;
    let job = q.job(id).await.unwrap().unwrap();
    assert_eq!(
        job.error_code,
        Some(JobCode::Other("SOME_FUTURE.CODE".into()))
    );
    assert_eq!(job.error_code.unwrap().as_str(), "SOME_FUTURE.CODE");
    assert_eq!(
        job.trigger,
        TriggerKind::Slot,
        "an unknown kind reads as slot"
    );
    let t = q.trigger("a").await.unwrap().unwrap();
    assert_eq!(t.blocked_code, Some(JobCode::Other("ANOTHER.ONE".into())));
    assert_eq!(
        t.last_error_code,
        Some(JobCode::Konnector(ErrorCode::LoginFailed))
    );
}

async fn waiting_for_work_ends_early_or_at_most_max(q: Arc<dyn JobQueue>, env: &Env) {
    env.account("a", "k").await;
    env.account("b", "k").await;
    if env.is_pg() {
        let other = env.other_machine().await;
        // Work queued by another machine wakes this one.
        let waiter = {
            let q = Arc::clone(&q);
            tokio::spawn(async move {
                let t = Instant::now();
                q.wait_for_work(Duration::from_secs(30)).await;
                t.elapsed()
            })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        other.enqueue_manual("a", "k").await.unwrap();
        let waited = waiter.await.unwrap();
        assert!(waited < Duration::from_secs(10), "woken after {waited:?}");
        // A run ending (a slot frees) wakes it too.
        let job = claim_one(&other, "w").await.unwrap();
        let waiter = {
            let q = Arc::clone(&q);
            tokio::spawn(async move {
                let t = Instant::now();
                q.wait_for_work(Duration::from_secs(30)).await;
                t.elapsed()
            })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        other
            .finish(&job, "w", &Outcome::Done(serde_json::json!({})))
            .await
            .unwrap();
        let waited = waiter.await.unwrap();
        assert!(waited < Duration::from_secs(10), "woken after {waited:?}");
    }
    // With nothing happening, it returns after `max` at the latest.
    let t = Instant::now();
    q.wait_for_work(Duration::from_millis(300)).await;
    let waited = t.elapsed();
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    if !env.is_pg() {
        assert!(waited >= Duration::from_millis(300), "SQLite sleeps `max`");
    }
}

async fn workers_and_depth_are_reported(q: Arc<dyn JobQueue>, env: &Env) {
    assert!(q.workers().await.unwrap().is_empty());
    assert!(q.depth_by_konnector().await.unwrap().is_empty());
    let started = env.now();
    q.worker_beat("w1", 0).await.unwrap();
    q.worker_beat("w2", 0).await.unwrap();
    for (id, k) in [("a", "k1"), ("b", "k1"), ("c", "k1"), ("d", "k2")] {
        env.account(id, k).await;
        q.enqueue_manual(id, k).await.unwrap();
    }
    let jobs = q
        .claim_batch("w1", LEASE, &|k: &str| if k == "k1" { 1 } else { 5 }, 5)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 2, "one of k1, one of k2");
    // One of k1 fails and retries later.
    let k1 = jobs.iter().find(|j| j.konnector == "k1").unwrap();
    q.finish(
        k1,
        "w1",
        &failed(
            ErrorCode::VendorDown,
            AfterFailure::Retry(Duration::from_secs(600)),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    env.advance(minutes(1));
    q.worker_beat("w1", 1).await.unwrap();
    let workers = q.workers().await.unwrap();
    assert_eq!(workers.len(), 2);
    let w1 = &workers[0];
    assert_eq!(w1.worker_id, "w1");
    assert_eq!((w1.started_at, w1.last_beat), (started, env.now()));
    assert_eq!((w1.in_flight, w1.leased), (1, 1));
    assert_eq!(w1.host, gleaner_framework::liveness::host());
    assert_eq!((workers[1].leased, workers[1].last_beat), (0, started));
    let depth = q.depth_by_konnector().await.unwrap();
    assert_eq!(
        depth,
        BTreeMap::from([
            (
                "k1".to_owned(),
                QueueDepth {
                    due: 2,
                    later: 1,
                    active: 0
                }
            ),
            (
                "k2".to_owned(),
                QueueDepth {
                    due: 0,
                    later: 0,
                    active: 1
                }
            ),
        ])
    );
    q.worker_gone("w2").await.unwrap();
    q.worker_gone("never-was").await.unwrap();
    let ids: Vec<String> = q
        .workers()
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.worker_id)
        .collect();
    assert_eq!(ids, vec!["w1".to_owned()]);
}

async fn triggers_follow_the_accounts(q: Arc<dyn JobQueue>, env: &Env) {
    env.account("a", "k").await;
    env.account("b", "k2").await;
    let mut missing = q.accounts_without_trigger().await.unwrap();
    missing.sort();
    assert_eq!(
        missing,
        vec![("a".into(), "k".into()), ("b".into(), "k2".into())]
    );
    let first = env.now() + minutes(30);
    let rows: Vec<(String, String, DateTime<Utc>)> =
        missing.into_iter().map(|(a, k)| (a, k, first)).collect();
    q.add_triggers(&rows).await.unwrap();
    assert!(q.accounts_without_trigger().await.unwrap().is_empty());
    let t = q.trigger("b").await.unwrap().unwrap();
    assert_eq!(
        (
            t.konnector.as_str(),
            t.status.as_str(),
            t.next_run_at,
            t.paused
        ),
        ("k2", "new", first, false)
    );
    q.enqueue_manual("b", "k2").await.unwrap();
    env.exec("DELETE FROM accounts WHERE id = 'b'").await;
    assert_eq!(q.drop_orphan_triggers().await.unwrap(), 1);
    let ids: Vec<String> = q
        .triggers()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.account_id)
        .collect();
    assert_eq!(ids, vec!["a".to_owned()]);
    assert_eq!(q.counts().await.unwrap().get("queued"), None);
    assert!(q.trigger("b").await.unwrap().is_none());
}

/// A database whose queue a newer Gleaner migrated is refused, clearly,
/// and left as it is.
#[tokio::test]
async fn postgres_refuses_a_queue_written_by_a_newer_gleaner() {
    let Some(env) = Env::postgres("newer_schema").await else {
        return;
    };
    let _ = env.queue().await;
    env.exec(
        "INSERT INTO gleaner_queue_migrations (version, description, success, checksum, execution_time)
         VALUES (9999, 'from the future', TRUE, '\\x00'::bytea, 1)",
    )
    .await;
    let Backend::Postgres { pool, .. } = &env.backend else {
        unreachable!()
    };
    let err = PgQueue::open(pool.clone(), Arc::new(env.clock.clone()))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, SchedulerError::Schema(_)), "{err:?}");
    assert!(
        text.contains("newer Gleaner") && text.contains("upgrade"),
        "{text}"
    );
    assert!(text.contains("9999"), "{text}");
    assert!(!text.contains("postgres@"), "no credentials: {text}");
}

/// The store's SQLite file seen without the store's nor the queue's
/// opening (as an older Gleaner or another program sees it).
async fn raw_sqlite(path: &std::path::Path) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap()
}

/// A queue an older Gleaner created (its tables without `paused`, no
/// migrations table) opens: the column is added, migration 0001 is
/// recorded as sqlx records it (and creates the tables the queue lacked),
/// and its triggers and jobs read as before.
#[tokio::test]
async fn sqlite_upgrades_a_queue_from_before_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gleaner.db");
    let store = SqliteStore::open(&path).await.unwrap();
    for stmt in [
        "CREATE TABLE sched_triggers (account_id TEXT PRIMARY KEY, konnector TEXT NOT NULL, cron TEXT,
            next_run_at TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'new', last_execution TEXT,
            last_success TEXT, last_failure TEXT, last_manual_execution TEXT, last_error_code TEXT,
            last_error_message TEXT, blocked_code TEXT, updated_at TEXT NOT NULL)",
        "CREATE TABLE sched_jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, account_id TEXT NOT NULL,
            konnector TEXT NOT NULL, trigger TEXT NOT NULL, manual INTEGER NOT NULL,
            attempt INTEGER NOT NULL, state TEXT NOT NULL, run_id TEXT NOT NULL,
            queued_at TEXT NOT NULL, not_before TEXT NOT NULL, started_at TEXT, finished_at TEXT,
            lease_owner TEXT, lease_expires_at TEXT, recoveries INTEGER NOT NULL DEFAULT 0,
            error_code TEXT, error_message TEXT, report TEXT, twofa_kind TEXT, twofa_hint TEXT,
            twofa_deadline TEXT)",
        "INSERT INTO sched_triggers (account_id, konnector, cron, next_run_at, status, updated_at)
         VALUES ('acc', 'k', '0 3 * * *', '2026-11-24T03:00:00.000000Z', 'done', '2026-11-23T03:00:00.000000Z')",
        "INSERT INTO sched_jobs (account_id, konnector, trigger, manual, attempt, state, run_id, queued_at, not_before, finished_at)
         VALUES ('acc', 'k', 'cron', 0, 1, 'done', 'run-1', '2026-11-23T03:00:00.000000Z',
                 '2026-11-23T03:00:00.000000Z', '2026-11-23T03:01:00.000000Z')",
    ] {
        sqlx::query(stmt).execute(store.pool()).await.unwrap();
    }
    let clock = Arc::new(ManualClock::new(start()));
    let q = Queue::open(store.pool().clone(), clock.clone())
        .await
        .unwrap();
    let t = q.trigger("acc").await.unwrap().unwrap();
    assert_eq!(t.cron.as_deref(), Some("0 3 * * *"));
    assert_eq!(t.status, "done");
    assert!(!t.paused);
    let job = q.job(1).await.unwrap().unwrap();
    assert_eq!((job.state, job.run_id.as_str()), (JobState::Done, "run-1"));
    q.set_paused("acc", true).await.unwrap();
    assert!(q.trigger("acc").await.unwrap().unwrap().paused);

    let recorded: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM gleaner_queue_migrations ORDER BY version")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(recorded, [(1, true)]);
    let workers: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'sched_workers'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(workers, 1, "0001 creates the tables the old queue lacked");
    // Opening again: sqlx's migrator finds 0001 applied, with its checksum.
    Queue::open(store.pool().clone(), clock).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM gleaner_queue_migrations")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(n, 1);
}

/// A store file whose queue a newer Gleaner migrated is refused, naming
/// the file and the migration, and nothing is written: the table dropped
/// stays dropped (0001 would create it again), the migrations stay as
/// they were.
#[tokio::test]
async fn sqlite_refuses_a_queue_written_by_a_newer_gleaner() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gleaner.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let clock = Arc::new(ManualClock::new(start()));
    Queue::open(store.pool().clone(), clock.clone())
        .await
        .unwrap();
    store.pool().close().await;
    let pool = raw_sqlite(&path).await;
    for stmt in [
        "INSERT INTO gleaner_queue_migrations (version, description, success, checksum, execution_time)
         VALUES (9999, 'from the future', TRUE, x'00', 1)",
        "DROP TABLE sched_workers",
    ] {
        sqlx::query(stmt).execute(&pool).await.unwrap();
    }
    pool.close().await;

    let store = SqliteStore::open(&path).await.unwrap();
    let err = Queue::open(store.pool().clone(), clock)
        .await
        .err()
        .unwrap();
    let text = err.to_string();
    assert!(matches!(err, SchedulerError::Schema(_)), "{err:?}");
    for part in [
        "gleaner.db",
        "9999",
        "newer than this Gleaner",
        "upgrade Gleaner",
    ] {
        assert!(text.contains(part), "{part}: {text}");
    }
    store.pool().close().await;

    let pool = raw_sqlite(&path).await;
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM gleaner_queue_migrations ORDER BY version")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(versions, [1, 9999]);
    let workers: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'sched_workers'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(workers, 0, "nothing was written");
}

/// A claim meets an account made active while its statement runs (another
/// machine's manual run, committed meanwhile): the unique index refuses
/// that job, and the claim skips it and takes the others instead of
/// failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_claim_skips_an_account_made_active_meanwhile() {
    let Some(env) = Env::postgres("made_active_meanwhile").await else {
        return;
    };
    let q = env.queue().await;
    for id in ["a", "b", "c"] {
        env.account(id, "k").await;
        q.enqueue_manual(id, "k").await.unwrap();
    }
    let Backend::Postgres { pool, .. } = &env.backend else {
        unreachable!()
    };
    // Another machine makes `b` active, and has not committed yet.
    let mut other = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO sched_jobs (account_id, konnector, trigger, manual, attempt, state, run_id,
            queued_at, not_before, started_at, lease_owner, lease_expires_at, tenant_id)
         VALUES ('b', 'k', 'manual', TRUE, 1, 'running', 'other-run', now(), now(), now(),
            'other', now() + interval '1 minute', 'default')",
    )
    .execute(&mut *other)
    .await
    .unwrap();
    let claimer = {
        let q = Arc::clone(&q);
        tokio::spawn(async move { q.claim_batch("w", LEASE, &unlimited, 3).await })
    };
    // The claim does not see `b` active: its update of b's job waits on
    // the unique index for the other transaction.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the claim never waited for the other transaction"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    other.commit().await.unwrap();
    let claimed = claimer.await.unwrap().unwrap();
    let accounts: Vec<&str> = claimed.iter().map(|j| j.account_id.as_str()).collect();
    assert_eq!(accounts, ["a", "c"], "b's job skipped, the others claimed");
    assert!(
        claimed
            .iter()
            .all(|j| j.state == JobState::Running && j.lease_owner.as_deref() == Some("w"))
    );
    let queued = q
        .jobs(&JobFilter {
            states: vec![JobState::Queued],
            ..JobFilter::default()
        })
        .await
        .unwrap();
    let queued: Vec<&str> = queued.iter().map(|j| j.account_id.as_str()).collect();
    assert_eq!(queued, ["b"], "b's job stays queued");
    let running = q
        .jobs(&JobFilter {
            states: vec![JobState::Running],
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(running.len(), 3, "a, c and the other machine's b");
}

/// An unreachable server is an error naming the server, not a panic.
#[tokio::test]
async fn postgres_unreachable_is_a_clear_error() {
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(3))
        .connect_lazy("postgres://someone:secret-pw@127.0.0.1:1/gleaner")
        .unwrap();
    let err = PgQueue::open(pool, Arc::new(ManualClock::new(start())))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("127.0.0.1:1/gleaner"), "{text}");
    assert!(!text.contains("secret-pw"), "{text}");
}

// ---- tenants (PostgreSQL only) -------------------------------------------

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

impl Env {
    /// The test's queue as the concrete PostgreSQL one, in fleet mode.
    async fn pg_queue(&self) -> PgQueue {
        let Backend::Postgres { pool, .. } = &self.backend else {
            unreachable!("PostgreSQL only")
        };
        PgQueue::open(pool.clone(), Arc::new(self.clock.clone()))
            .await
            .unwrap()
    }

    fn pg(&self) -> &sqlx::PgPool {
        let Backend::Postgres { pool, .. } = &self.backend else {
            unreachable!("PostgreSQL only")
        };
        pool
    }

    /// Adds an account of `konnector` belonging to `tenant` (PostgreSQL).
    async fn account_of(&self, tenant: &str, id: &str, konnector: &str) {
        // The store's tenants table, when its migrations ran (a foreign key
        // then asks for the tenant's row).
        self.exec(&format!(
            "DO $$ BEGIN
                 IF to_regclass('tenants') IS NOT NULL THEN
                     INSERT INTO tenants (id, created_at) VALUES ('{tenant}', now())
                     ON CONFLICT (id) DO NOTHING;
                 END IF;
             END $$"
        ))
        .await;
        self.exec(&format!(
            "INSERT INTO accounts (id, konnector, label, fields, sealed_secrets, created_at, folder, tenant_id)
             VALUES ('{id}', '{konnector}', '{id}', '{{}}'::jsonb, '\\x'::bytea, now(), '{id}', '{tenant}')"
        ))
        .await;
    }
}

/// Accounts `a1`, `a2` of alice and `b1` of bob (konnector `k`), their
/// triggers made by the fleet (each takes its account's tenant), and a
/// manual job each, bob's queued first.
async fn two_tenants(env: &Env, fleet: &PgQueue) -> (Job, Job, Job) {
    env.account_of("bob", "b1", "k").await;
    env.account_of("alice", "a1", "k").await;
    env.account_of("alice", "a2", "k").await;
    let new = fleet.accounts_without_trigger().await.unwrap();
    assert_eq!(new.len(), 3);
    let rows: Vec<_> = new
        .into_iter()
        .map(|(a, k)| (a, k, env.now() + minutes(600)))
        .collect();
    fleet.add_triggers(&rows).await.unwrap();
    let mut ids = Vec::new();
    for account in ["b1", "a1", "a2"] {
        ids.push(fleet.enqueue_manual(account, "k").await.unwrap());
        env.advance(minutes(1));
    }
    let mut jobs = Vec::new();
    for id in ids {
        jobs.push(fleet.job(id).await.unwrap().unwrap());
    }
    let [b1, a1, a2]: [Job; 3] = jobs.try_into().unwrap();
    (b1, a1, a2)
}

/// A queue for one tenant lists, changes, claims and answers only that
/// tenant's triggers and jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_tenant_queue_sees_and_changes_only_its_own() {
    let Some(env) = Env::postgres("tenant_queue_own_rows").await else {
        return;
    };
    let fleet = env.pg_queue().await;
    let (b1, a1, a2) = two_tenants(&env, &fleet).await;
    assert_eq!(b1.tenant, tenant("bob"), "a job takes its trigger's tenant");
    assert_eq!(a1.tenant, tenant("alice"));
    let triggers = fleet.triggers().await.unwrap();
    let tenants: Vec<(&str, &str)> = triggers
        .iter()
        .map(|t| (t.account_id.as_str(), t.tenant.as_str()))
        .collect();
    assert_eq!(
        tenants,
        [("a1", "alice"), ("a2", "alice"), ("b1", "bob")],
        "a trigger takes its account's tenant"
    );

    let alice = fleet.for_tenant(tenant("alice"));
    assert_eq!(alice.tenant(), Some(&tenant("alice")));
    let alice_q: Arc<dyn JobQueue> = Arc::new(alice.clone());
    // Triggers.
    let mine: Vec<String> = alice_q
        .triggers()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.account_id)
        .collect();
    assert_eq!(mine, ["a1", "a2"]);
    assert!(alice_q.trigger("b1").await.unwrap().is_none());
    assert!(matches!(
        alice_q.set_paused("b1", true).await,
        Err(SchedulerError::NotFound(_))
    ));
    assert!(matches!(
        alice_q.set_cron("b1", Some("0 3 * * *"), env.now()).await,
        Err(SchedulerError::NotFound(_))
    ));
    alice_q.set_paused("a1", true).await.unwrap();
    assert!(fleet.trigger("a1").await.unwrap().unwrap().paused);
    assert!(!fleet.trigger("b1").await.unwrap().unwrap().paused);
    alice_q.set_paused("a1", false).await.unwrap();
    // New accounts: each tenant finds its own.
    env.account_of("alice", "a3", "k").await;
    env.account_of("bob", "b2", "k").await;
    let new = alice_q.accounts_without_trigger().await.unwrap();
    assert_eq!(new, [("a3".to_owned(), "k".to_owned())]);
    alice_q
        .add_triggers(&[("a3".into(), "k".into(), env.now() + minutes(600))])
        .await
        .unwrap();
    assert_eq!(
        fleet.trigger("a3").await.unwrap().unwrap().tenant,
        tenant("alice")
    );
    // Jobs.
    let listed: Vec<i64> = alice_q
        .jobs(&JobFilter::default())
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(listed, [a2.id, a1.id]);
    assert!(alice_q.job(b1.id).await.unwrap().is_none());
    assert_eq!(alice_q.job(a1.id).await.unwrap().unwrap().id, a1.id);
    assert_eq!(alice_q.counts().await.unwrap().get("queued"), Some(&2));
    assert_eq!(fleet.counts().await.unwrap().get("queued"), Some(&3));
    assert_eq!(alice_q.depth_by_konnector().await.unwrap()["k"].due, 2);
    // A manual request for another tenant's account is refused.
    assert!(matches!(
        alice_q.enqueue_manual("b1", "k").await,
        Err(SchedulerError::NotFound(_))
    ));
    assert!(matches!(
        alice_q.enqueue_manual("b2", "k").await,
        Err(SchedulerError::NotFound(_))
    ));
    assert!(
        fleet
            .jobs(&JobFilter {
                account_id: Some("b2".into()),
                ..JobFilter::default()
            })
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        fleet.job(b1.id).await.unwrap().unwrap().trigger,
        TriggerKind::Manual
    );
    // Her own manual request joins her queued job; a new account's makes
    // a job of hers.
    assert_eq!(alice_q.enqueue_manual("a1", "k").await.unwrap(), a1.id);
    let a3 = alice_q.enqueue_manual("a3", "k").await.unwrap();
    assert_eq!(
        fleet.job(a3).await.unwrap().unwrap().tenant,
        tenant("alice")
    );
    sqlx::query("DELETE FROM sched_jobs WHERE id = $1")
        .bind(a3)
        .execute(env.pg())
        .await
        .unwrap();
    // Claims: only alice's jobs, though bob's is older.
    let claimed = alice_q
        .claim_batch("wa", LEASE, &unlimited, 10)
        .await
        .unwrap();
    let mut claimed_ids: Vec<i64> = claimed.iter().map(|j| j.id).collect();
    claimed_ids.sort_unstable();
    assert_eq!(claimed_ids, [a1.id, a2.id]);
    assert!(claimed.iter().all(|j| j.tenant == tenant("alice")));
    assert!(
        alice_q
            .claim_batch("wa", LEASE, &unlimited, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Second factor: bob's job waits too; alice can answer only hers.
    let b_run = fleet
        .claim_batch("wb", LEASE, &unlimited, 10)
        .await
        .unwrap();
    assert_eq!(b_run.len(), 1);
    assert_eq!(b_run[0].tenant, tenant("bob"));
    let deadline = env.now() + minutes(10);
    alice_q
        .set_awaiting(a1.id, "code", None, deadline)
        .await
        .unwrap();
    // Alice's queue cannot mark bob's job.
    alice_q
        .set_awaiting(b1.id, "code", None, deadline)
        .await
        .unwrap();
    assert_eq!(
        fleet.job(b1.id).await.unwrap().unwrap().state,
        JobState::Running
    );
    fleet
        .set_awaiting(b1.id, "code", None, deadline)
        .await
        .unwrap();
    assert!(matches!(
        alice_q.give_answer("b1", b"sealed-b").await,
        Err(SchedulerError::NoQuestion { .. })
    ));
    assert_eq!(alice_q.give_answer("a1", b"sealed-a").await.unwrap(), a1.id);
    assert_eq!(fleet.give_answer("b1", b"sealed-b").await.unwrap(), b1.id);
    let answer_tenant: String =
        sqlx::query_scalar("SELECT tenant_id FROM sched_twofa_answers WHERE job_id = $1")
            .bind(b1.id)
            .fetch_one(env.pg())
            .await
            .unwrap();
    assert_eq!(answer_tenant, "bob", "an answer takes its job's tenant");
    assert_eq!(alice_q.take_answer(b1.id).await.unwrap(), None);
    assert_eq!(
        fleet.take_answer(b1.id).await.unwrap().unwrap(),
        b"sealed-b"
    );
    assert_eq!(
        alice_q.take_answer(a1.id).await.unwrap().unwrap(),
        b"sealed-a"
    );
    // Finishing a job in tenant mode updates its trigger, queues its retry
    // in its tenant.
    alice_q.set_running(a1.id).await.unwrap();
    let a1_now = alice_q.job(a1.id).await.unwrap().unwrap();
    let retry = alice_q
        .finish(
            &a1_now,
            "wa",
            &failed(
                ErrorCode::VendorDown,
                AfterFailure::Retry(Duration::from_secs(60)),
            ),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        fleet.job(retry).await.unwrap().unwrap().tenant,
        tenant("alice")
    );
    assert_eq!(
        fleet.trigger("a1").await.unwrap().unwrap().status,
        "errored"
    );
    // Heartbeats, requeuing and recovery stay in the tenant.
    assert!(!alice_q.heartbeat(b1.id, "wb", LEASE).await.unwrap());
    assert!(fleet.heartbeat(b1.id, "wb", LEASE).await.unwrap());
    assert!(alice_q.requeue_owned("wb").await.unwrap().is_empty());
    env.advance(minutes(120));
    let recovered = alice_q.recover().await.unwrap();
    assert_eq!(recovered.requeued, [a2.id], "only alice's stale job");
    assert_eq!(
        fleet.job(b1.id).await.unwrap().unwrap().state,
        JobState::AwaitingUser
    );
}

/// The fleet claims every tenant's jobs, each with its tenant; a tenant's
/// claim counts every tenant's runs against a konnector's limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_the_fleet_claims_every_tenant_and_limits_count_them_all() {
    let Some(env) = Env::postgres("tenant_fleet_claims").await else {
        return;
    };
    let fleet = env.pg_queue().await;
    // Konnector `kx`: one job of each tenant, both claimed by the fleet.
    env.account_of("alice", "xa", "kx").await;
    env.account_of("bob", "xb", "kx").await;
    let rows: Vec<_> = fleet
        .accounts_without_trigger()
        .await
        .unwrap()
        .into_iter()
        .map(|(a, k)| (a, k, env.now() + minutes(600)))
        .collect();
    fleet.add_triggers(&rows).await.unwrap();
    fleet.enqueue_manual("xa", "kx").await.unwrap();
    fleet.enqueue_manual("xb", "kx").await.unwrap();
    let both = fleet
        .claim_batch("w0", LEASE, &unlimited, 10)
        .await
        .unwrap();
    let mut got: Vec<(String, String)> = both
        .iter()
        .map(|j| (j.account_id.clone(), j.tenant.to_string()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("xa".to_owned(), "alice".to_owned()),
            ("xb".to_owned(), "bob".to_owned())
        ]
    );
    // Konnector `k`, limit 2: bob's run counts when alice claims.
    let (b1, a1, _a2) = two_tenants(&env, &fleet).await;
    let limit_two = |k: &str| if k == "k" { 2 } else { 1000 };
    let first = fleet.claim_batch("w1", LEASE, &limit_two, 1).await.unwrap();
    assert_eq!(first.iter().map(|j| j.id).collect::<Vec<_>>(), [b1.id]);
    let alice = fleet.for_tenant(tenant("alice"));
    let mine = alice
        .claim_batch("w2", LEASE, &limit_two, 10)
        .await
        .unwrap();
    assert_eq!(
        mine.iter().map(|j| j.id).collect::<Vec<_>>(),
        [a1.id],
        "one slot left: bob's run is counted"
    );
    assert!(
        alice
            .claim_batch("w2", LEASE, &limit_two, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Row-level security is the second wall: inside a tenant's scope, even
/// SQL without a tenant filter sees and writes only that tenant's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_row_level_security_is_the_second_wall() {
    let Some(env) = Env::postgres("tenant_rls_wall").await else {
        return;
    };
    let fleet = env.pg_queue().await;
    let (b1, a1, _a2) = two_tenants(&env, &fleet).await;
    let mut tx = begin_scoped(env.pg(), &tenant("alice")).await.unwrap();
    let who: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(who, "gleaner_tenant");
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM sched_jobs")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(jobs, 2, "alice's two jobs only");
    let triggers: Vec<String> =
        sqlx::query_scalar("SELECT account_id FROM sched_triggers ORDER BY account_id")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    assert_eq!(triggers, ["a1", "a2"]);
    let hidden = sqlx::query("UPDATE sched_jobs SET attempt = 9 WHERE id = $1")
        .bind(b1.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(hidden.rows_affected(), 0, "bob's job is out of reach");
    // Alice's own insert works (the identity's sequence is granted).
    sqlx::query(
        "INSERT INTO sched_jobs (account_id, konnector, trigger, manual, attempt, state, run_id,
            queued_at, not_before, finished_at, tenant_id)
         VALUES ('a1', 'k', 'slot', FALSE, 1, 'skipped', 'job-rls', now(), now(), now(), 'alice')",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // A row of bob's, written from alice's scope, is refused.
    let mut tx = begin_scoped(env.pg(), &tenant("alice")).await.unwrap();
    let err = sqlx::query(
        "INSERT INTO sched_jobs (account_id, konnector, trigger, manual, attempt, state, run_id,
            queued_at, not_before, finished_at, tenant_id)
         VALUES ('b1', 'k', 'slot', FALSE, 1, 'skipped', 'job-rls-b', now(), now(), now(), 'bob')",
    )
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");
    drop(tx);
    let mut tx = begin_scoped(env.pg(), &tenant("alice")).await.unwrap();
    let err = sqlx::query(
        "INSERT INTO sched_twofa_answers (job_id, sealed, given_at, tenant_id)
         VALUES ($1, '\\x00'::bytea, now(), 'bob')",
    )
    .bind(b1.id)
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");
    drop(tx);
    // The fleet's connection sees everyone (RLS enabled, not forced).
    assert_eq!(fleet.counts().await.unwrap().values().sum::<u64>(), 4);
    assert_eq!(
        fleet.job(a1.id).await.unwrap().unwrap().tenant,
        tenant("alice")
    );
}

/// Removing a tenant deletes its triggers, jobs and answers, nobody
/// else's; the default tenant is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_removing_a_tenant_removes_its_rows_only() {
    let Some(env) = Env::postgres("tenant_remove_rows").await else {
        return;
    };
    let fleet = env.pg_queue().await;
    let (b1, a1, _a2) = two_tenants(&env, &fleet).await;
    let claimed = fleet.claim_batch("w", LEASE, &unlimited, 10).await.unwrap();
    assert_eq!(claimed.len(), 3);
    let deadline = env.now() + minutes(10);
    for id in [a1.id, b1.id] {
        fleet
            .set_awaiting(id, "code", None, deadline)
            .await
            .unwrap();
    }
    fleet.give_answer("a1", b"a").await.unwrap();
    fleet.give_answer("b1", b"b").await.unwrap();
    let mut tx = env.pg().begin().await.unwrap();
    let removed = remove_tenant_rows(&mut tx, &tenant("bob")).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        removed,
        RemovedRows {
            triggers: 1,
            jobs: 1,
            answers: 1
        }
    );
    let left: Vec<String> = fleet
        .triggers()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.account_id)
        .collect();
    assert_eq!(left, ["a1", "a2"]);
    assert!(fleet.job(b1.id).await.unwrap().is_none());
    assert_eq!(fleet.take_answer(a1.id).await.unwrap().unwrap(), b"a");
    let mut conn = env.pg().acquire().await.unwrap();
    let err = remove_tenant_rows(&mut conn, &TenantId::default_tenant())
        .await
        .unwrap_err();
    assert!(matches!(err, SchedulerError::Config(_)), "{err:?}");
}
