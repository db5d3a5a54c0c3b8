//! Moving an installation's store from SQLite to PostgreSQL
//! (`gleaner migrate`).
//!
//! Rows are copied **as they are**: ids, revisions, content hashes, times
//! and sealed blobs unchanged (a sealed record's associated data is its
//! account id, which does not change, so the same vault key opens it on
//! the new engine). Each table is read in key order and written in batches
//! of [`BATCH`] rows with one `INSERT … SELECT FROM UNNEST(…)` per batch,
//! inside the caller's transaction: a failure anywhere leaves the target
//! as it was. [`copy_store`] refuses a target that already holds accounts
//! or documents, then checks each table's count on both sides.
//!
//! SQLite knows one tenant, the default one: the rows land in PostgreSQL's
//! default tenant (`tenant_id = 'default'`, written explicitly; the copy
//! runs un-scoped, on the tables' owner's connection, which row-level
//! security does not confine).

use std::collections::BTreeMap;

use futures_util::TryStreamExt as _;
use sqlx::postgres::PgConnection;
use sqlx::{Row as _, SqlitePool};

use crate::error::KonnectorError;
use crate::tenant::TenantId;

/// Rows per `INSERT` on the target.
pub const BATCH: usize = 500;

/// How a column is read from SQLite and cast on PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Text, as is.
    Text,
    /// An integer (`bigint`).
    Int,
    /// Bytes (`bytea`): sealed records.
    Blob,
    /// JSON text into `jsonb`.
    Json,
    /// An RFC 3339 time into `timestamptz`.
    Time,
}

/// One table to copy.
struct Table {
    name: &'static str,
    /// Whether its PostgreSQL rows carry a `tenant_id` (the default
    /// tenant's here).
    tenant: bool,
    /// The key the rows are read in (and counted by).
    order_by: &'static str,
    columns: &'static [(&'static str, Kind)],
}

/// The store's tables, in an order that respects what refers to what.
const TABLES: &[Table] = &[
    Table {
        name: "accounts",
        tenant: true,
        order_by: "id",
        columns: &[
            ("id", Kind::Text),
            ("konnector", Kind::Text),
            ("label", Kind::Text),
            ("fields", Kind::Json),
            ("sealed_secrets", Kind::Blob),
            ("endpoint", Kind::Text),
            ("created_at", Kind::Time),
            ("folder", Kind::Text),
        ],
    },
    Table {
        name: "documents",
        tenant: true,
        order_by: "doctype, id",
        columns: &[
            ("doctype", Kind::Text),
            ("id", Kind::Text),
            ("account_id", Kind::Text),
            ("dedup_key", Kind::Text),
            ("rev", Kind::Int),
            ("content_hash", Kind::Text),
            ("data", Kind::Json),
            ("created_at", Kind::Time),
            ("updated_at", Kind::Time),
            ("imported_from", Kind::Text),
            ("source_identifier", Kind::Text),
            ("created_version", Kind::Text),
            ("updated_version", Kind::Text),
        ],
    },
    Table {
        name: "konnector_state",
        tenant: true,
        order_by: "account_id",
        columns: &[
            ("account_id", Kind::Text),
            ("state", Kind::Json),
            ("last_sync", Kind::Time),
            ("last_run_id", Kind::Text),
        ],
    },
    Table {
        name: "oauth_tokens",
        tenant: true,
        order_by: "account_id",
        columns: &[
            ("account_id", Kind::Text),
            ("sealed", Kind::Blob),
            ("expires_at", Kind::Time),
            ("updated_at", Kind::Time),
        ],
    },
    Table {
        name: "sessions",
        tenant: true,
        order_by: "account_id",
        columns: &[
            ("account_id", Kind::Text),
            ("sealed", Kind::Blob),
            ("expires_at", Kind::Time),
            ("updated_at", Kind::Time),
        ],
    },
    Table {
        name: "vault_meta",
        tenant: false,
        order_by: "name",
        columns: &[("name", Kind::Text), ("value", Kind::Text)],
    },
];

/// One column's values of a batch.
enum Values {
    Text(Vec<Option<String>>),
    Int(Vec<Option<i64>>),
    Blob(Vec<Option<Vec<u8>>>),
}

