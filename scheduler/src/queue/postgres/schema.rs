//! The PostgreSQL queue's tables (the migrations of
//! `scheduler/migrations/postgres/`, applied with their own table
//! `gleaner_queue_migrations`) and reading their rows into the records of
//! [`super::super::records`].

use chrono::{DateTime, Utc};
use gleaner_framework::tenant::TenantId;
use sqlx::PgPool;
use sqlx::Row;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::PgRow;

use super::super::{Job, JobCode, JobState, TriggerKind, TriggerState};
use crate::error::{Result, SchedulerError};

use super::super::schema::MIGRATIONS_TABLE;

/// The queue's migrations, embedded in the binary.
fn migrator() -> Migrator {
    let mut m = sqlx::migrate!("migrations/postgres");
    m.dangerous_set_table_name(MIGRATIONS_TABLE);
    m
}

/// Applies the queue's migrations to the database of `pool`. A migration
/// recorded there that this build does not know (a newer Gleaner wrote
/// it), or one whose text changed, is refused with
/// [`SchedulerError::Schema`], before anything is applied.
pub(super) async fn migrate(pool: &PgPool) -> Result<()> {
    let m = migrator();
    let known = m.iter().map(|x| x.version).max().unwrap_or(0);
    let server = crate::error::pg_server(pool);
    match m.run(pool).await {
        Ok(()) => Ok(()),
        Err(MigrateError::VersionMissing(v)) => Err(SchedulerError::Schema(format!(
            "the job queue in the PostgreSQL database {server} was written by a newer Gleaner (queue migration {v}; this build knows up to {known}); nothing was changed: upgrade Gleaner on this machine"
        ))),
        Err(MigrateError::VersionMismatch(v)) => Err(SchedulerError::Schema(format!(
            "the job queue in the PostgreSQL database {server} records queue migration {v} with a different text than this build's; nothing was changed: run the Gleaner version that created it, or upgrade"
        ))),
        Err(MigrateError::Dirty(v)) => Err(SchedulerError::Schema(format!(
            "the job queue in the PostgreSQL database {server} has queue migration {v} half applied (a migration failed); repair it before starting Gleaner"
        ))),
        Err(MigrateError::Execute(e)) => Err(crate::error::pg_error(
            "applying the queue's migrations",
            pool,
            &e,
        )),
        Err(e) => Err(SchedulerError::Store(
            gleaner_framework::KonnectorError::store(format!(
                "job queue: applying the queue's migrations on {server} failed: {e}"
            )),
        )),
    }
}

/// A stored code, typed (unknown text stays [`JobCode::Other`]).
fn code(text: Option<String>) -> Option<JobCode> {
    text.as_deref().map(JobCode::parse)
}

/// A nullable column, `None` when it is NULL or does not decode.
fn opt<'r, T>(row: &'r PgRow, col: &str) -> Option<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get::<Option<T>, _>(col).ok().flatten()
}

/// The `tenant_id` of a row: a name that is not a tenant's (written by
/// hand) is a schema error, not a panic.
fn tenant(row: &PgRow) -> Result<TenantId> {
    let name: String = row
        .try_get("tenant_id")
        .map_err(crate::error::SchedulerError::sql("reading a row's tenant"))?;
    TenantId::parse(&name).map_err(|e| {
        SchedulerError::Schema(format!(
            "the job queue holds a row of an invalid tenant: {e}"
        ))
    })
}

impl Job {
    /// A job from a PostgreSQL row of `pg_job_columns!()`.
    pub(super) fn from_pg(row: &PgRow) -> Result<Self> {
        let err = |e| crate::error::SchedulerError::sql("reading a job")(e);
        let get = |col: &str| -> Result<String> { row.try_get::<String, _>(col).map_err(err) };
        let int = |col: &str| -> Result<i32> { row.try_get::<i32, _>(col).map_err(err) };
        let time = |col: &str| -> Result<DateTime<Utc>> {
            row.try_get::<DateTime<Utc>, _>(col).map_err(err)
        };
        Ok(Self {
            id: row.try_get::<i64, _>("id").map_err(err)?,
            tenant: tenant(row)?,
            account_id: get("account_id")?,
            konnector: get("konnector")?,
            trigger: TriggerKind::parse(&get("trigger")?),
            manual: row.try_get::<bool, _>("manual").map_err(err)?,
            attempt: u32::try_from(int("attempt")?).unwrap_or(1),
            state: JobState::parse(&get("state")?),
            run_id: get("run_id")?,
            queued_at: time("queued_at")?,
            not_before: time("not_before")?,
            started_at: opt(row, "started_at"),
            finished_at: opt(row, "finished_at"),
            lease_owner: opt(row, "lease_owner"),
            recoveries: u32::try_from(int("recoveries")?).unwrap_or(0),
            error_code: code(opt(row, "error_code")),
            error_message: opt(row, "error_message"),
            report: opt(row, "report"),
            twofa_kind: opt(row, "twofa_kind"),
            twofa_hint: opt(row, "twofa_hint"),
        })
    }
}

impl TriggerState {
    /// A trigger from a PostgreSQL row of `pg_trigger_columns!()`.
    pub(super) fn from_pg(row: &PgRow) -> Result<Self> {
        let err = |e| crate::error::SchedulerError::sql("reading a trigger")(e);
        let get = |col: &str| -> Result<String> { row.try_get::<String, _>(col).map_err(err) };
        Ok(Self {
            tenant: tenant(row)?,
            account_id: get("account_id")?,
            konnector: get("konnector")?,
            cron: opt(row, "cron"),
            next_run_at: row
                .try_get::<DateTime<Utc>, _>("next_run_at")
                .map_err(err)?,
            status: get("status")?,
            last_execution: opt(row, "last_execution"),
            last_success: opt(row, "last_success"),
            last_failure: opt(row, "last_failure"),
            last_manual_execution: opt(row, "last_manual_execution"),
            last_error_code: code(opt(row, "last_error_code")),
            last_error_message: opt(row, "last_error_message"),
            blocked_code: code(opt(row, "blocked_code")),
            paused: row.try_get::<bool, _>("paused").unwrap_or(false),
        })
    }
}
