//! Fleet benchmark: the job queue shared by several worker processes, on
//! PostgreSQL ([`PgQueue`]) and, for comparison, on one SQLite file
//! ([`Queue`]).
//!
//! Run with `cargo bench --bench fleet`. A plain program (`harness =
//! false`). **It measures the queue, not konnectors**: a job "runs" for a
//! fixed 20 ms (a tokio sleep, no HTTP), then writes its account's
//! `konnector_state` with the job's run id (as a run's commit does) and
//! finishes as done. On a small machine PostgreSQL and every worker share
//! the same cores, so the figures are those of a fleet squeezed onto one
//! host, not of a fleet of machines.
//!
//! Each run, on a fresh database:
//! - **Queueing**: `GLEANER_BENCH_ACCOUNTS` accounts (default 10,000) over
//!   20 konnectors (`bench-00`..`bench-19`), in blocks (a konnector's
//!   accounts are contiguous in id order, so the claims' order hands out
//!   one konnector's jobs at a time: its limit binds and the workers
//!   contend for the same konnector lock, the hard case for claims); one
//!   trigger each, all due now; the time of `enqueue_due` turning them all
//!   into jobs (it takes at most 5,000 triggers per call, so 10,000 take two
//!   calls).
//! - **Draining**: worker processes (this program again, `worker` argument),
//!   each with its own pool and its own queue, run the daemon's loop:
//!   `claim_batch` of the free slots of 16 (at most 25 running jobs per
//!   konnector, fleet-wide), each job in a task of its own, and
//!   `wait_for_work` (1 s at most) when a claim found nothing. Each worker
//!   times every `claim_batch` call and prints one JSON line at exit:
//!   claims, jobs, p50/p99 claim latency, its peak RSS (`getrusage`
//!   `ru_maxrss`), its wall time. The workers are started and connected
//!   before the clock starts; the wall time ends at the last job's finish.
//! - **Checks**: the parent samples every 100 ms the database's connections
//!   (`pg_stat_activity` of the database, its own sampling connection
//!   excluded) and the running jobs per konnector; at the end every job
//!   must be `done` exactly once (one row per account, nothing queued or
//!   running, the account's `konnector_state` naming the job's run id) and
//!   no konnector may have had more than its limit running.
//!
//! Runs: PostgreSQL with 1, 2, 3 and 4 workers (`GLEANER_BENCH_WORKERS`,
//! default `1,2,3,4`; the 2-worker run is the headline), then one SQLite
//! file with 1 and 2 worker processes (`GLEANER_BENCH_SQLITE_WORKERS`,
//! default `1,2`). PostgreSQL is the server of
//! `gleaner_testing::postgres::TestDb` (`GLEANER_TEST_POSTGRES`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`), a throwaway database per
//! run; without a server the PostgreSQL part is skipped in one line and
//! SQLite still runs.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use chrono::Utc;
use gleaner_framework::store::SqliteStore;
use gleaner_scheduler::{Clock, JobQueue, Outcome, PgQueue, Queue, Scheduler, SystemClock};
use gleaner_testing::postgres::TestDb;
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPoolOptions;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

/// Konnectors the accounts are spread over.
const KONNECTORS: usize = 20;
/// Running jobs allowed per konnector, across the fleet.
const PER_KONNECTOR: usize = 25;
/// Jobs a worker runs at once.
const CONCURRENCY: usize = 16;
/// How long a job "runs".
const JOB_TIME: Duration = Duration::from_millis(20);
/// A claimed job's lease (far longer than a job: no heartbeat needed).
const LEASE: Duration = Duration::from_secs(300);
/// The longest wait between two claims that found nothing (the daemon's
/// default poll).
const POLL: Duration = Duration::from_secs(1);
/// Each PostgreSQL worker's pool (its wake-up listener has one more
/// connection of its own).
const PG_POOL: u32 = 8;
/// The SQLite store's pool (`SqliteStore::open`).
const SQLITE_POOL: u32 = 4;
/// The parent gives up on a run after this long.
const RUN_TIMEOUT: Duration = Duration::from_secs(900);

