//! The durable job queue and the triggers' current state, in the store's
//! SQLite file.
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
//!   vault, until the waiting run takes it.
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

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};

use crate::clock::Clock;
use crate::error::{Result, SchedulerError};

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS sched_triggers (
        account_id TEXT PRIMARY KEY,
        konnector TEXT NOT NULL,
        cron TEXT,
        next_run_at TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'new',
        last_execution TEXT,
        last_success TEXT,
        last_failure TEXT,
        last_manual_execution TEXT,
        last_error_code TEXT,
        last_error_message TEXT,
        blocked_code TEXT,
        updated_at TEXT NOT NULL,
        paused INTEGER NOT NULL DEFAULT 0
    )",
    "CREATE INDEX IF NOT EXISTS sched_triggers_due ON sched_triggers (next_run_at)",
    "CREATE TABLE IF NOT EXISTS sched_jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        account_id TEXT NOT NULL,
        konnector TEXT NOT NULL,
        trigger TEXT NOT NULL,
        manual INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        state TEXT NOT NULL,
        run_id TEXT NOT NULL,
        queued_at TEXT NOT NULL,
        not_before TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        lease_owner TEXT,
        lease_expires_at TEXT,
        recoveries INTEGER NOT NULL DEFAULT 0,
        error_code TEXT,
        error_message TEXT,
        report TEXT,
        twofa_kind TEXT,
        twofa_hint TEXT,
        twofa_deadline TEXT
    )",
    "CREATE UNIQUE INDEX IF NOT EXISTS sched_jobs_one_active ON sched_jobs (account_id)
        WHERE state IN ('running', 'awaiting_user')",
    "CREATE UNIQUE INDEX IF NOT EXISTS sched_jobs_one_queued ON sched_jobs (account_id)
        WHERE state = 'queued'",
    "CREATE INDEX IF NOT EXISTS sched_jobs_by_state ON sched_jobs (state, not_before)",
    "CREATE INDEX IF NOT EXISTS sched_jobs_by_account ON sched_jobs (account_id, id)",
    "CREATE INDEX IF NOT EXISTS sched_jobs_by_finish ON sched_jobs (finished_at)",
    "CREATE TABLE IF NOT EXISTS sched_twofa_answers (
        job_id INTEGER PRIMARY KEY,
        sealed BLOB NOT NULL,
        given_at TEXT NOT NULL
    )",
];

/// The columns a [`TriggerState`] is read from (named, never `*`: a
/// statement prepared before a migration keeps its old column list).
macro_rules! trigger_columns {
    () => {
        "account_id, konnector, cron, next_run_at, status, last_execution, last_success, last_failure, last_manual_execution, last_error_code, last_error_message, blocked_code, paused"
    };
}

/// Adds the columns that tables created by older versions lack (SQLite's
/// `ALTER TABLE ... ADD COLUMN`, idempotent), inside the opening
/// transaction.
async fn migrate(tx: &mut sqlx::SqliteConnection) -> std::result::Result<(), sqlx::Error> {
    let has_paused: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pragma_table_info('sched_triggers') WHERE name = 'paused'",
    )
    .fetch_one(&mut *tx)
    .await?;
    if has_paused == 0 {
        sqlx::query("ALTER TABLE sched_triggers ADD COLUMN paused INTEGER NOT NULL DEFAULT 0")
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Timestamps are stored as fixed-width UTC text, so SQL compares them in
/// time order.
pub fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn opt_ts(row: &SqliteRow, col: &str) -> Option<DateTime<Utc>> {
    row.try_get::<Option<String>, _>(col)
        .ok()
        .flatten()
        .and_then(|s| parse_ts(&s))
}

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// A worker runs it.
    Running,
    /// The run waits for a second-factor code (`gleaner 2fa`).
    AwaitingUser,
    /// The run committed.
    Done,
    /// The run failed (its error code and message are recorded).
    Errored,
    /// An automatic run that was not started (its reason is recorded).
    Skipped,
}

impl JobState {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::AwaitingUser => "awaiting_user",
            Self::Done => "done",
            Self::Errored => "errored",
            Self::Skipped => "skipped",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "awaiting_user" => Self::AwaitingUser,
            "done" => Self::Done,
            "skipped" => Self::Skipped,
            _ => Self::Errored,
        }
    }
}

/// Why a job exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    /// The account's automatic slot.
    Slot,
    /// The account's cron override.
    Cron,
    /// A slot or cron time missed while no daemon ran, run once on start.
    CatchUp,
    /// A person asked (`gleaner run`).
    Manual,
    /// A retry after a transient error.
    Retry,
}

impl TriggerKind {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Slot => "slot",
            Self::Cron => "cron",
            Self::CatchUp => "catch-up",
            Self::Manual => "manual",
            Self::Retry => "retry",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "cron" => Self::Cron,
            "catch-up" => Self::CatchUp,
            "manual" => Self::Manual,
            "retry" => Self::Retry,
            _ => Self::Slot,
        }
    }
}

