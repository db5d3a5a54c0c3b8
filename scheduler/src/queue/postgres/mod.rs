//! [`PgQueue`]: the job queue in PostgreSQL, shared by a fleet of machines,
//! with the same behaviour as the SQLite [`super::Queue`] and every
//! guarantee of [`JobQueue`] holding **across machines**.
//!
//! The tables are the SQLite queue's (`sched_triggers`, `sched_jobs`,
//! `sched_twofa_answers`, `sched_workers`), created by the migrations of
//! `scheduler/migrations/postgres/`, which sqlx's migrator applies with its
//! own table, `gleaner_queue_migrations` (the store's migrations keep
//! theirs, `gleaner_store_migrations`, in the same database). A database
//! holding a queue migration this build does not know was written by a
//! newer Gleaner: [`PgQueue::open`] refuses it and changes nothing.
//!
//! Every time recorded comes from the injected [`Clock`], never from
//! `now()` of the server, so tests move time by hand and every machine
//! writes the same kind of time as the SQLite queue.
//!
//! How each guarantee holds with many machines (transactions are `READ
//! COMMITTED`, PostgreSQL's default):
//! - **one active run per account** and **one queued job per account**:
//!   the unique partial indexes `sched_jobs_one_active` and
//!   `sched_jobs_one_queued`, as in SQLite. Inserts that could meet a
//!   queued job use `ON CONFLICT ... DO NOTHING` / `DO UPDATE` on the
//!   partial index, so a race is an answer, not an error. A claim skips
//!   the accounts it sees active; one made active by a transaction that
//!   commits while the claim's statement runs makes that statement fail
//!   on the index, and the claim is made again at once job by job, each
//!   update in a savepoint, skipping that job (`claims.rs`).
//! - **the per-konnector limit, fleet-wide**: row locks cannot protect a
//!   *count* (two claimers each see the other's new runs as still queued),
//!   and `SERIALIZABLE` would turn every busy night into retried claims.
//!   So a claim first reads (without lock) which konnectors the first
//!   runnable jobs belong to, taking in the same statement, inside its
//!   transaction, the transaction-scoped advisory lock
//!   `pg_advisory_xact_lock(GLNR, hashtext(konnector))` of each of them
//!   (in slug order, so two claimers never deadlock); its next statement
//!   counts each konnector's `running`/`awaiting_user` jobs (a fresh
//!   snapshot: every earlier holder of the lock has committed) and claims
//!   only up to `limit_for(konnector)`. The lock is
//!   released at commit, when the new runs are visible to the next
//!   claimer. Only claims take it: finishing, recovering or requeuing a
//!   run can only lower the count, and a manual run started at once
//!   ([`JobQueue::start_manual`]) ignores the limit, as on SQLite. A hash
//!   collision between two slugs only makes their claims wait for each
//!   other.
//! - **a job is claimed once**: the candidates, of the konnectors locked
//!   above, are locked `FOR UPDATE SKIP LOCKED` and updated only while
//!   still `queued` (one statement for the whole batch: a claim is five
//!   round trips, whatever the number of jobs and konnectors). Since claimers of one konnector take turns on its lock, the
//!   rows a claim locks and leaves are not hidden from another claimer
//!   (which waits for the lock, then sees them): concurrent claimers fill
//!   every free slot, as SQLite's serialized claims do.
//! - **planning once**: [`JobQueue::enqueue_due`] reads due triggers `FOR
//!   UPDATE SKIP LOCKED`: two daemons planning at once take disjoint
//!   triggers, and a trigger planned and moved on no longer matches.
//! - **recovery once**: a stale job is re-read `FOR UPDATE SKIP LOCKED`
//!   and re-checked before it is taken back (a heartbeat may have renewed
//!   it meanwhile).
//! - Serialization failures and deadlocks (SQLSTATE `40001`, `40P01`) are
//!   retried inside the method, a few times with a short random pause,
//!   before they are reported.
//!
//! **Wake-ups**: every transaction that queues a job (manual, due, retry,
//! requeued) or ends one (a slot frees) sends `pg_notify('gleaner_jobs',
//! konnector)`, delivered at commit; [`JobQueue::wait_for_work`] listens on
//! that channel on a connection of its own (a one-connection pool beside
//! the queue's, opened at the first wait and kept), so an idle daemon on
//! any machine starts a run within a round trip instead of a poll period.
//! Notifications that arrive between two waits are kept by the listener and
//! end the next wait at once; a lost connection falls back on the poll.
//!
//! **Tenants**: every trigger, job and second-factor answer carries a
//! `tenant_id` (migration `0002_tenants.sql`). A queue works in one of two
//! modes:
//! - **fleet** ([`PgQueue::open`]): the daemons' queue. It sees every
//!   tenant's rows, claims jobs of all of them, and writes each row's
//!   tenant from where it comes from: a trigger takes its account's
//!   tenant (`accounts.tenant_id`, the store's), a job its trigger's, an
//!   answer its job's. Its transactions are the connecting user's own
//!   (row-level security is enabled, not forced: they pass).
//! - **tenant** ([`PgQueue::for_tenant`]): the queue of commands run for
//!   one tenant (`--tenant`, or the default tenant). Every operation runs
//!   inside the store's `begin_scoped` (role `gleaner_tenant`, setting
//!   `gleaner.tenant`) **and** names `tenant_id` in its SQL: the code is
//!   the first wall, row-level security the second. Exceptions, which must
//!   stay fleet-wide, run unscoped but still filter the tenant where they
//!   touch its rows: a claim (a konnector's limit protects the provider
//!   from the whole fleet, so the running jobs of every tenant are
//!   counted; only the candidates are the tenant's), and the workers'
//!   list (the fleet's machines, no tenant's data). The queue's depth and
//!   recovery are the tenant's own in tenant mode.
//!
//! [`remove_tenant_rows`] deletes a tenant's rows (in the caller's
//! transaction, beside the store's removal).
//!
//! The files, by concern:
//! - `schema.rs`: the migration and reading rows into records;
//! - `triggers.rs`: triggers and planning;
//! - `jobs.rs`: manual runs, outcomes, history and pruning;
//! - `claims.rs`: claims, with the locks above;
//! - `leases.rs`: heartbeats, requeuing, recovery;
//! - `answers.rs`: the second factor;
//! - `workers.rs`: the workers' registry, the queue's depth, and wake-ups;
//! - `tenants.rs`: the two modes' connections, and removing a tenant.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use gleaner_framework::store::postgres::tenant::begin_scoped;
use gleaner_framework::tenant::TenantId;
use sqlx::PgPool;
use sqlx::postgres::PgListener;