fn accounts() -> usize {
    std::env::var("GLEANER_BENCH_ACCOUNTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000usize)
        .max(1)
}

fn worker_counts(var: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(var)
        .ok()
        .map(|s| {
            s.split(',')
                .filter_map(|p| p.trim().parse().ok())
                .filter(|&n| n > 0)
                .collect()
        })
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| default.to_vec())
}

fn limit_for(_: &str) -> usize {
    PER_KONNECTOR
}

/// Peak RSS of this process, in KiB (`getrusage(RUSAGE_SELF).ru_maxrss`).
#[cfg(unix)]
fn peak_rss_kib() -> u64 {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_SELF).map_or(0, |u| u64::try_from(u.max_rss()).unwrap_or(0))
}

#[cfg(not(unix))]
fn peak_rss_kib() -> u64 {
    0
}

fn now_us() -> i64 {
    Utc::now().timestamp_micros()
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("worker") {
        let [_, kind, name, target] = args.as_slice() else {
            bail!("usage: fleet worker pg|sqlite NAME URL|PATH");
        };
        return worker_main(kind, name, target);
    }
    parent_main()
}

// ---- the worker ---------------------------------------------------------

/// What a worker prints at exit, on one line.
#[derive(Debug, Serialize, Deserialize)]
struct WorkerReport {
    worker: String,
    pool: u32,
    claims: u64,
    empty_claims: u64,
    jobs: u64,
    errors: u64,
    claim_p50_ms: f64,
    claim_p99_ms: f64,
    claim_max_ms: f64,
    peak_rss_kib: u64,
    wall_s: f64,
    /// When its last job finished, in microseconds since the epoch.
    last_finish_us: i64,
}