/// What [`copy_store`] copied: rows per table (documents also per doctype,
/// as `documents/<doctype>`), identical on both sides.
pub type TransferCounts = BTreeMap<String, u64>;

fn source_err(table: &str) -> impl Fn(sqlx::Error) -> KonnectorError + '_ {
    move |e| {
        KonnectorError::store(format!(
            "migrate: reading {table} from the SQLite store: {e}"
        ))
    }
}

fn target_err(table: &str) -> impl Fn(sqlx::Error) -> KonnectorError + '_ {
    move |e| KonnectorError::store(format!("migrate: writing {table} to PostgreSQL: {e}"))
}

/// Copies every store table of `from` into the PostgreSQL connection `to`
/// (a transaction the caller commits), then compares the counts per table
/// and per doctype. Refuses a target that already holds accounts or
/// documents: a migration goes into an empty database.
pub async fn copy_store(
    from: &SqlitePool,
    to: &mut PgConnection,
) -> Result<TransferCounts, KonnectorError> {
    for table in ["accounts", "documents"] {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&mut *to)
                .await
                .map_err(target_err(table))?;
        if n > 0 {
            return Err(KonnectorError::store(format!(
                "migrate: the PostgreSQL database already holds {n} row(s) in {table}; migrate only into an empty database (nothing was copied)"
            )));
        }
    }
    for table in TABLES {
        copy_table(from, to, table).await?;
    }
    let source = counts_sqlite(from).await?;
    let target = counts_postgres(to).await?;
    if source != target {
        let diff: Vec<String> = source
            .keys()
            .chain(target.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter(|k| source.get(*k) != target.get(*k))
            .map(|k| {
                format!(
                    "{k}: {} in SQLite, {} in PostgreSQL",
                    source.get(k).copied().unwrap_or(0),
                    target.get(k).copied().unwrap_or(0)
                )
            })
            .collect();
        return Err(KonnectorError::store(format!(
            "migrate: the counts differ after the copy ({}); nothing was committed",
            diff.join("; ")
        )));
    }
    Ok(source)
}

async fn copy_table(
    from: &SqlitePool,
    to: &mut PgConnection,
    table: &Table,
) -> Result<(), KonnectorError> {
    let names: Vec<&str> = table.columns.iter().map(|(n, _)| *n).collect();
    // Table and column names come from the const list above, never from input.
    let select = format!(
        "SELECT {} FROM {} ORDER BY {}",
        names.join(", "),
        table.name,
        table.order_by
    );
    let mut rows = sqlx::query(sqlx::AssertSqlSafe(select)).fetch(from);
    let mut batch: Vec<Values> = new_batch(table);
    let mut len = 0usize;
    while let Some(row) = rows.try_next().await.map_err(source_err(table.name))? {
        for (i, (name, kind)) in table.columns.iter().enumerate() {
            match (&mut batch[i], kind) {
                (Values::Int(v), _) => v.push(
                    row.try_get::<Option<i64>, _>(*name)
                        .map_err(source_err(table.name))?,
                ),
                (Values::Blob(v), _) => v.push(
                    row.try_get::<Option<Vec<u8>>, _>(*name)
                        .map_err(source_err(table.name))?,
                ),
                (Values::Text(v), Kind::Time) => v.push(
                    row.try_get::<Option<String>, _>(*name)
                        .map_err(source_err(table.name))?
                        .map(|t| to_microseconds(&t)),
                ),
                (Values::Text(v), _) => v.push(
                    row.try_get::<Option<String>, _>(*name)
                        .map_err(source_err(table.name))?,
                ),
            }
        }
        len += 1;
        if len == BATCH {
            insert(to, table, std::mem::replace(&mut batch, new_batch(table))).await?;
            len = 0;
        }
    }
    if len > 0 {
        insert(to, table, batch).await?;
    }
    Ok(())
}

/// A stored time cut to the microsecond, as PostgreSQL keeps it and as
/// sqlx writes a time there (it truncates; PostgreSQL's own parsing of a
/// longer fraction would round, so a migrated time could differ by one
/// microsecond from the same time written by a run). Text that is not a
/// time is left for PostgreSQL to refuse, naming the table.
pub fn to_microseconds(text: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(text) {
        Ok(t) => t
            .with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        Err(_) => text.to_owned(),
    }
}