/// A job record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Its number.
    pub id: i64,
    /// The account.
    pub account_id: String,
    /// The konnector slug.
    pub konnector: String,
    /// Why it exists.
    pub trigger: TriggerKind,
    /// Whether a person asked for it (directly or as a retry of such a run).
    pub manual: bool,
    /// 1 for the first execution, 2 for the first retry, ...
    pub attempt: u32,
    /// Its state.
    pub state: JobState,
    /// The run id passed to the konnector run.
    pub run_id: String,
    /// When it was queued.
    pub queued_at: DateTime<Utc>,
    /// Not started before this time (retries).
    pub not_before: DateTime<Utc>,
    /// When a worker started it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// The worker holding it.
    pub lease_owner: Option<String>,
    /// How many times it was taken back from a dead worker.
    pub recoveries: u32,
    /// The error code (errored) or skip reason code (skipped).
    pub error_code: Option<String>,
    /// The error message or skip reason, secrets masked.
    pub error_message: Option<String>,
    /// The run report (done), as JSON.
    pub report: Option<serde_json::Value>,
    /// What the run waits for (awaiting_user).
    pub twofa_kind: Option<String>,
    /// Where the code went (awaiting_user).
    pub twofa_hint: Option<String>,
}

impl Job {
    fn from_row(row: &SqliteRow) -> Result<Self> {
        let get = |col: &str| -> Result<String> {
            row.try_get::<String, _>(col)
                .map_err(SchedulerError::sql("reading a job"))
        };
        let int = |col: &str| -> Result<i64> {
            row.try_get::<i64, _>(col)
                .map_err(SchedulerError::sql("reading a job"))
        };
        let text = |col: &str| row.try_get::<Option<String>, _>(col).ok().flatten();
        Ok(Self {
            id: int("id")?,
            account_id: get("account_id")?,
            konnector: get("konnector")?,
            trigger: TriggerKind::parse(&get("trigger")?),
            manual: int("manual")? != 0,
            attempt: u32::try_from(int("attempt")?).unwrap_or(1),
            state: JobState::parse(&get("state")?),
            run_id: get("run_id")?,
            queued_at: parse_ts(&get("queued_at")?).unwrap_or_default(),
            not_before: parse_ts(&get("not_before")?).unwrap_or_default(),
            started_at: opt_ts(row, "started_at"),
            finished_at: opt_ts(row, "finished_at"),
            lease_owner: text("lease_owner"),
            recoveries: u32::try_from(int("recoveries")?).unwrap_or(0),
            error_code: text("error_code"),
            error_message: text("error_message"),
            report: text("report").and_then(|r| serde_json::from_str(&r).ok()),
            twofa_kind: text("twofa_kind"),
            twofa_hint: text("twofa_hint"),
        })
    }
}

/// An account's trigger and its current state (Cozy's `current_state`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerState {
    /// The account.
    pub account_id: String,
    /// The konnector slug.
    pub konnector: String,
    /// The person's cron override, if any.
    pub cron: Option<String>,
    /// The next automatic run.
    pub next_run_at: DateTime<Utc>,
    /// `new`, `done` or `errored`: the last run's outcome.
    pub status: String,
    /// When a run last ended.
    pub last_execution: Option<DateTime<Utc>>,
    /// When a run last succeeded.
    pub last_success: Option<DateTime<Utc>>,
    /// When a run last failed.
    pub last_failure: Option<DateTime<Utc>>,
    /// When a manual run last ended.
    pub last_manual_execution: Option<DateTime<Utc>>,
    /// The last error's code.
    pub last_error_code: Option<String>,
    /// The last error's message.
    pub last_error_message: Option<String>,
    /// Set after an error that needs the person: automatic runs are skipped
    /// until a manual run succeeds or the credentials change.
    pub blocked_code: Option<String>,
    /// Paused by the person ([`Queue::set_paused`]): no automatic run is
    /// queued, nor a skip recorded, until resumed. Manual runs still work.
    pub paused: bool,
}

impl TriggerState {
    fn from_row(row: &SqliteRow) -> Result<Self> {
        let get = |col: &str| -> Result<String> {
            row.try_get::<String, _>(col)
                .map_err(SchedulerError::sql("reading a trigger"))
        };
        let text = |col: &str| row.try_get::<Option<String>, _>(col).ok().flatten();
        Ok(Self {
            account_id: get("account_id")?,
            konnector: get("konnector")?,
            cron: text("cron"),
            next_run_at: parse_ts(&get("next_run_at")?).unwrap_or_default(),
            status: get("status")?,
            last_execution: opt_ts(row, "last_execution"),
            last_success: opt_ts(row, "last_success"),
            last_failure: opt_ts(row, "last_failure"),
            last_manual_execution: opt_ts(row, "last_manual_execution"),
            last_error_code: text("last_error_code"),
            last_error_message: text("last_error_message"),
            blocked_code: text("blocked_code"),
            paused: row.try_get::<i64, _>("paused").unwrap_or(0) != 0,
        })
    }
}

/// How a job ended, as the worker reports it.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The run committed; its report.
    Done(serde_json::Value),
    /// The run failed.
    Failed {
        /// The Cozy code.
        code: String,
        /// The message, secrets masked.
        message: String,
        /// What the scheduler does next.
        next: crate::retry::AfterFailure,
    },
}