/// Where a job's run writes its konnector state.
#[derive(Clone)]
enum StateDb {
    Pg(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

impl StateDb {
    /// What a run commits beside its documents: the account's konnector
    /// state, naming the run id (recovery reads it).
    async fn commit(&self, account: &str, run_id: &str) -> Result<()> {
        match self {
            StateDb::Pg(pool) => {
                sqlx::query(
                    "INSERT INTO konnector_state (account_id, state, last_sync, last_run_id, tenant_id)
                     VALUES ($1, '{}'::jsonb, now(), $2, 'default')
                     ON CONFLICT (account_id) DO UPDATE SET state = excluded.state,
                        last_sync = excluded.last_sync, last_run_id = excluded.last_run_id",
                )
                .bind(account)
                .bind(run_id)
                .execute(pool)
                .await?;
            }
            StateDb::Sqlite(pool) => {
                sqlx::query(
                    "INSERT INTO konnector_state (account_id, state, last_sync, last_run_id)
                     VALUES (?, '{}', ?, ?)
                     ON CONFLICT (account_id) DO UPDATE SET state = excluded.state,
                        last_sync = excluded.last_sync, last_run_id = excluded.last_run_id",
                )
                .bind(account)
                .bind(Utc::now().to_rfc3339())
                .bind(run_id)
                .execute(pool)
                .await?;
            }
        }
        Ok(())
    }
}

fn percentile_ms(sorted_us: &[u64], p: usize) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    // Nearest rank.
    let rank = (sorted_us.len() * p).div_ceil(100).max(1);
    sorted_us[rank - 1] as f64 / 1000.0
}

fn worker_main(kind: &str, name: &str, target: &str) -> Result<()> {
    let rt = runtime()?;
    rt.block_on(async {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let (queue, state, pool_size): (Arc<dyn JobQueue>, StateDb, u32) = match kind {
            "pg" => {
                let pool = PgPoolOptions::new()
                    .max_connections(PG_POOL)
                    .connect(target)
                    .await
                    .with_context(|| format!("worker {name}: cannot connect"))?;
                let queue = PgQueue::open(pool.clone(), clock).await?;
                (Arc::new(queue), StateDb::Pg(pool), PG_POOL)
            }
            "sqlite" => {
                let store = SqliteStore::open(std::path::Path::new(target)).await?;
                let queue = Queue::open(store.pool().clone(), clock).await?;
                (
                    Arc::new(queue),
                    StateDb::Sqlite(store.pool().clone()),
                    SQLITE_POOL,
                )
            }
            other => bail!("unknown backend {other}"),
        };
        let owner = Scheduler::new_owner(&format!("fleet-{name}"));
        queue.worker_beat(&owner, 0).await?;

        // stdin: "go" starts the clock; its end stops the worker (the
        // parent closes it once every job is done).
        let stopped = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(Notify::new());
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        {
            let stopped = Arc::clone(&stopped);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut go_tx = Some(go_tx);
                let mut line = String::new();
                loop {
                    line.clear();
                    match std::io::stdin().read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) if line.trim() == "go" => {
                            if let Some(tx) = go_tx.take() {
                                let _ = tx.send(());
                            }
                        }
                        Ok(_) => {}
                    }
                }
                stopped.store(true, Ordering::SeqCst);
                stop.notify_one();
            });
        }
        println!("ready");
        std::io::stdout().flush()?;
        go_rx.await.context("the parent went away before go")?;

        let started = Instant::now();
        let slots = Arc::new(Semaphore::new(CONCURRENCY));
        let mut tasks: JoinSet<()> = JoinSet::new();
        let jobs_done = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let last_finish = Arc::new(AtomicI64::new(0));
        let mut latencies_us: Vec<u64> = Vec::with_capacity(16_384);
        let mut empty_claims = 0u64;
        loop {
            if stopped.load(Ordering::SeqCst) {
                break;
            }
            let free = slots.available_permits();
            let mut claimed = 0;
            if free > 0 {
                let t = Instant::now();
                let result = queue.claim_batch(&owner, LEASE, &limit_for, free).await;
                latencies_us.push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
                match result {
                    Ok(jobs) => {
                        claimed = jobs.len();
                        if jobs.is_empty() {
                            empty_claims += 1;
                        }
                        for job in jobs {
                            let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                                bail!("claimed more jobs than free slots");
                            };
                            let queue = Arc::clone(&queue);
                            let state = state.clone();
                            let owner = owner.clone();
                            let jobs_done = Arc::clone(&jobs_done);
                            let errors = Arc::clone(&errors);
                            let last_finish = Arc::clone(&last_finish);
                            tasks.spawn(async move {
                                let _permit = permit;
                                tokio::time::sleep(JOB_TIME).await;
                                let ended = async {
                                    state.commit(&job.account_id, &job.run_id).await?;
                                    queue
                                        .finish(&job, &owner, &Outcome::Done(serde_json::json!({})))
                                        .await?;
                                    anyhow::Ok(())
                                }
                                .await;
                                match ended {
                                    Ok(()) => {
                                        jobs_done.fetch_add(1, Ordering::Relaxed);
                                        last_finish.fetch_max(now_us(), Ordering::Relaxed);
                                    }
                                    Err(e) => {
                                        errors.fetch_add(1, Ordering::Relaxed);
                                        eprintln!("worker: job {} failed: {e:#}", job.id);
                                    }
                                }
                            });
                        }
                    }
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!("worker: claim failed: {e}");
                    }
                }
            }
            while tasks.try_join_next().is_some() {}
            let free = slots.available_permits();
            // A claim that found work and left slots free: claim again at
            // once (the daemon's next round).
            if claimed > 0 && free > 0 {
                continue;
            }
            tokio::select! {
                () = stop.notified() => {}
                // Nothing claimable: wait for a wake-up (PostgreSQL: a job
                // queued or a slot freed anywhere) or the poll.
                () = queue.wait_for_work(POLL), if free > 0 => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        while tasks.join_next().await.is_some() {}
        let _ = queue.worker_gone(&owner).await;
        let last = last_finish.load(Ordering::Relaxed);
        let go_us = now_us() - i64::try_from(started.elapsed().as_micros()).unwrap_or(0);
        latencies_us.sort_unstable();
        let report = WorkerReport {
            worker: name.to_owned(),
            pool: pool_size,
            claims: latencies_us.len() as u64,
            empty_claims,
            jobs: jobs_done.load(Ordering::Relaxed),
            errors: errors.load(Ordering::Relaxed),
            claim_p50_ms: percentile_ms(&latencies_us, 50),
            claim_p99_ms: percentile_ms(&latencies_us, 99),
            claim_max_ms: percentile_ms(&latencies_us, 100),
            peak_rss_kib: peak_rss_kib(),
            wall_s: if last > 0 {
                (last - go_us) as f64 / 1e6
            } else {
                0.0
            },
            last_finish_us: last,
        };
        println!("{}", serde_json::to_string(&report)?);
        anyhow::Ok(())
    })
}