use super::{
    Job, JobFilter, JobQueue, LimitFor, NextRun, Outcome, QueueDepth, Recovered, TriggerState,
    WorkerState,
};
use crate::clock::Clock;
use crate::error::{PgFailure, Result, SchedulerError, pg_failure};

mod answers;
mod claims;
mod jobs;
mod leases;
mod schema;
mod tenants;
mod triggers;
mod workers;

pub use tenants::{RemovedRows, remove_tenant_rows};

/// The channel every queuing or ending transaction notifies, with the
/// konnector's slug as payload.
pub const WAKE_CHANNEL: &str = "gleaner_jobs";

/// How many times a transaction that conflicted with another worker
/// (serialization failure, deadlock, a race on a unique index) is tried.
const ATTEMPTS: u32 = 5;

/// The queue in a PostgreSQL database shared by every machine of a fleet:
/// the [`JobQueue`] of several workers. Cheap to clone (the pool and the
/// listener are shared).
#[derive(Clone)]
pub struct PgQueue {
    pool: PgPool,
    clock: Arc<dyn Clock>,
    /// The wake-up listener, opened at the first [`JobQueue::wait_for_work`].
    listener: Arc<tokio::sync::Mutex<Option<PgListener>>>,
    /// `None`: fleet mode (every tenant); `Some`: tenant mode, confined to
    /// that tenant (see the module documentation).
    tenant: Option<TenantId>,
}

impl std::fmt::Debug for PgQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgQueue")
            .field("server", &crate::error::pg_server(&self.pool))
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

impl PgQueue {
    /// Opens the queue in the database of `pool` in **fleet mode** (every
    /// tenant's jobs: the daemon's queue), applying the queue's
    /// migrations (`gleaner_queue_migrations`). The store's tables
    /// (`accounts`, `konnector_state`) must exist: planning and recovery
    /// read them. Refuses, with [`SchedulerError::Schema`] and without
    /// changing anything, a database whose queue was migrated by a newer
    /// Gleaner; an unreachable server is a `Store` error naming it.
    pub async fn open(pool: PgPool, clock: Arc<dyn Clock>) -> Result<Self> {
        schema::migrate(&pool).await?;
        Ok(Self {
            pool,
            clock,
            listener: Arc::new(tokio::sync::Mutex::new(None)),
            tenant: None,
        })
    }