/// Which jobs to list.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only this account's.
    pub account_id: Option<String>,
    /// Only errored ones.
    pub failed: bool,
    /// Only jobs in these states.
    pub states: Vec<JobState>,
    /// At most this many, newest first.
    pub limit: u32,
}

/// What [`Queue::recover`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Jobs whose run had committed before their worker died: now done.
    pub completed: Vec<i64>,
    /// Jobs queued again.
    pub requeued: Vec<i64>,
}

/// The queue, over the store's pool.
#[derive(Clone)]
pub struct Queue {
    pool: SqlitePool,
    clock: Arc<dyn Clock>,
}

macro_rules! job_columns {
    () => {
        "id, account_id, konnector, trigger, manual, attempt, state, run_id, queued_at, not_before, started_at, finished_at, lease_owner, lease_expires_at, recoveries, error_code, error_message, report, twofa_kind, twofa_hint"
    };
}

impl Queue {
    /// Opens the queue in the store's database, creating its tables.
    pub async fn open(pool: SqlitePool, clock: Arc<dyn Clock>) -> Result<Self> {
        let mut tx = pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(SchedulerError::sql_on(&pool, "opening the queue"))?;
        for stmt in SCHEMA {
            sqlx::query(*stmt)
                .execute(&mut *tx)
                .await
                .map_err(SchedulerError::sql_on(&pool, "creating the queue's tables"))?;
        }
        migrate(&mut tx).await.map_err(SchedulerError::sql_on(
            &pool,
            "migrating the queue's tables",
        ))?;
        tx.commit()
            .await
            .map_err(SchedulerError::sql_on(&pool, "creating the queue's tables"))?;
        Ok(Self { pool, clock })
    }

    /// The clock the queue reads.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    // ---- triggers ----------------------------------------------------