// ---- the parent ---------------------------------------------------------

/// The database of one run, as the parent reads it.
enum Db {
    Pg {
        db: TestDb,
        pool: sqlx::PgPool,
    },
    Sqlite {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
        store: SqliteStore,
    },
}

impl Db {
    fn kind(&self) -> &'static str {
        match self {
            Db::Pg { .. } => "pg",
            Db::Sqlite { .. } => "sqlite",
        }
    }

    fn target(&self) -> String {
        match self {
            Db::Pg { db, .. } => db.url.clone(),
            Db::Sqlite { path, .. } => path.display().to_string(),
        }
    }

    /// The workers' open connections to the database (PostgreSQL only;
    /// the sampling connection excluded), and how many of them were
    /// running a statement.
    async fn connections(&self) -> Result<Option<(i64, i64)>> {
        match self {
            Db::Pg { pool, .. } => {
                let row: (i64, i64) = sqlx::query_as(
                    "SELECT count(*), count(*) FILTER (WHERE state = 'active')
                     FROM pg_stat_activity
                     WHERE datname = current_database() AND pid <> pg_backend_pid()",
                )
                .fetch_one(pool)
                .await?;
                Ok(Some(row))
            }
            Db::Sqlite { .. } => Ok(None),
        }
    }

    /// The most running (or waiting) jobs of one konnector right now.
    async fn max_active_per_konnector(&self) -> Result<i64> {
        const SQL: &str = "SELECT konnector, count(*) FROM sched_jobs
             WHERE state IN ('running', 'awaiting_user') GROUP BY konnector";
        let rows: Vec<(String, i64)> = match self {
            Db::Pg { pool, .. } => sqlx::query_as(SQL).fetch_all(pool).await?,
            Db::Sqlite { store, .. } => sqlx::query_as(SQL).fetch_all(store.pool()).await?,
        };
        Ok(rows.into_iter().map(|(_, n)| n).max().unwrap_or(0))
    }

    /// Jobs that ended.
    async fn ended(&self) -> Result<i64> {
        const SQL: &str = "SELECT count(*) FROM sched_jobs WHERE state IN ('done', 'errored')";
        Ok(match self {
            Db::Pg { pool, .. } => sqlx::query_scalar(SQL).fetch_one(pool).await?,
            Db::Sqlite { store, .. } => sqlx::query_scalar(SQL).fetch_one(store.pool()).await?,
        })
    }

    /// Jobs by state, and the done jobs whose account's konnector state
    /// names their run id.
    async fn final_counts(&self) -> Result<(BTreeMap<String, i64>, i64)> {
        const BY_STATE: &str = "SELECT state, count(*) FROM sched_jobs GROUP BY state";
        const COMMITTED: &str = "SELECT count(*) FROM sched_jobs j
             JOIN konnector_state s ON s.account_id = j.account_id AND s.last_run_id = j.run_id
             WHERE j.state = 'done'";
        Ok(match self {
            Db::Pg { pool, .. } => (
                sqlx::query_as(BY_STATE)
                    .fetch_all(pool)
                    .await?
                    .into_iter()
                    .collect(),
                sqlx::query_scalar(COMMITTED).fetch_one(pool).await?,
            ),
            Db::Sqlite { store, .. } => (
                sqlx::query_as(BY_STATE)
                    .fetch_all(store.pool())
                    .await?
                    .into_iter()
                    .collect(),
                sqlx::query_scalar(COMMITTED)
                    .fetch_one(store.pool())
                    .await?,
            ),
        })
    }
}

/// What one run measured.
struct RunFigures {
    backend: &'static str,
    workers: usize,
    n: usize,
    add_triggers: Duration,
    queueing: Duration,
    enqueue_calls: usize,
    wall: Duration,
    peak_connections: Option<i64>,
    peak_active: Option<i64>,
    max_per_konnector: i64,
    reports: Vec<WorkerReport>,
    claim_p50_ms: f64,
    claim_p99_ms: f64,
}

impl RunFigures {
    fn jobs_per_s(&self) -> f64 {
        self.n as f64 / self.wall.as_secs_f64()
    }

