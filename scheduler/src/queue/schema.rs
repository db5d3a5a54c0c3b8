//! The SQLite tables of the queue (the sqlx migrations of
//! `scheduler/migrations/sqlite/`, recorded in `gleaner_queue_migrations`
//! as on PostgreSQL), the upgrade of a queue from before migrations, and
//! reading their rows into the records of [`super::records`].

use chrono::{DateTime, Utc};
use gleaner_framework::store::sqlite::{applied_migrations, table_exists};
use gleaner_framework::tenant::TenantId;
use sqlx::Row;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::SqliteRow;

use super::{Job, JobCode, JobState, TriggerKind, TriggerState};
use crate::error::{Result, SchedulerError};

/// The table where sqlx's migrator records the queue's migrations, on
/// SQLite as on PostgreSQL (the store's are in `gleaner_store_migrations`,
/// in the same file or database).
pub(super) const MIGRATIONS_TABLE: &str = "gleaner_queue_migrations";

/// The SQLite queue's migrations (`scheduler/migrations/sqlite/`),
/// recorded in [`MIGRATIONS_TABLE`].
///
/// `0001_queue.sql` is the queue's whole schema from before migrations,
/// every statement `IF NOT EXISTS`: on a queue an older Gleaner created
/// (its tables present, no migrations table), once [`migrate_legacy`] has
/// added the columns it may lack, 0001 changes nothing and sqlx records it
/// as applied, in its own table layout and checksum, so that the migrator
/// validates it like any other. No baseline row is written by hand.
fn migrator() -> Migrator {
    let mut m = sqlx::migrate!("migrations/sqlite");
    m.dangerous_set_table_name(MIGRATIONS_TABLE);
    m
}

/// Applies the SQLite queue's migrations inside `tx`, the opening
/// `BEGIN IMMEDIATE` transaction on a connection of `pool` (the store's
/// file, named in messages).
///
/// sqlx's migrator takes no lock on SQLite, so it runs here, under
/// SQLite's write lock: two processes opening one new file apply 0001
/// once, the second finding it recorded. A queue from before migrations
/// first gets [`migrate_legacy`]. A migration recorded that this build
/// does not know (a newer Gleaner wrote it), or one whose text changed,
/// is refused with [`SchedulerError::Schema`] before anything is written
/// (and the caller rolls back).
pub(super) async fn migrate_sqlite(
    tx: &mut sqlx::SqliteConnection,
    pool: &sqlx::SqlitePool,
) -> Result<()> {
    let file = pool.connect_options().get_filename().display().to_string();
    let file = file.as_str();
    let m = migrator();
    let known = m.iter().map(|x| x.version).max().unwrap_or(0);
    let applied = applied_migrations(&mut *tx, MIGRATIONS_TABLE)
        .await
        .map_err(SchedulerError::sql_on(
            pool,
            "reading the queue's migrations",
        ))?;
    if let Some(&v) = applied.iter().rev().find(|v| !m.version_exists(**v)) {
        return Err(newer(file, v, known));
    }
    if applied.is_empty() {
        migrate_legacy(&mut *tx)
            .await
            .map_err(SchedulerError::sql_on(pool, "migrating the queue's tables"))?;
    }
    // `run_direct` is `run` on the connection we hold (sqlx's way around
    // `Acquire`'s higher-ranked bound, whose future is not `Send`).
    match m.run_direct(None, &mut *tx, false).await {
        Ok(()) => Ok(()),
        Err(MigrateError::VersionMissing(v)) => Err(newer(file, v, known)),
        Err(MigrateError::VersionMismatch(v)) => Err(SchedulerError::Schema(format!(
            "the job queue in the store {file} records queue migration {v} with a different text than this build's; nothing was changed: run the Gleaner version that created it, or upgrade"
        ))),
        Err(MigrateError::Dirty(v)) => Err(SchedulerError::Schema(format!(
            "the job queue in the store {file} has queue migration {v} half applied (a migration failed); nothing was changed: restore a backup"
        ))),
        Err(MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _)) => Err(
            SchedulerError::sql_on(pool, "applying the queue's migrations")(e),
        ),
        Err(e) => Err(SchedulerError::Store(
            gleaner_framework::KonnectorError::store(format!(
                "job queue: applying the queue's migrations in {file} failed: {e}"
            )),
        )),
    }
}

/// The error for a queue holding migration `version`, unknown to this
/// build (which knows up to `known`).
fn newer(file: &str, version: i64, known: i64) -> SchedulerError {
    SchedulerError::Schema(format!(
        "the job queue in the store {file} holds queue migration {version}, newer than this Gleaner (it knows up to {known}): upgrade Gleaner; nothing was written to the store"
    ))
}

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

/// The upgrade of a queue an older Gleaner created, before migrations:
/// adds the columns its tables may lack (SQLite's `ALTER TABLE ... ADD
/// COLUMN`, idempotent), so that migration 0001, which only creates what
/// is missing, finds them as it defines them. Does nothing where there is
/// no queue yet.
async fn migrate_legacy(tx: &mut sqlx::SqliteConnection) -> std::result::Result<(), sqlx::Error> {
    if !table_exists(&mut *tx, "sched_triggers").await? {
        return Ok(());
    }
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
