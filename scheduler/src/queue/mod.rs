//! The durable job queue and the triggers' current state.
//!
//! What the scheduler and the CLI need from a queue is the [`JobQueue`]
//! trait, whose documentation states the guarantees every backend must
//! give. [`Queue`] is its implementation in the store's SQLite file; a
//! second backend (PostgreSQL) implements the same trait.
//!
//! Tables (prefixed `sched_`, beside the framework's):
//! - `sched_triggers`: one row per account: its cron override if any, the
//!   next automatic run, and Cozy's `current_state` (status, last success,
//!   last failure, last error, last manual execution) plus `blocked_code`,
//!   set after an error that needs the person, and `paused`, set by the
//!   person (a paused account gets no automatic run; manual runs work);
//! - `sched_jobs`: one row per execution request, in the states `queued`,
//!   `running`, `awaiting_user`, `done`, `errored`, and `skipped` (an
//!   automatic run that was not started, with its reason). A retry is a new
//!   row with the next attempt number, so **each row ends exactly once**;
//! - `sched_twofa_answers`: a code given with `gleaner 2fa`, sealed by the
//!   vault, until the waiting run takes it;
//! - `sched_workers`: one row per daemon, its last heartbeat and how many
//!   runs it has in flight (`gleaner status`).
//!
//! Codes (a failed run's, a skip's reason, an account's block) are typed
//! as [`JobCode`] and stored as their text ([`JobCode::as_str`]).
//!
//! Invariants the database enforces, so they hold with two daemons on one
//! file:
//! - at most one `running` or `awaiting_user` job per account (a unique
//!   partial index): one run per account at any moment;
//! - at most one `queued` job per account (another unique partial index):
//!   a missed night and a manual request do not pile up;
//! - a job is claimed in one `BEGIN IMMEDIATE` transaction that also counts
//!   the running jobs per konnector, so the per-provider limit holds across
//!   processes.
//!
//! A running job holds a **lease** that its worker renews; a job whose lease
//! ran out belongs to a dead worker. [`Queue::recover`] then checks whether
//! the run committed before the worker died (the account's konnector state
//! names the job's run id, written in the run's own transaction): if so the
//! job is done, otherwise it is queued again. Nothing runs twice, nothing
//! stays `running`.
//!
//! The files, by concern:
//! - `backend.rs`: the [`JobQueue`] trait and its implementation for
//!   [`Queue`];
//! - `records.rs`: the records every backend reads and writes ([`Job`],
//!   [`TriggerState`], [`JobState`], [`TriggerKind`], [`Outcome`],
//!   [`JobFilter`], [`Recovered`]);
//! - `code.rs`: [`JobCode`], the typed codes;
//! - `schema.rs`: the SQLite tables (sqlx migrations, and the upgrade of a
//!   queue from before them), rows into records;
//! - `triggers.rs`: `sched_triggers`: triggers, cron overrides, pause,
//!   blocks, and planning (due triggers into jobs or skips);
//! - `jobs.rs`: `sched_jobs`: manual runs, claims, outcomes, history and
//!   pruning;
//! - `leases.rs`: heartbeats, requeuing at shutdown, recovery of dead
//!   workers' jobs;
//! - `answers.rs`: the second factor: `awaiting_user` and
//!   `sched_twofa_answers`;
//! - `workers.rs`: `sched_workers`, the workers' heartbeats, and the
//!   queue's depth per konnector;
//! - `postgres/`: [`PgQueue`], the same queue in PostgreSQL, shared by a
//!   fleet of machines (its own module documentation says how each
//!   guarantee holds there).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use sqlx::SqlitePool;

use crate::clock::Clock;
use crate::error::{Result, SchedulerError};

#[macro_use]
mod schema;
mod answers;
mod backend;
mod code;
mod jobs;
mod leases;
mod postgres;
mod records;
pub mod transfer;
mod triggers;
mod workers;

pub use backend::JobQueue;
pub use code::JobCode;
pub use postgres::{PgQueue, RemovedRows, remove_tenant_rows};
pub use records::{
    Job, JobFilter, JobState, Outcome, QueueDepth, Recovered, TriggerKind, TriggerState,
    WorkerState,
};

/// The queue in the store's SQLite file, over the store's pool: the
/// [`JobQueue`] of a single machine. Its methods are also callable
/// directly on the concrete type.
#[derive(Clone)]
pub struct Queue {
    pool: SqlitePool,
    clock: Arc<dyn Clock>,
}

impl Queue {
    /// Opens the queue in the store's database, applying its migrations
    /// (`scheduler/migrations/sqlite/`, recorded in
    /// `gleaner_queue_migrations`) in one `BEGIN IMMEDIATE` transaction,
    /// after adding the columns a queue from before migrations lacks.
    /// Refuses, with [`SchedulerError::Schema`] naming the file and without
    /// changing anything, a queue a newer Gleaner migrated. SQLite only:
    /// another backend has its own way in.
    pub async fn open(pool: SqlitePool, clock: Arc<dyn Clock>) -> Result<Self> {
        let mut tx = pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(SchedulerError::sql_on(&pool, "opening the queue"))?;
        schema::migrate_sqlite(&mut tx, &pool).await?;
        tx.commit()
            .await
            .map_err(SchedulerError::sql_on(&pool, "creating the queue's tables"))?;
        Ok(Self { pool, clock })
    }

    /// The clock the queue reads.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// A `BEGIN IMMEDIATE` transaction (it takes SQLite's write lock at
    /// once, so the reads it makes hold until it commits).
    async fn write_tx(&self, what: &str) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(SchedulerError::sql_on(&self.pool, what))
    }
}

/// Computes a trigger's next run after a time (the scheduler's plan).
pub type NextRun<'a> =
    dyn Fn(&TriggerState, DateTime<Utc>) -> Option<DateTime<Utc>> + Send + Sync + 'a;

/// A konnector's limit of concurrent runs, by slug (the scheduler's
/// settings), as a claim applies it.
pub type LimitFor<'a> = dyn Fn(&str) -> usize + Send + Sync + 'a;

/// Timestamps are stored as fixed-width UTC text, so SQL compares them in
/// time order.
pub fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// A std duration as a chrono one (saturating).
pub fn to_chrono(d: std::time::Duration) -> Duration {
    Duration::from_std(d).unwrap_or(Duration::MAX)
}