    fn claims(&self) -> u64 {
        self.reports.iter().map(|r| r.claims).sum()
    }

    fn rss_mib(&self) -> String {
        let v: Vec<String> = self
            .reports
            .iter()
            .map(|r| format!("{:.1}", r.peak_rss_kib as f64 / 1024.0))
            .collect();
        v.join(" / ")
    }
}

fn konnector_of(i: usize, n: usize) -> String {
    format!("bench-{:02}", i * KONNECTORS / n)
}

fn account_id(i: usize) -> String {
    format!("acct-{i:06}")
}

/// A fresh PostgreSQL database with the store's tables and `n` accounts;
/// `None` without a server.
async fn pg_db(label: &str, n: usize) -> Result<Option<Db>> {
    let Some(db) = TestDb::create(label).await else {
        return Ok(None);
    };
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&db.url)
        .await?;
    let mut m = sqlx::migrate!("framework/migrations/postgres");
    m.dangerous_set_table_name("gleaner_store_migrations");
    m.run(&pool).await?;
    for start in (0..n).step_by(1000) {
        let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(
            "INSERT INTO accounts (id, konnector, label, fields, sealed_secrets, created_at, folder, tenant_id) ",
        );
        // The default tenant's: the workers' queues are the fleet's.
        q.push_values(start..(start + 1000).min(n), |mut b, i| {
            let id = account_id(i);
            b.push_bind(id.clone())
                .push_bind(konnector_of(i, n))
                .push_bind(id.clone())
                .push("'{}'::jsonb")
                .push("'\\x'::bytea")
                .push("now()")
                .push_bind(id)
                .push("'default'");
        });
        q.build().execute(&pool).await?;
    }
    Ok(Some(Db::Pg { db, pool }))
}

/// A fresh SQLite store with `n` accounts.
async fn sqlite_db(n: usize) -> Result<Db> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("gleaner.db");
    let store = SqliteStore::open(&path).await?;
    let now = Utc::now().to_rfc3339();
    let mut tx = store.pool().begin().await?;
    for start in (0..n).step_by(1000) {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO accounts (id, konnector, label, fields, sealed_secrets, created_at, folder) ",
        );
        q.push_values(start..(start + 1000).min(n), |mut b, i| {
            let id = account_id(i);
            b.push_bind(id.clone())
                .push_bind(konnector_of(i, n))
                .push_bind(id.clone())
                .push("'{}'")
                .push("x''")
                .push_bind(now.clone())
                .push_bind(id);
        });
        q.build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(Db::Sqlite {
        _dir: dir,
        path,
        store,
    })
}

/// Writes a trigger per account, due now, and queues them all: returns
/// the time of `add_triggers`, of queueing, and how many `enqueue_due`
/// calls it took.
async fn plan_all(queue: &dyn JobQueue, n: usize) -> Result<(Duration, Duration, usize)> {
    let due = queue.now() - chrono::Duration::seconds(1);
    let rows: Vec<(String, String, chrono::DateTime<Utc>)> = (0..n)
        .map(|i| (account_id(i), konnector_of(i, n), due))
        .collect();
    let t = Instant::now();
    queue.add_triggers(&rows).await?;
    let add = t.elapsed();
    let t = Instant::now();
    let mut queued = 0;
    let mut calls = 0;
    loop {
        let jobs = queue
            .enqueue_due(
                &|_, after| Some(after + chrono::Duration::days(1)),
                chrono::Duration::hours(1),
            )
            .await?;
        calls += 1;
        if jobs.is_empty() {
            break;
        }
        queued += jobs.len();
    }
    let queueing = t.elapsed();
    ensure!(queued == n, "queued {queued} jobs of {n}");
    // The last call found nothing: it is not counted as a pass.
    Ok((add, queueing, calls - 1))
}

struct Worker {
    child: Child,
    out: BufReader<ChildStdout>,
}

fn spawn_worker(db: &Db, name: &str) -> Result<Worker> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["worker", db.kind(), name, &db.target()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start a worker process")?;
    let mut out = BufReader::new(child.stdout.take().context("no stdout")?);
    let mut line = String::new();
    out.read_line(&mut line)?;
    ensure!(
        line.trim() == "ready",
        "worker {name} did not start: {line:?}"
    );
    Ok(Worker { child, out })
}

