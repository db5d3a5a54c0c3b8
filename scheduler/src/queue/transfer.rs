//! Moving the triggers of a SQLite installation to PostgreSQL
//! (`gleaner migrate`), inside the caller's transaction.
//!
//! Each account's trigger carries what the person sees and set: the cron
//! override, the pause, the block after an error that needs them, the last
//! success and failure. Job history is not moved: a finished job is a
//! record of the old machine, and the triggers keep each account's last
//! results.
//!
//! The triggers land in the default tenant
//! ([`gleaner_framework::tenant::TenantId::DEFAULT`]), as the store's rows
//! do.

use futures_util::TryStreamExt as _;
use sqlx::postgres::PgConnection;
use sqlx::{Row as _, SqlitePool};

use crate::error::{Result, SchedulerError};

/// The trigger columns, in the order they are copied.
const TEXT_COLUMNS: &[&str] = &[
    "account_id",
    "konnector",
    "cron",
    "next_run_at",
    "status",
    "last_execution",
    "last_success",
    "last_failure",
    "last_manual_execution",
    "last_error_code",
    "last_error_message",
    "blocked_code",
    "updated_at",
];

/// Columns that hold times (text in SQLite, `timestamptz` in PostgreSQL).
const TIME_COLUMNS: &[&str] = &[
    "next_run_at",
    "last_execution",
    "last_success",
    "last_failure",
    "last_manual_execution",
    "updated_at",
];

/// Rows per `INSERT` on the target.
const BATCH: usize = 500;

fn err(what: &'static str) -> impl Fn(sqlx::Error) -> SchedulerError {
    move |e| {
        SchedulerError::Store(gleaner_framework::KonnectorError::store(format!(
            "migrate: {what}: {e}"
        )))
    }
}

/// Copies every trigger of the SQLite queue on `from` into `to` (the
/// caller's transaction), then checks that both sides hold as many.
/// Returns how many were copied.
pub async fn copy_triggers(from: &SqlitePool, to: &mut PgConnection) -> Result<u64> {
    let select = format!(
        "SELECT {}, paused FROM sched_triggers ORDER BY account_id",
        TEXT_COLUMNS.join(", ")
    );
    let mut rows = sqlx::query(sqlx::AssertSqlSafe(select)).fetch(from);
    let mut columns: Vec<Vec<Option<String>>> = vec![Vec::new(); TEXT_COLUMNS.len()];
    let mut paused: Vec<bool> = Vec::new();
    let mut copied = 0u64;
    while let Some(row) = rows
        .try_next()
        .await
        .map_err(err("reading the SQLite triggers"))?
    {
        for (i, name) in TEXT_COLUMNS.iter().enumerate() {
            let value = row
                .try_get::<Option<String>, _>(*name)
                .map_err(err("reading a SQLite trigger"))?;
            columns[i].push(if TIME_COLUMNS.contains(name) {
                value.map(|t| gleaner_framework::store::transfer::to_microseconds(&t))
            } else {
                value
            });
        }
        paused.push(
            row.try_get::<i64, _>("paused")
                .map_err(err("reading a SQLite trigger"))?
                != 0,
        );
        if paused.len() == BATCH {
            copied += insert(
                to,
                std::mem::take(&mut columns),
                std::mem::take(&mut paused),
            )
            .await?;
            columns = vec![Vec::new(); TEXT_COLUMNS.len()];
        }
    }
    if !paused.is_empty() {
        copied += insert(to, columns, paused).await?;
    }
    let source: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sched_triggers")
        .fetch_one(from)
        .await
        .map_err(err("counting the SQLite triggers"))?;
    let target: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sched_triggers")
        .fetch_one(&mut *to)
        .await
        .map_err(err("counting the PostgreSQL triggers"))?;
    if source != target {
        return Err(SchedulerError::Store(
            gleaner_framework::KonnectorError::store(format!(
                "migrate: {source} trigger(s) in SQLite but {target} in PostgreSQL after the copy; nothing was committed"
            )),
        ));
    }
    Ok(copied)
}

async fn insert(
    to: &mut PgConnection,
    columns: Vec<Vec<Option<String>>>,
    paused: Vec<bool>,
) -> Result<u64> {
    let n = paused.len() as u64;
    let arrays: Vec<String> = (1..=TEXT_COLUMNS.len())
        .map(|i| format!("${i}::text[]"))
        .chain(std::iter::once(format!(
            "${}::boolean[]",
            TEXT_COLUMNS.len() + 1
        )))
        .collect();
    let casts: Vec<String> = TEXT_COLUMNS
        .iter()
        .map(|c| {
            if TIME_COLUMNS.contains(c) {
                format!("u.{c}::timestamptz")
            } else {
                format!("u.{c}")
            }
        })
        .chain(std::iter::once("u.paused".to_owned()))
        .collect();
    let names = format!("{}, paused", TEXT_COLUMNS.join(", "));
    // A SQLite installation has one tenant, the default one: its triggers
    // land there (the column has no default: every insert names it).
    let sql = format!(
        "INSERT INTO sched_triggers ({names}, tenant_id) SELECT {}, '{}' FROM UNNEST({}) AS u({names})",
        casts.join(", "),
        gleaner_framework::tenant::TenantId::DEFAULT,
        arrays.join(", ")
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for c in columns {
        q = q.bind(c);
    }
    q.bind(paused)
        .execute(&mut *to)
        .await
        .map_err(err("writing the triggers to PostgreSQL"))?;
    Ok(n)
}
