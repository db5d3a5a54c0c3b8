//! The SQLite tables of the queue, their migration, and reading their rows
//! into the records of [`super::records`].

use chrono::{DateTime, Utc};
use gleaner_framework::tenant::TenantId;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Job, JobCode, JobState, TriggerKind, TriggerState};
use crate::error::{Result, SchedulerError};

/// The statements that create the queue's tables and indexes (idempotent).
pub(super) const SCHEMA: &[&str] = &[
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
    "CREATE TABLE IF NOT EXISTS sched_workers (
        worker_id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        started_at TEXT NOT NULL,
        last_beat TEXT NOT NULL,
        in_flight INTEGER NOT NULL
    )",
];

/// The columns a [`TriggerState`] is read from (named, never `*`: a
/// statement prepared before a migration keeps its old column list).
macro_rules! trigger_columns {
    () => {
        "account_id, konnector, cron, next_run_at, status, last_execution, last_success, last_failure, last_manual_execution, last_error_code, last_error_message, blocked_code, paused"
    };
}

/// The columns a [`Job`] is read from (named, never `*`, as for triggers).
macro_rules! job_columns {
    () => {
        "id, account_id, konnector, trigger, manual, attempt, state, run_id, queued_at, not_before, started_at, finished_at, lease_owner, lease_expires_at, recoveries, error_code, error_message, report, twofa_kind, twofa_hint"
    };
}

/// The columns a [`TriggerState`] is read from on PostgreSQL: the SQLite
/// ones and the tenant.
macro_rules! pg_trigger_columns {
    () => {
        concat!(trigger_columns!(), ", tenant_id")
    };
}

/// The columns a [`Job`] is read from on PostgreSQL: the SQLite ones and
/// the tenant.
macro_rules! pg_job_columns {
    () => {
        concat!(job_columns!(), ", tenant_id")
    };
}

/// Adds the columns that tables created by older versions lack (SQLite's
/// `ALTER TABLE ... ADD COLUMN`, idempotent), inside the opening
/// transaction.
pub(super) async fn migrate(
    tx: &mut sqlx::SqliteConnection,
) -> std::result::Result<(), sqlx::Error> {
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

/// A stored timestamp ([`super::ts`]).
pub(super) fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A nullable timestamp column.
fn opt_ts(row: &SqliteRow, col: &str) -> Option<DateTime<Utc>> {
    row.try_get::<Option<String>, _>(col)
        .ok()
        .flatten()
        .and_then(|s| parse_ts(&s))
}

impl Job {
    /// A job from a row of `job_columns!()`.
    pub(super) fn from_row(row: &SqliteRow) -> Result<Self> {
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
            tenant: TenantId::default_tenant(),
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
            error_code: code(text("error_code")),
            error_message: text("error_message"),
            report: text("report").and_then(|r| serde_json::from_str(&r).ok()),
            twofa_kind: text("twofa_kind"),
            twofa_hint: text("twofa_hint"),
        })
    }
}

impl TriggerState {
    /// A trigger from a row of `trigger_columns!()`.
    pub(super) fn from_row(row: &SqliteRow) -> Result<Self> {
        let get = |col: &str| -> Result<String> {
            row.try_get::<String, _>(col)
                .map_err(SchedulerError::sql("reading a trigger"))
        };
        let text = |col: &str| row.try_get::<Option<String>, _>(col).ok().flatten();
        Ok(Self {
            tenant: TenantId::default_tenant(),
            account_id: get("account_id")?,
            konnector: get("konnector")?,
            cron: text("cron"),
            next_run_at: parse_ts(&get("next_run_at")?).unwrap_or_default(),
            status: get("status")?,
            last_execution: opt_ts(row, "last_execution"),
            last_success: opt_ts(row, "last_success"),
            last_failure: opt_ts(row, "last_failure"),
            last_manual_execution: opt_ts(row, "last_manual_execution"),
            last_error_code: code(text("last_error_code")),
            last_error_message: text("last_error_message"),
            blocked_code: code(text("blocked_code")),
            paused: row.try_get::<i64, _>("paused").unwrap_or(0) != 0,
        })
    }
}

/// A stored code, typed: text this build does not know stays visible as
/// [`JobCode::Other`] (a store written by another version still reads).
fn code(text: Option<String>) -> Option<JobCode> {
    text.as_deref().map(JobCode::parse)
}