async fn run(db: Db, workers: usize, n: usize) -> Result<RunFigures> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (add_triggers, queueing, enqueue_calls) = match &db {
        Db::Pg { pool, .. } => {
            let queue = PgQueue::open(pool.clone(), clock).await?;
            plan_all(&queue, n).await?
        }
        Db::Sqlite { store, .. } => {
            let queue = Queue::open(store.pool().clone(), clock).await?;
            plan_all(&queue, n).await?
        }
    };

    let mut procs = Vec::new();
    for w in 0..workers {
        procs.push(spawn_worker(&db, &format!("w{}", w + 1))?);
    }
    let t0 = now_us();
    let started = Instant::now();
    for p in &mut procs {
        let stdin = p.child.stdin.as_mut().context("no stdin")?;
        stdin.write_all(b"go\n")?;
        stdin.flush()?;
    }

    let mut peak_connections: Option<i64> = None;
    let mut peak_active: Option<i64> = None;
    let mut max_per_konnector = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some((open, active)) = db.connections().await? {
            peak_connections = Some(peak_connections.unwrap_or(0).max(open));
            peak_active = Some(peak_active.unwrap_or(0).max(active));
        }
        max_per_konnector = max_per_konnector.max(db.max_active_per_konnector().await?);
        if db.ended().await? >= i64::try_from(n)? {
            break;
        }
        ensure!(
            started.elapsed() < RUN_TIMEOUT,
            "{} jobs of {n} ended after {RUN_TIMEOUT:?}",
            db.ended().await?
        );
    }

    let mut reports = Vec::new();
    for mut p in procs {
        drop(p.child.stdin.take());
        let report = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            p.out.read_line(&mut line)?;
            let status = p.child.wait()?;
            ensure!(status.success(), "a worker failed: {status}");
            serde_json::from_str::<WorkerReport>(line.trim())
                .with_context(|| format!("a worker's report: {line:?}"))
        })
        .await??;
        reports.push(report);
    }
    let last = reports.iter().map(|r| r.last_finish_us).max().unwrap_or(t0);
    let wall = Duration::from_micros(u64::try_from(last - t0).unwrap_or(0));

    // Every job ended exactly once.
    let (by_state, committed) = db.final_counts().await?;
    let done = by_state.get("done").copied().unwrap_or(0);
    let rows: i64 = by_state.values().sum();
    let n64 = i64::try_from(n)?;
    ensure!(
        done == n64 && rows == n64,
        "jobs by state {by_state:?}, expected {n} done and nothing else"
    );
    ensure!(
        committed == n64,
        "{committed} of {n} done jobs are named by their account's konnector state"
    );
    let finished: u64 = reports.iter().map(|r| r.jobs).sum();
    let errors: u64 = reports.iter().map(|r| r.errors).sum();
    ensure!(
        finished == n as u64 && errors == 0,
        "the workers finished {finished} jobs of {n} with {errors} errors"
    );
    ensure!(
        max_per_konnector <= PER_KONNECTOR as i64,
        "a konnector had {max_per_konnector} running jobs (limit {PER_KONNECTOR})"
    );

    // Claim latency over every worker's calls: the workers' percentiles are
    // per process; the run's are read from the slowest worker.
    let claim_p50_ms = reports
        .iter()
        .map(|r| r.claim_p50_ms)
        .fold(0.0_f64, f64::max);
    let claim_p99_ms = reports
        .iter()
        .map(|r| r.claim_p99_ms)
        .fold(0.0_f64, f64::max);
    let backend = db.kind();
    if let Db::Pg { pool, .. } = &db {
        pool.close().await;
    }
    drop(db);
    Ok(RunFigures {
        backend,
        workers,
        n,
        add_triggers,
        queueing,
        enqueue_calls,
        wall,
        peak_connections,
        peak_active,
        max_per_konnector,
        reports,
        claim_p50_ms,
        claim_p99_ms,
    })
}