fn new_batch(table: &Table) -> Vec<Values> {
    table
        .columns
        .iter()
        .map(|(_, kind)| match kind {
            Kind::Int => Values::Int(Vec::with_capacity(BATCH)),
            Kind::Blob => Values::Blob(Vec::with_capacity(BATCH)),
            Kind::Text | Kind::Json | Kind::Time => Values::Text(Vec::with_capacity(BATCH)),
        })
        .collect()
}

async fn insert(
    to: &mut PgConnection,
    table: &Table,
    batch: Vec<Values>,
) -> Result<(), KonnectorError> {
    let names: Vec<&str> = table.columns.iter().map(|(n, _)| *n).collect();
    let arrays: Vec<String> = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| {
            let ty = match kind {
                Kind::Int => "bigint[]",
                Kind::Blob => "bytea[]",
                Kind::Text | Kind::Json | Kind::Time => "text[]",
            };
            format!("${}::{ty}", i + 1)
        })
        .collect();
    let casts: Vec<String> = table
        .columns
        .iter()
        .map(|(name, kind)| match kind {
            Kind::Json => format!("u.{name}::jsonb"),
            Kind::Time => format!("u.{name}::timestamptz"),
            _ => format!("u.{name}"),
        })
        .collect();
    let (tenant_col, tenant_val) = if table.tenant {
        // The constant is this module's, never input.
        (", tenant_id", format!(", '{}'", TenantId::DEFAULT))
    } else {
        ("", String::new())
    };
    let sql = format!(
        "INSERT INTO {table} ({cols}{tenant_col}) SELECT {casts}{tenant_val} FROM UNNEST({arrays}) AS u({cols})",
        table = table.name,
        cols = names.join(", "),
        casts = casts.join(", "),
        arrays = arrays.join(", "),
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for values in batch {
        q = match values {
            Values::Text(v) => q.bind(v),
            Values::Int(v) => q.bind(v),
            Values::Blob(v) => q.bind(v),
        };
    }
    q.execute(&mut *to).await.map_err(target_err(table.name))?;
    Ok(())
}

const DOCTYPE_COUNTS: &str = "SELECT doctype, COUNT(*) AS n FROM documents GROUP BY doctype";

async fn counts_sqlite(from: &SqlitePool) -> Result<TransferCounts, KonnectorError> {
    let mut out = TransferCounts::new();
    for table in TABLES {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {}",
            table.name
        )))
        .fetch_one(from)
        .await
        .map_err(source_err(table.name))?;
        out.insert(table.name.to_owned(), u64::try_from(n).unwrap_or(0));
    }
    for row in sqlx::query(DOCTYPE_COUNTS)
        .fetch_all(from)
        .await
        .map_err(source_err("documents"))?
    {
        let doctype: String = row.try_get("doctype").map_err(source_err("documents"))?;
        let n: i64 = row.try_get("n").map_err(source_err("documents"))?;
        out.insert(
            format!("documents/{doctype}"),
            u64::try_from(n).unwrap_or(0),
        );
    }
    Ok(out)
}

/// The default tenant's counts on PostgreSQL (where the copy went).
async fn counts_postgres(to: &mut PgConnection) -> Result<TransferCounts, KonnectorError> {
    let mut out = TransferCounts::new();
    for table in TABLES {
        let filter = if table.tenant {
            " WHERE tenant_id = $1"
        } else {
            ""
        };
        let mut q = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {}{filter}",
            table.name
        )));
        if table.tenant {
            q = q.bind(TenantId::DEFAULT);
        }
        let n: i64 = q
            .fetch_one(&mut *to)
            .await
            .map_err(target_err(table.name))?;
        out.insert(table.name.to_owned(), u64::try_from(n).unwrap_or(0));
    }
    for row in sqlx::query(
        "SELECT doctype, COUNT(*) AS n FROM documents WHERE tenant_id = $1 GROUP BY doctype",
    )
    .bind(TenantId::DEFAULT)
    .fetch_all(&mut *to)
    .await
    .map_err(target_err("documents"))?
    {
        let doctype: String = row.try_get("doctype").map_err(target_err("documents"))?;
        let n: i64 = row.try_get("n").map_err(target_err("documents"))?;
        out.insert(
            format!("documents/{doctype}"),
            u64::try_from(n).unwrap_or(0),
        );
    }
    Ok(out)
}