    /// The same queue (pool, clock, wake-up listener) in **tenant mode**:
    /// it sees and changes only `tenant`'s triggers, jobs and answers, in
    /// transactions row-level security confines to that tenant (see the
    /// module documentation). Cheap: nothing is opened.
    pub fn for_tenant(&self, tenant: TenantId) -> PgQueue {
        PgQueue {
            pool: self.pool.clone(),
            clock: Arc::clone(&self.clock),
            listener: Arc::clone(&self.listener),
            tenant: Some(tenant),
        }
    }

    /// The tenant this queue is confined to; `None` in fleet mode.
    pub fn tenant(&self) -> Option<&TenantId> {
        self.tenant.as_ref()
    }

    /// The clock the queue reads.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The pool the queue works on.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A transaction (`READ COMMITTED`) of this queue's scope: in tenant
    /// mode, confined to the tenant by row-level security.
    async fn begin(
        &self,
        what: &'static str,
    ) -> std::result::Result<sqlx::Transaction<'_, sqlx::Postgres>, TxError> {
        match &self.tenant {
            Some(t) => begin_scoped(&self.pool, t).await.map_err(sql(what)),
            None => self.pool.begin().await.map_err(sql(what)),
        }
    }

    /// A transaction (`READ COMMITTED`) of the connecting user, unscoped
    /// even in tenant mode: for what must stay fleet-wide (a claim's
    /// counts), whose statements filter the tenant themselves.
    async fn begin_fleet(
        &self,
        what: &'static str,
    ) -> std::result::Result<sqlx::Transaction<'static, sqlx::Postgres>, TxError> {
        self.pool.begin().await.map_err(sql(what))
    }

    /// Runs `attempt` until it succeeds, fails for good, or has conflicted
    /// [`ATTEMPTS`] times (serialization failure, deadlock, or a race it
    /// reported as [`TxError::Again`]), pausing a few random milliseconds
    /// between tries.
    async fn retrying<T, F, Fut>(&self, what: &'static str, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, TxError>>,
    {
        let mut tries = 0;
        loop {
            tries += 1;
            let failed = match attempt().await {
                Ok(v) => return Ok(v),
                Err(TxError::Fail(e)) => return Err(e),
                Err(TxError::Sql(w, e)) => {
                    if tries >= ATTEMPTS || pg_failure(&e) != PgFailure::Conflict {
                        return Err(crate::error::pg_error(w, &self.pool, &e));
                    }
                    e.to_string()
                }
                Err(TxError::Again(why)) => {
                    if tries >= ATTEMPTS {
                        return Err(SchedulerError::Store(
                            gleaner_framework::KonnectorError::store(format!(
                                "job queue: {what} failed: it kept racing with other workers on {} ({why}); try again",
                                crate::error::pg_server(&self.pool)
                            )),
                        ));
                    }
                    why
                }
            };
            tracing::debug!(what, tries, error = %failed, "job queue: conflict, trying again");
            let pause = rand::random_range(2..20u64) * u64::from(tries);
            tokio::time::sleep(StdDuration::from_millis(pause)).await;
        }
    }
}

/// Why one try of a transaction failed.
pub(super) enum TxError {
    /// A statement failed (retried when it is a conflict).
    Sql(&'static str, sqlx::Error),
    /// A race with another worker that a new try resolves (a unique index
    /// met, a row taken meanwhile), with what happened.
    Again(String),
    /// A refusal or error that no retry changes.
    Fail(SchedulerError),
}

impl From<SchedulerError> for TxError {
    fn from(e: SchedulerError) -> Self {
        TxError::Fail(e)
    }
}

/// Maps a sqlx error of `what` into a [`TxError`].
fn sql(what: &'static str) -> impl Fn(sqlx::Error) -> TxError {
    move |e| TxError::Sql(what, e)
}

/// Whether `e` is a unique index violation (SQLSTATE `23505`).
fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "23505")
}

/// Sends the wake-up for `konnector` in `tx` (delivered at commit).
async fn notify(tx: &mut sqlx::PgConnection, konnector: &str) -> std::result::Result<(), TxError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(WAKE_CHANNEL)
        .bind(konnector)
        .execute(&mut *tx)
        .await
        .map_err(sql("sending a wake-up"))?;
    Ok(())
}

/// A std duration as a chrono one (saturating).
fn to_chrono(d: StdDuration) -> Duration {
    super::to_chrono(d)
}

/// The PostgreSQL queue: each method is the inherent one of the same name
/// (in the file of its concern).
#[async_trait]
impl JobQueue for PgQueue {
    fn now(&self) -> DateTime<Utc> {
        PgQueue::now(self)
    }

