//! Tenant administration on PostgreSQL: creating, listing and removing
//! tenants (the operator's commands).
//!
//! These run **un-scoped**, on the connecting user's own connections (the
//! tables' owner, whom row-level security does not confine): they see or
//! remove every tenant's rows, which no tenant's transaction may. The
//! `tenants` table lists the tenants; the default one is created by the
//! migration and can be neither created again nor removed.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};

use super::PgStore;
use crate::error::{ErrorCode, KonnectorError};
use crate::tenant::TenantId;

/// The tables holding a tenant's rows (each with a `tenant_id` column), in
/// the order a removal deletes them.
pub const TENANT_TABLES: &[&str] = &[
    "documents",
    "konnector_state",
    "oauth_tokens",
    "sessions",
    "accounts",
];

/// A tenant as [`PgStore::list_tenants`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantInfo {
    /// The tenant's name.
    pub id: TenantId,
    /// When it was created (for the default tenant: when the database was
    /// migrated to tenants).
    pub created_at: DateTime<Utc>,
    /// How many accounts it has.
    pub accounts: u64,
    /// How many documents it has.
    pub documents: u64,
}

/// What [`remove_tenant_rows`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemovedTenant {
    /// The tenant's accounts deleted.
    pub accounts: u64,
    /// The tenant's documents deleted.
    pub documents: u64,
}

/// Why [`remove_tenant_rows`] did not remove a tenant.
#[derive(Debug, thiserror::Error)]
pub enum RemoveTenantError {
    /// The default tenant is never removed (the caller words the refusal).
    #[error("the default tenant cannot be removed")]
    DefaultTenant,
    /// The database failed.
    #[error("removing the tenant's rows: {0}")]
    Database(#[from] sqlx::Error),
}

/// Deletes every row of tenant `id` from the store's tables
/// ([`TENANT_TABLES`]) and its `tenants` row, on `conn`: an un-scoped
/// connection or transaction of the tables' owner, so that the caller can
/// remove the tenant's queue rows in the same transaction and commit once.
/// Returns how many accounts and documents went; a tenant that does not
/// exist removes nothing (zero counts). Refuses the default tenant.
pub async fn remove_tenant_rows(
    conn: &mut PgConnection,
    id: &TenantId,
) -> Result<RemovedTenant, RemoveTenantError> {
    if id.is_default() {
        return Err(RemoveTenantError::DefaultTenant);
    }
    let mut removed = RemovedTenant::default();
    for table in TENANT_TABLES {
        // Names from the const list, never from input.
        let n = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE tenant_id = $1"
        )))
        .bind(id.as_str())
        .execute(&mut *conn)
        .await?
        .rows_affected();
        match *table {
            "accounts" => removed.accounts = n,
            "documents" => removed.documents = n,
            _ => {}
        }
    }
    sqlx::query("DELETE FROM tenants WHERE id = $1")
        .bind(id.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(removed)
}

impl PgStore {
    /// Creates the tenant `id`, created at `now`. Refuses one that exists
    /// already (the default tenant always does), naming it.
    pub async fn create_tenant(
        &self,
        id: &TenantId,
        now: DateTime<Utc>,
    ) -> Result<(), KonnectorError> {
        let n = sqlx::query(
            "INSERT INTO tenants (id, created_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id.as_str())
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(self.err("creating the tenant"))?
        .rows_affected();
        if n == 0 {
            return Err(KonnectorError::new(
                ErrorCode::InvalidData,
                format!("the tenant `{id}` exists already"),
            ));
        }
        Ok(())
    }

    /// Every tenant with its numbers of accounts and documents, ordered by
    /// name.
    pub async fn list_tenants(&self) -> Result<Vec<TenantInfo>, KonnectorError> {
        let err = self.err("listing tenants");
        let rows = sqlx::query(
            "SELECT t.id, t.created_at,
                (SELECT COUNT(*) FROM accounts AS a WHERE a.tenant_id = t.id) AS accounts,
                (SELECT COUNT(*) FROM documents AS d WHERE d.tenant_id = t.id) AS documents
             FROM tenants AS t ORDER BY t.id",
        )
        .fetch_all(self.pool())
        .await
        .map_err(&err)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let name: String = row.try_get("id").map_err(&err)?;
            let id = TenantId::parse(&name).map_err(|e| {
                KonnectorError::store(format!(
                    "the tenants table of {} is corrupt: {e}",
                    self.place()
                ))
            })?;
            let accounts: i64 = row.try_get("accounts").map_err(&err)?;
            let documents: i64 = row.try_get("documents").map_err(&err)?;
            out.push(TenantInfo {
                id,
                created_at: row.try_get("created_at").map_err(&err)?,
                accounts: u64::try_from(accounts).unwrap_or(0),
                documents: u64::try_from(documents).unwrap_or(0),
            });
        }
        Ok(out)
    }

    /// Whether the tenant `id` exists.
    pub async fn tenant_exists(&self, id: &TenantId) -> Result<bool, KonnectorError> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1)")
            .bind(id.as_str())
            .fetch_one(self.pool())
            .await
            .map_err(self.err("looking up the tenant"))
    }
}