    /// Every trigger, by account id.
    pub async fn triggers(&self) -> Result<Vec<TriggerState>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            trigger_columns!(),
            " FROM sched_triggers ORDER BY account_id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "listing triggers"))?;
        rows.iter().map(TriggerState::from_row).collect()
    }

    /// One account's trigger.
    pub async fn trigger(&self, account_id: &str) -> Result<Option<TriggerState>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            trigger_columns!(),
            " FROM sched_triggers WHERE account_id = ?"
        ))
        .bind(account_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "reading a trigger"))?;
        row.as_ref().map(TriggerState::from_row).transpose()
    }

    /// Accounts of the store (its `accounts` table, in the same file) that
    /// have no trigger yet, as `(account, konnector)`: one indexed query, so
    /// a daemon with 100,000 accounts does not list them all every sync.
    pub async fn accounts_without_trigger(&self) -> Result<Vec<(String, String)>> {
        sqlx::query_as(
            "SELECT a.id, a.konnector FROM accounts a
             WHERE NOT EXISTS (SELECT 1 FROM sched_triggers t WHERE t.account_id = a.id)",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "finding new accounts"))
    }

    /// Creates triggers (`(account, konnector, first run)`); existing ones
    /// keep their state.
    pub async fn add_triggers(&self, rows: &[(String, String, DateTime<Utc>)]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let now = ts(self.now());
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "adding triggers"))?;
        for (account, konnector, first) in rows {
            sqlx::query(
                "INSERT INTO sched_triggers (account_id, konnector, next_run_at, updated_at)
                 VALUES (?, ?, ?, ?) ON CONFLICT (account_id) DO NOTHING",
            )
            .bind(account)
            .bind(konnector)
            .bind(ts(*first))
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "adding a trigger"))?;
        }
        tx.commit()
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "adding triggers"))
    }

    /// Deletes the triggers, and queued jobs, of accounts that are no longer
    /// in the store. Returns how many triggers went.
    pub async fn drop_orphan_triggers(&self) -> Result<u64> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "removing triggers"))?;
        sqlx::query(
            "DELETE FROM sched_jobs WHERE state = 'queued'
             AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = sched_jobs.account_id)",
        )
        .execute(&mut *tx)
        .await
        .map_err(SchedulerError::sql_on(
            &self.pool,
            "removing queued jobs of removed accounts",
        ))?;
        let gone = sqlx::query(
            "DELETE FROM sched_triggers
             WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = sched_triggers.account_id)",
        )
        .execute(&mut *tx)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "removing triggers"))?
        .rows_affected();
        tx.commit()
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "removing triggers"))?;
        Ok(gone)
    }

    /// Sets or clears an account's cron override, with its next run.
    pub async fn set_cron(
        &self,
        account_id: &str,
        cron: Option<&str>,
        next_run_at: DateTime<Utc>,
    ) -> Result<()> {
        let done = sqlx::query(
            "UPDATE sched_triggers SET cron = ?, next_run_at = ?, updated_at = ? WHERE account_id = ?",
        )
        .bind(cron)
        .bind(ts(next_run_at))
        .bind(ts(self.now()))
        .bind(account_id)
        .execute(&self.pool)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "setting a cron override"))?;
        if done.rows_affected() == 0 {
            return Err(SchedulerError::NotFound(format!(
                "account {account_id} has no trigger yet"
            )));
        }
        Ok(())
    }

    /// Pauses (or resumes) an account's automatic runs. A paused account
    /// gets no automatic job, not even a skipped record; manual runs still
    /// work. Fails with [`SchedulerError::NotFound`] when the account has
    /// no trigger yet.
    pub async fn set_paused(&self, account_id: &str, paused: bool) -> Result<()> {
        let done = sqlx::query(
            "UPDATE sched_triggers SET paused = ?, updated_at = ? WHERE account_id = ?",
        )
        .bind(i64::from(paused))
        .bind(ts(self.now()))
        .bind(account_id)
        .execute(&self.pool)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "pausing a trigger"))?;
        if done.rows_affected() == 0 {
            return Err(SchedulerError::NotFound(format!(
                "account {account_id} has no trigger yet"
            )));
        }
        Ok(())
    }

    /// Lifts an account's block after its credentials changed.
    pub async fn credentials_changed(&self, account_id: &str) -> Result<()> {
        sqlx::query(
            "UPDATE sched_triggers SET blocked_code = NULL, updated_at = ? WHERE account_id = ?",
        )
        .bind(ts(self.now()))
        .bind(account_id)
        .execute(&self.pool)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "lifting a block"))?;
        Ok(())
    }

    /// Enqueues one job per due trigger, or records why it is skipped, and
    /// moves each trigger to its next run (`next` computes it, after now).
    /// A trigger missed for longer than `catch_up_after` (the daemon was
    /// down) runs **once**, marked `catch-up`. Returns the jobs queued.
    pub async fn enqueue_due(
        &self,
        next: &NextRun<'_>,
        catch_up_after: Duration,
    ) -> Result<Vec<i64>> {
        let now = self.now();
        let now_s = ts(now);
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "enqueuing due runs"))?;
        let due = sqlx::query(concat!(
            "SELECT ",
            trigger_columns!(),
            " FROM sched_triggers WHERE next_run_at <= ? ORDER BY next_run_at LIMIT 5000"
        ))
        .bind(&now_s)
        .fetch_all(&mut *tx)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "finding due triggers"))?;
        let mut queued = Vec::new();
        for row in &due {
            let t = TriggerState::from_row(row)?;
            let kind = if now - t.next_run_at > catch_up_after {
                TriggerKind::CatchUp
            } else if t.cron.is_some() {
                TriggerKind::Cron
            } else {
                TriggerKind::Slot
            };
            let skip = if t.paused {
                // Paused by the person: no job and no skip record, only the
                // trigger moves on (resumed, it runs at its next time, not
                // at once for the nights it was paused).
                None
            } else if let Some(code) = &t.blocked_code {
                Some((
                    "SKIPPED.NEEDS_USER".to_owned(),
                    // The next step is the blocking code's
                    // (`ErrorCode::next_step`), worded by the front end.
                    format!(
                        "automatic run skipped: the last run failed with {code}; fix the account or run it by hand"
                    ),
                ))
            } else {
                let active: Option<(i64, String)> = sqlx::query_as(
                    "SELECT id, state FROM sched_jobs WHERE account_id = ?
                     AND state IN ('queued', 'running', 'awaiting_user') LIMIT 1",
                )
                .bind(&t.account_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(SchedulerError::sql_on(&self.pool, "checking active jobs"))?;
                active.map(|(id, state)| {
                    (
                        "SKIPPED.ALREADY_ACTIVE".to_owned(),
                        format!("automatic run skipped: job #{id} of this account is {state}"),
                    )
                })
            };
            let run_id = format!("job-{}", crate::new_run_suffix());
            match skip {
                _ if t.paused => {
                    tracing::debug!(account = %t.account_id, "paused: no automatic run");
                }
                Some((code, message)) => {
                    tracing::info!(account = %t.account_id, %code, "automatic run skipped");
                    sqlx::query(
                        "INSERT INTO sched_jobs (account_id, konnector, trigger, manual, attempt, state, run_id,
                            queued_at, not_before, finished_at, error_code, error_message)
                         VALUES (?, ?, ?, 0, 1, 'skipped', ?, ?, ?, ?, ?, ?)",
                    )
                    .bind(&t.account_id)
                    .bind(&t.konnector)
                    .bind(kind.as_str())
                    .bind(&run_id)
                    .bind(&now_s)
                    .bind(&now_s)
                    .bind(&now_s)
                    .bind(&code)
                    .bind(&message)
                    .execute(&mut *tx)
                    .await
                    .map_err(SchedulerError::sql_on(&self.pool, "recording a skip"))?;
                }
                None => {
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO sched_jobs (account_id, konnector, trigger, manual, attempt, state, run_id,
                            queued_at, not_before)
                         VALUES (?, ?, ?, 0, 1, 'queued', ?, ?, ?) RETURNING id",
                    )
                    .bind(&t.account_id)
                    .bind(&t.konnector)
                    .bind(kind.as_str())
                    .bind(&run_id)
                    .bind(&now_s)
                    .bind(&now_s)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(SchedulerError::sql_on(&self.pool, "queuing a job"))?;
                    queued.push(id);
                }
            }
            // Computed from now, not from the missed time: one catch-up
            // run, not one per missed night.
            let next_at = next(&t, now).unwrap_or(now + Duration::days(1));
            sqlx::query(
                "UPDATE sched_triggers SET next_run_at = ?, updated_at = ? WHERE account_id = ?",
            )
            .bind(ts(next_at))
            .bind(&now_s)
            .bind(&t.account_id)
            .execute(&mut *tx)
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "moving a trigger"))?;
        }
        tx.commit()
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "enqueuing due runs"))?;
        Ok(queued)
    }

    // ---- jobs --------------------------------------------------------

    /// Queues a manual run of an account (or turns its queued automatic
    /// run into a manual one). Returns the job id.
    pub async fn enqueue_manual(&self, account_id: &str, konnector: &str) -> Result<i64> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "queuing a manual run"))?;
        let id = self
            .enqueue_manual_in(&mut tx, account_id, konnector)
            .await?;
        tx.commit()
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "queuing a manual run"))?;
        Ok(id)
    }

    /// The account's queued job made manual and due now, or a new manual
    /// job, inside the caller's transaction.
    async fn enqueue_manual_in(
        &self,
        tx: &mut sqlx::SqliteConnection,
        account_id: &str,
        konnector: &str,
    ) -> Result<i64> {
        let now_s = ts(self.now());
        let queued: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM sched_jobs WHERE account_id = ? AND state = 'queued'",
        )
        .bind(account_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "queuing a manual run"))?;
        let id = match queued {
            Some(id) => {
                sqlx::query(
                    "UPDATE sched_jobs SET manual = 1, trigger = 'manual', not_before = ? WHERE id = ?",
                )
                .bind(&now_s)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(SchedulerError::sql_on(&self.pool, "queuing a manual run"))?;
                id
            }
            None => sqlx::query_scalar(
                "INSERT INTO sched_jobs (account_id, konnector, trigger, manual, attempt, state, run_id,
                    queued_at, not_before)
                 VALUES (?, ?, 'manual', 1, 1, 'queued', ?, ?, ?) RETURNING id",
            )
            .bind(account_id)
            .bind(konnector)
            .bind(format!("job-{}", crate::new_run_suffix()))
            .bind(&now_s)
            .bind(&now_s)
            .fetch_one(&mut *tx)
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "queuing a manual run"))?,
        };
        Ok(id)
    }

    /// Starts a manual run right away for `owner` (the `gleaner run`
    /// process): the account's queued job if it has one, else a new job.
    /// Fails with [`SchedulerError::Busy`] while another run holds the
    /// account, **and then changes nothing**: the check, the queuing and
    /// the claim are one `BEGIN IMMEDIATE` transaction, so a refused run
    /// never leaves a job behind for a daemon to run later.
    pub async fn start_manual(
        &self,
        account_id: &str,
        konnector: &str,
        owner: &str,
        lease: std::time::Duration,
    ) -> Result<Job> {
        self.recover().await?;
        let sql = SchedulerError::sql_on(&self.pool, "starting a manual run");
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(&sql)?;
        let active: Option<(i64, String)> = sqlx::query_as(
            "SELECT id, state FROM sched_jobs WHERE account_id = ? AND state IN ('running', 'awaiting_user') LIMIT 1",
        )
        .bind(account_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(&sql)?;
        if let Some((job, state)) = active {
            // Dropping the transaction rolls it back: nothing was written.
            return Err(SchedulerError::Busy {
                account: account_id.to_owned(),
                job,
                state,
            });
        }
        let id = self
            .enqueue_manual_in(&mut tx, account_id, konnector)
            .await?;
        let now = self.now();
        let row = sqlx::query(concat!(
            "UPDATE sched_jobs SET state = 'running', started_at = ?, lease_owner = ?, lease_expires_at = ?
             WHERE id = ? AND state = 'queued' RETURNING ",
            job_columns!()
        ))
        .bind(ts(now))
        .bind(owner)
        .bind(ts(now + to_chrono(lease)))
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .map_err(&sql)?;
        let job = Job::from_row(&row)?;
        tx.commit().await.map_err(&sql)?;
        Ok(job)
    }

    /// Claims the oldest runnable queued job for `owner`: due, its account
    /// not held by another run, and its konnector under its limit
    /// (`limit_for`). See [`Queue::claim_batch`].
    pub async fn claim(
        &self,
        owner: &str,
        lease: std::time::Duration,
        limit_for: &(dyn Fn(&str) -> usize + Send + Sync),
    ) -> Result<Option<Job>> {
        Ok(self.claim_batch(owner, lease, limit_for, 1).await?.pop())
    }

    /// Claims up to `max` runnable queued jobs for `owner`, oldest first
    /// (manual ones before automatic ones), in one `BEGIN IMMEDIATE`
    /// transaction, so two daemons never take the same job nor exceed a
    /// per-konnector limit together, and a daemon with many free slots fills
    /// them in one write instead of one write per job.
    pub async fn claim_batch(
        &self,
        owner: &str,
        lease: std::time::Duration,
        limit_for: &(dyn Fn(&str) -> usize + Send + Sync),
        max: usize,
    ) -> Result<Vec<Job>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let now = self.now();
        let now_s = ts(now);
        let lease_s = ts(now + to_chrono(lease));
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "claiming jobs"))?;
        let active: Vec<(String, i64)> = sqlx::query_as(
            "SELECT konnector, COUNT(*) FROM sched_jobs WHERE state IN ('running', 'awaiting_user') GROUP BY konnector",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "claiming jobs"))?;
        let mut active: HashMap<String, usize> = active
            .into_iter()
            .map(|(k, n)| (k, usize::try_from(n).unwrap_or(usize::MAX)))
            .collect();
        // One queued job per account (a unique index), so candidates are
        // distinct accounts.
        let candidates: Vec<(i64, String)> = sqlx::query_as(
            "SELECT q.id, q.konnector FROM sched_jobs q
             WHERE q.state = 'queued' AND q.not_before <= ?
               AND NOT EXISTS (SELECT 1 FROM sched_jobs r WHERE r.account_id = q.account_id
                               AND r.state IN ('running', 'awaiting_user'))
             ORDER BY q.manual DESC, q.not_before, q.id LIMIT ?",
        )
        .bind(&now_s)
        .bind(i64::try_from(max.saturating_mul(4).max(200)).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "claiming jobs"))?;
        let mut jobs = Vec::new();
        for (id, konnector) in candidates {
            if jobs.len() >= max {
                break;
            }
            let running = active.entry(konnector.clone()).or_insert(0);
            if *running >= limit_for(&konnector) {
                continue;
            }
            *running += 1;
            let row = sqlx::query(concat!(
                "UPDATE sched_jobs SET state = 'running', started_at = ?, lease_owner = ?, lease_expires_at = ?
                 WHERE id = ? RETURNING ",
                job_columns!()
            ))
            .bind(&now_s)
            .bind(owner)
            .bind(&lease_s)
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "claiming jobs"))?;
            jobs.push(Job::from_row(&row)?);
        }
        tx.commit()
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "claiming jobs"))?;
        Ok(jobs)
    }

    /// Renews a job's lease. `false` when the job is no longer this
    /// owner's (its lease ran out and another worker took it back): the
    /// worker must stop the run.
    pub async fn heartbeat(
        &self,
        id: i64,
        owner: &str,
        lease: std::time::Duration,
    ) -> Result<bool> {
        let now = self.now();
        let done = sqlx::query(
            "UPDATE sched_jobs SET lease_expires_at = ? WHERE id = ? AND lease_owner = ?
             AND state IN ('running', 'awaiting_user')",
        )
        .bind(ts(now + to_chrono(lease)))
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "renewing a lease"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Records how a job ended, updates its trigger's state, and queues the
    /// retry when there is one, in one transaction. Returns the retry's job
    /// id. Does nothing (and returns `Ok(None)`) if the job is no longer
    /// this owner's.
    pub async fn finish(&self, job: &Job, owner: &str, outcome: &Outcome) -> Result<Option<i64>> {
        let now = self.now();
        let now_s = ts(now);
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "finishing a job"))?;
        let (state, code, message, report) = match outcome {
            Outcome::Done(report) => ("done", None, None, Some(report.to_string())),
            Outcome::Failed { code, message, .. } => {
                ("errored", Some(code.as_str()), Some(message.as_str()), None)
            }
        };
        let updated = sqlx::query(
            "UPDATE sched_jobs SET state = ?, finished_at = ?, error_code = ?, error_message = ?,
                report = ?, lease_owner = NULL, lease_expires_at = NULL, twofa_kind = NULL,
                twofa_hint = NULL, twofa_deadline = NULL
             WHERE id = ? AND lease_owner = ? AND state IN ('running', 'awaiting_user')",
        )
        .bind(state)
        .bind(&now_s)
        .bind(code)
        .bind(message)
        .bind(report)
        .bind(job.id)
        .bind(owner)
        .execute(&mut *tx)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "finishing a job"))?;
        if updated.rows_affected() == 0 {
            tracing::warn!(
                job = job.id,
                "job no longer held by this worker; outcome dropped"
            );
            return Ok(None);
        }
        sqlx::query("DELETE FROM sched_twofa_answers WHERE job_id = ?")
            .bind(job.id)
            .execute(&mut *tx)
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "finishing a job"))?;
        let manual_col = if job.manual {
            Some(now_s.clone())
        } else {
            None
        };
        let mut retry_id = None;
        match outcome {
            Outcome::Done(_) => {
                sqlx::query(
                    "UPDATE sched_triggers SET status = 'done', last_execution = ?, last_success = ?,
                        last_manual_execution = COALESCE(?, last_manual_execution),
                        last_error_code = NULL, last_error_message = NULL, blocked_code = NULL, updated_at = ?
                     WHERE account_id = ?",
                )
                .bind(&now_s)
                .bind(&now_s)
                .bind(&manual_col)
                .bind(&now_s)
                .bind(&job.account_id)
                .execute(&mut *tx)
                .await
                .map_err(SchedulerError::sql_on(&self.pool, "updating a trigger"))?;
            }
            Outcome::Failed {
                code,
                message,
                next,
            } => {
                let blocked = matches!(next, crate::retry::AfterFailure::BlockAccount)
                    .then_some(code.as_str());
                sqlx::query(
                    "UPDATE sched_triggers SET status = 'errored', last_execution = ?, last_failure = ?,
                        last_manual_execution = COALESCE(?, last_manual_execution),
                        last_error_code = ?, last_error_message = ?,
                        blocked_code = COALESCE(?, blocked_code), updated_at = ?
                     WHERE account_id = ?",
                )
                .bind(&now_s)
                .bind(&now_s)
                .bind(&manual_col)
                .bind(code)
                .bind(message)
                .bind(blocked)
                .bind(&now_s)
                .bind(&job.account_id)
                .execute(&mut *tx)
                .await
                .map_err(SchedulerError::sql_on(&self.pool, "updating a trigger"))?;
                if let crate::retry::AfterFailure::Retry(delay) = next {
                    let id: Option<i64> = sqlx::query_scalar(
                        "INSERT OR IGNORE INTO sched_jobs (account_id, konnector, trigger, manual, attempt, state,
                            run_id, queued_at, not_before)
                         VALUES (?, ?, 'retry', ?, ?, 'queued', ?, ?, ?) RETURNING id",
                    )
                    .bind(&job.account_id)
                    .bind(&job.konnector)
                    .bind(i64::from(job.manual))
                    .bind(i64::from(job.attempt + 1))
                    .bind(format!("job-{}", crate::new_run_suffix()))
                    .bind(&now_s)
                    .bind(ts(now + to_chrono(*delay)))
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(SchedulerError::sql_on(&self.pool, "queuing a retry"))?;
                    retry_id = id;
                }
            }
        }
        tx.commit()
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "finishing a job"))?;
        Ok(retry_id)
    }

    /// Puts jobs of `owner` that are still running back in the queue (a
    /// graceful shutdown whose grace period ran out).
    pub async fn requeue_owned(&self, owner: &str) -> Result<Vec<i64>> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "UPDATE sched_jobs SET state = 'queued', started_at = NULL, lease_owner = NULL,
                lease_expires_at = NULL, twofa_kind = NULL, twofa_hint = NULL, twofa_deadline = NULL
             WHERE lease_owner = ? AND state IN ('running', 'awaiting_user') RETURNING id",
        )
        .bind(owner)
        .fetch_all(&self.pool)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "requeuing jobs"))?;
        Ok(ids)
    }

    /// Takes back the jobs of dead workers (lease run out): done if their
    /// run committed, queued again otherwise.
    pub async fn recover(&self) -> Result<Recovered> {
        let now_s = ts(self.now());
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "recovering jobs"))?;
        let active: Vec<ActiveLease> = sqlx::query_as(
            "SELECT id, account_id, run_id, lease_owner, lease_expires_at FROM sched_jobs
             WHERE state IN ('running', 'awaiting_user')",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "recovering jobs"))?;
        let stale = active
            .into_iter()
            .filter_map(|(id, account, run_id, owner, expires)| {
                let expired = expires.is_none_or(|e| e < now_s);
                let dead = owner.as_deref().is_some_and(crate::owner::is_dead);
                (expired || dead).then_some((id, account, run_id))
            });
        let mut out = Recovered::default();
        for (id, account, run_id) in stale {
            let committed: Option<String> = sqlx::query_scalar(
                "SELECT last_run_id FROM konnector_state WHERE account_id = ? AND last_run_id = ?",
            )
            .bind(&account)
            .bind(&run_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "recovering jobs"))?;
            if committed.is_some() {
                sqlx::query(
                    "UPDATE sched_jobs SET state = 'done', finished_at = ?, lease_owner = NULL,
                        lease_expires_at = NULL,
                        report = '{\"note\":\"committed before its worker stopped; counts not recorded\"}'
                     WHERE id = ?",
                )
                .bind(&now_s)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(SchedulerError::sql_on(&self.pool, "recovering jobs"))?;
                sqlx::query(
                    "UPDATE sched_triggers SET status = 'done', last_execution = ?, last_success = ?,
                        last_error_code = NULL, last_error_message = NULL, blocked_code = NULL, updated_at = ?
                     WHERE account_id = ?",
                )
                .bind(&now_s)
                .bind(&now_s)
                .bind(&now_s)
                .bind(&account)
                .execute(&mut *tx)
                .await
                .map_err(SchedulerError::sql_on(&self.pool, "recovering jobs"))?;
                out.completed.push(id);
            } else {
                // A queued job of the same account (queued meanwhile) makes
                // this one redundant: it ends as errored, recorded.
                let requeued = sqlx::query(
                    "UPDATE OR IGNORE sched_jobs SET state = 'queued', started_at = NULL, lease_owner = NULL,
                        lease_expires_at = NULL, recoveries = recoveries + 1, twofa_kind = NULL,
                        twofa_hint = NULL, twofa_deadline = NULL
                     WHERE id = ?",
                )
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(SchedulerError::sql_on(&self.pool, "recovering jobs"))?;
                if requeued.rows_affected() == 1 {
                    out.requeued.push(id);
                } else {
                    sqlx::query(
                        "UPDATE sched_jobs SET state = 'errored', finished_at = ?, lease_owner = NULL,
                            lease_expires_at = NULL, error_code = 'UNKNOWN_ERROR',
                            error_message = 'its worker stopped; another queued run of this account replaces it'
                         WHERE id = ?",
                    )
                    .bind(&now_s)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(SchedulerError::sql_on(&self.pool, "recovering jobs"))?;
                }
            }
        }
        tx.commit()
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "recovering jobs"))?;
        if !out.completed.is_empty() || !out.requeued.is_empty() {
            tracing::warn!(completed = ?out.completed, requeued = ?out.requeued, "took back jobs of a stopped worker");
        }
        Ok(out)
    }

    /// Deletes finished jobs older than `retention`. Returns how many.
    pub async fn prune(&self, retention: Duration) -> Result<u64> {
        let cutoff = ts(self.now() - retention);
        let done = sqlx::query(
            "DELETE FROM sched_jobs WHERE state IN ('done', 'errored', 'skipped') AND finished_at < ?",
        )
        .bind(cutoff)
        .execute(&self.pool)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "pruning history"))?;
        Ok(done.rows_affected())
    }

    /// One job.
    pub async fn job(&self, id: i64) -> Result<Option<Job>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM sched_jobs WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "reading a job"))?;
        row.as_ref().map(Job::from_row).transpose()
    }

    /// Jobs, newest first.
    pub async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let mut q = sqlx::QueryBuilder::new(concat!(
            "SELECT ",
            job_columns!(),
            " FROM sched_jobs WHERE 1 = 1"
        ));
        if let Some(a) = &filter.account_id {
            q.push(" AND account_id = ").push_bind(a.clone());
        }
        if filter.failed {
            q.push(" AND state = 'errored'");
        }
        if !filter.states.is_empty() {
            q.push(" AND state IN (");
            let mut sep = q.separated(", ");
            for s in &filter.states {
                sep.push_bind(s.as_str());
            }
            q.push(")");
        }
        q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(if filter.limit == 0 { 50 } else { filter.limit }));
        let rows = q
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(SchedulerError::sql_on(&self.pool, "listing jobs"))?;
        rows.iter().map(Job::from_row).collect()
    }

    /// How many jobs are in each state.
    pub async fn counts(&self) -> Result<HashMap<String, u64>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM sched_jobs GROUP BY state")
                .fetch_all(&self.pool)
                .await
                .map_err(SchedulerError::sql_on(&self.pool, "counting jobs"))?;
        Ok(rows
            .into_iter()
            .map(|(s, n)| (s, u64::try_from(n).unwrap_or(0)))
            .collect())
    }

    // ---- second factor -------------------------------------------------

    /// Marks a job as waiting for a code until `deadline`.
    pub async fn set_awaiting(
        &self,
        id: i64,
        kind: &str,
        hint: Option<&str>,
        deadline: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE sched_jobs SET state = 'awaiting_user', twofa_kind = ?, twofa_hint = ?, twofa_deadline = ?
             WHERE id = ? AND state IN ('running', 'awaiting_user')",
        )
        .bind(kind)
        .bind(hint)
        .bind(ts(deadline))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "marking a job awaiting_user"))?;
        Ok(())
    }

    /// Marks a job as running again after its question was answered or
    /// timed out.
    pub async fn set_running(&self, id: i64) -> Result<()> {
        sqlx::query(
            "UPDATE sched_jobs SET state = 'running', twofa_kind = NULL, twofa_hint = NULL, twofa_deadline = NULL
             WHERE id = ? AND state = 'awaiting_user'",
        )
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "marking a job running"))?;
        Ok(())
    }

    /// Records a sealed code for the account's job that waits for one.
    /// Returns that job's id.
    pub async fn give_answer(&self, account_id: &str, sealed: &[u8]) -> Result<i64> {
        let job: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM sched_jobs WHERE account_id = ? AND state = 'awaiting_user'",
        )
        .bind(account_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "giving a code"))?;
        let Some(id) = job else {
            return Err(SchedulerError::NoQuestion {
                account: account_id.to_owned(),
            });
        };
        sqlx::query(
            "INSERT INTO sched_twofa_answers (job_id, sealed, given_at) VALUES (?, ?, ?)
             ON CONFLICT (job_id) DO UPDATE SET sealed = excluded.sealed, given_at = excluded.given_at",
        )
        .bind(id)
        .bind(sealed)
        .bind(ts(self.now()))
        .execute(&self.pool)
        .await
        .map_err(SchedulerError::sql_on(&self.pool, "giving a code"))?;
        Ok(id)
    }

    /// Takes (and deletes) the sealed code given for a job, if any.
    pub async fn take_answer(&self, id: i64) -> Result<Option<Vec<u8>>> {
        let sealed: Option<Vec<u8>> =
            sqlx::query_scalar("DELETE FROM sched_twofa_answers WHERE job_id = ? RETURNING sealed")
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(SchedulerError::sql_on(&self.pool, "taking a code"))?;
        Ok(sealed)
    }
}

/// Computes a trigger's next run after a time (the scheduler's plan).
pub type NextRun<'a> =
    dyn Fn(&TriggerState, DateTime<Utc>) -> Option<DateTime<Utc>> + Send + Sync + 'a;

/// An active job's id, account, run id, lease owner and lease end.
type ActiveLease = (i64, String, String, Option<String>, Option<String>);

/// A std duration as a chrono one (saturating).
pub fn to_chrono(d: std::time::Duration) -> Duration {
    Duration::from_std(d).unwrap_or(Duration::MAX)
}