fn print_run(f: &RunFigures) {
    let backend = if f.backend == "pg" {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!(
        "\n## {backend}, {} worker process{}",
        f.workers,
        if f.workers == 1 { "" } else { "es" }
    );
    println!(
        "  triggers written:             {:>8.3} s",
        f.add_triggers.as_secs_f64()
    );
    println!(
        "  queueing (enqueue_due):       {:>8.3} s  ({} calls, {:.0} jobs/s)",
        f.queueing.as_secs_f64(),
        f.enqueue_calls,
        f.n as f64 / f.queueing.as_secs_f64()
    );
    println!(
        "  all {} jobs done in:        {:>8.3} s  ({:.0} jobs/s)",
        f.n,
        f.wall.as_secs_f64(),
        f.jobs_per_s()
    );
    if let (Some(open), Some(active)) = (f.peak_connections, f.peak_active) {
        println!(
            "  connections (peak):           {open} open, {active} running a statement (pool {} + 1 listener per worker)",
            PG_POOL
        );
    } else {
        println!("  connections:                  one file; pool {SQLITE_POOL} per worker process");
    }
    println!(
        "  running per konnector (max):  {} (limit {PER_KONNECTOR})",
        f.max_per_konnector
    );
    println!(
        "  | worker | claims | empty | jobs | claim p50 ms | claim p99 ms | claim max ms | peak RSS MiB | wall s |"
    );
    println!("  |---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &f.reports {
        println!(
            "  | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.1} | {:.2} |",
            r.worker,
            r.claims,
            r.empty_claims,
            r.jobs,
            r.claim_p50_ms,
            r.claim_p99_ms,
            r.claim_max_ms,
            r.peak_rss_kib as f64 / 1024.0,
            r.wall_s
        );
    }
}

fn parent_main() -> Result<()> {
    let n = accounts();
    println!(
        "gleaner fleet benchmark: {n} accounts over {KONNECTORS} konnectors, all due at once; \
         jobs of {} ms without HTTP (the queue, not konnectors); {CONCURRENCY} jobs at once per worker, \
         {PER_KONNECTOR} per konnector across the fleet",
        JOB_TIME.as_millis()
    );
    println!(
        "machine: {} CPUs shared by PostgreSQL, the workers and this parent, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| format!(
                "load average {}",
                l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
            ))
            .unwrap_or_default()
    );
    let rt = runtime()?;
    rt.block_on(async {
        let mut all: Vec<RunFigures> = Vec::new();
        let mut pg_skipped = false;
        for w in worker_counts("GLEANER_BENCH_WORKERS", &[1, 2, 3, 4]) {
            let Some(db) = pg_db(&format!("fleet_{w}w"), n).await? else {
                println!("PostgreSQL part skipped: no server (see the line above); SQLite only");
                pg_skipped = true;
                break;
            };
            let f = run(db, w, n).await?;
            print_run(&f);
            all.push(f);
        }
        for w in worker_counts("GLEANER_BENCH_SQLITE_WORKERS", &[1, 2]) {
            let f = run(sqlite_db(n).await?, w, n).await?;
            print_run(&f);
            all.push(f);
        }

        println!("\n## Summary ({n} jobs; every run checked: each job done once, limit held)");
        println!(
            "| backend | workers | queueing s | wall s | jobs/s | claims | claim p50 ms | claim p99 ms | connections (peak open / active) | max running per konnector | peak RSS per worker MiB |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|");
        for f in &all {
            println!(
                "| {} | {} | {:.3} | {:.2} | {:.0} | {} | {:.2} | {:.2} | {} | {} | {} |",
                if f.backend == "pg" {
                    "PostgreSQL"
                } else {
                    "SQLite"
                },
                f.workers,
                f.queueing.as_secs_f64(),
                f.wall.as_secs_f64(),
                f.jobs_per_s(),
                f.claims(),
                f.claim_p50_ms,
                f.claim_p99_ms,
                match (f.peak_connections, f.peak_active) {
                    (Some(o), Some(a)) => format!("{o} / {a}"),
                    _ => "n/a (file)".to_owned(),
                },
                f.max_per_konnector,
                f.rss_mib()
            );
        }
        if pg_skipped {
            println!("(PostgreSQL skipped: no server)");
        }
        println!(
            "claim p50/p99: the highest of the workers' own percentiles; jobs/s: {n} jobs over the time from \"go\" to the last finish"
        );
        anyhow::Ok(())
    })
}