    async fn triggers(&self) -> Result<Vec<TriggerState>> {
        PgQueue::triggers(self).await
    }

    async fn trigger(&self, account_id: &str) -> Result<Option<TriggerState>> {
        PgQueue::trigger(self, account_id).await
    }

    async fn accounts_without_trigger(&self) -> Result<Vec<(String, String)>> {
        PgQueue::accounts_without_trigger(self).await
    }

    async fn add_triggers(&self, rows: &[(String, String, DateTime<Utc>)]) -> Result<()> {
        PgQueue::add_triggers(self, rows).await
    }

    async fn drop_orphan_triggers(&self) -> Result<u64> {
        PgQueue::drop_orphan_triggers(self).await
    }

    async fn set_cron(
        &self,
        account_id: &str,
        cron: Option<&str>,
        next_run_at: DateTime<Utc>,
    ) -> Result<()> {
        PgQueue::set_cron(self, account_id, cron, next_run_at).await
    }

    async fn set_paused(&self, account_id: &str, paused: bool) -> Result<()> {
        PgQueue::set_paused(self, account_id, paused).await
    }

    async fn credentials_changed(&self, account_id: &str) -> Result<()> {
        PgQueue::credentials_changed(self, account_id).await
    }

    async fn enqueue_due(&self, next: &NextRun<'_>, catch_up_after: Duration) -> Result<Vec<i64>> {
        PgQueue::enqueue_due(self, next, catch_up_after).await
    }

    async fn enqueue_manual(&self, account_id: &str, konnector: &str) -> Result<i64> {
        PgQueue::enqueue_manual(self, account_id, konnector).await
    }

    async fn start_manual(
        &self,
        account_id: &str,
        konnector: &str,
        owner: &str,
        lease: StdDuration,
    ) -> Result<Job> {
        PgQueue::start_manual(self, account_id, konnector, owner, lease).await
    }

    async fn claim_batch(
        &self,
        owner: &str,
        lease: StdDuration,
        limit_for: &LimitFor<'_>,
        max: usize,
    ) -> Result<Vec<Job>> {
        PgQueue::claim_batch(self, owner, lease, limit_for, max).await
    }

    async fn finish(&self, job: &Job, owner: &str, outcome: &Outcome) -> Result<Option<i64>> {
        PgQueue::finish(self, job, owner, outcome).await
    }

    async fn job(&self, id: i64) -> Result<Option<Job>> {
        PgQueue::job(self, id).await
    }

    async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        PgQueue::jobs(self, filter).await
    }

    async fn counts(&self) -> Result<HashMap<String, u64>> {
        PgQueue::counts(self).await
    }

    async fn prune(&self, retention: Duration) -> Result<u64> {
        PgQueue::prune(self, retention).await
    }

    async fn heartbeat(&self, id: i64, owner: &str, lease: StdDuration) -> Result<bool> {
        PgQueue::heartbeat(self, id, owner, lease).await
    }

    async fn requeue_owned(&self, owner: &str) -> Result<Vec<i64>> {
        PgQueue::requeue_owned(self, owner).await
    }

    async fn recover(&self) -> Result<Recovered> {
        PgQueue::recover(self).await
    }

    async fn set_awaiting(
        &self,
        id: i64,
        kind: &str,
        hint: Option<&str>,
        deadline: DateTime<Utc>,
    ) -> Result<()> {
        PgQueue::set_awaiting(self, id, kind, hint, deadline).await
    }

    async fn set_running(&self, id: i64) -> Result<()> {
        PgQueue::set_running(self, id).await
    }

    async fn give_answer(&self, account_id: &str, sealed: &[u8]) -> Result<i64> {
        PgQueue::give_answer(self, account_id, sealed).await
    }

    async fn take_answer(&self, id: i64) -> Result<Option<Vec<u8>>> {
        PgQueue::take_answer(self, id).await
    }

    async fn wait_for_work(&self, max: StdDuration) {
        PgQueue::wait_for_work(self, max).await;
    }

    async fn worker_beat(&self, worker_id: &str, in_flight: u32) -> Result<()> {
        PgQueue::worker_beat(self, worker_id, in_flight).await
    }

    async fn worker_gone(&self, worker_id: &str) -> Result<()> {
        PgQueue::worker_gone(self, worker_id).await
    }

    async fn workers(&self) -> Result<Vec<WorkerState>> {
        PgQueue::workers(self).await
    }

    async fn depth_by_konnector(&self) -> Result<BTreeMap<String, QueueDepth>> {
        PgQueue::depth_by_konnector(self).await
    }
}
