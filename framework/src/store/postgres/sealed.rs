//! Vault records and OAuth tokens on PostgreSQL: [`SealedStore`] and
//! [`TokenStore`] for [`PgStore`].
//!
//! Re-sealing ([`SealedStore::reseal_all`]) is one transaction that first
//! locks every sealed table against writers (`LOCK TABLE … IN EXCLUSIVE
//! MODE`: reads go on), so that no record sealed with the old key slips in
//! or is overwritten with a stale copy meanwhile: SQLite's `IMMEDIATE`.
//! The refresh lock of an account's tokens ([`TokenStore::lock_tokens`]) is
//! a transaction holding an advisory lock keyed on the account: a second
//! process's refresh of that account waits for its commit, other accounts
//! do not.
//!
//! Tenants: OAuth tokens are the store's tenant's (its scoped
//! transaction, `tenant_id` named). The vault key id (`vault_meta`) is the
//! installation's, read and written un-scoped, and so are the counts the
//! vault checks before it accepts a key ([`SealedStore::sealed_counts`],
//! every tenant's). A store re-seals ([`SealedStore::reseal_all`]) its
//! tenant's records only, those its tenant's vault sealed: the default
//! tenant's vault is the installation's key, every other tenant's is its
//! data key (`vault::envelope`), which a rotation of the installation's key
//! re-wraps without touching that tenant's records.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{PgStore, lock_class, lock_key};
use crate::error::KonnectorError;
use crate::store::sealed::{OnRotation, SEALED_COLUMNS};
use crate::store::{SealedStore, SealedTokens, TokenLock, TokenStore};
use crate::vault::Vault;

/// The `vault_meta` row naming the key the records are sealed with.
const KEY_ID: &str = "key_id";

/// Whether `table` exists (in the connection's search path).
async fn table_exists(conn: &mut sqlx::PgConnection, table: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(table)
        .fetch_one(&mut *conn)
        .await
}

#[async_trait]
impl SealedStore for PgStore {
    async fn vault_key_id(&self) -> Result<Option<String>, KonnectorError> {
        sqlx::query_scalar("SELECT value FROM vault_meta WHERE name = $1")
            .bind(KEY_ID)
            .fetch_optional(self.pool())
            .await
            .map_err(self.err("reading the vault key id"))
    }

    async fn set_vault_key_id(&self, key_id: &str) -> Result<(), KonnectorError> {
        sqlx::query(
            "INSERT INTO vault_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(KEY_ID)
        .bind(key_id)
        .execute(self.pool())
        .await
        .map_err(self.err("recording the vault key id"))?;
        Ok(())
    }

    /// The installation's sealed records per table, every tenant's: the
    /// vault asks whether any record depends on the current key before it
    /// makes a new one or accepts another (a tenant's records depend on it
    /// through their data key). [`PgStore::tenant_sealed_counts`] counts
    /// one tenant's.
    async fn sealed_counts(&self) -> Result<BTreeMap<String, u64>, KonnectorError> {
        self.count_sealed(None).await
    }

    /// Re-seals the store's tenant's records (the installation's default
    /// tenant's, for a rotation of the installation's key) and records the
    /// new key id, in one transaction that locks every sealed table against
    /// writers. Other tenants' records are sealed with their data keys and
    /// are left as they are: the rotation re-wraps those keys
    /// (`vault::rotate_with_tenants`).
    async fn reseal_all(
        &self,
        old: &Vault,
        new: &Vault,
    ) -> Result<BTreeMap<String, u64>, KonnectorError> {
        let err = self.err("re-sealing the store");
        // Un-scoped (the tables are locked whole, vault_meta is the
        // installation's); every statement names the tenant.
        let mut tx = self.pool().begin().await.map_err(&err)?;
        let mut present = Vec::new();
        for col in SEALED_COLUMNS {
            if table_exists(&mut tx, col.table).await.map_err(&err)? {
                present.push(col);
            }
        }
        for col in &present {
            // Names come from the const list, never from input.
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "LOCK TABLE {} IN EXCLUSIVE MODE",
                col.table
            )))
            .execute(&mut *tx)
            .await
            .map_err(&err)?;
        }
        let mut counts = BTreeMap::new();
        for col in present {
            if col.on_rotation == OnRotation::Discard {
                let dropped = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {} WHERE tenant_id = $1",
                    col.table
                )))
                .bind(self.tid())
                .execute(&mut *tx)
                .await
                .map_err(&err)?
                .rows_affected();
                counts.insert(format!("{} (dropped)", col.table), dropped);
                continue;
            }
            // The id read as text whatever its type (the AAD is its text).
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {id}::text AS id, {blob} AS blob FROM {table} WHERE tenant_id = $1",
                id = col.id_column,
                blob = col.blob_column,
                table = col.table
            )))
            .bind(self.tid())
            .fetch_all(&mut *tx)
            .await
            .map_err(&err)?;
            let update = format!(
                "UPDATE {table} SET {blob} = $1 WHERE {id}::text = $2 AND tenant_id = $3",
                id = col.id_column,
                blob = col.blob_column,
                table = col.table
            );
            let mut n = 0u64;
            for row in rows {
                let id: String = row.try_get("id").map_err(&err)?;
                let blob: Vec<u8> = row.try_get("blob").map_err(&err)?;
                let aad = col.aad(&id);
                let what = format!("{}.{} of {id}", col.table, col.blob_column);
                let plain = old.open_bytes(&aad, &blob, &what)?;
                let sealed = new.seal_bytes(&aad, &plain)?;
                sqlx::query(sqlx::AssertSqlSafe(update.as_str()))
                    .bind(sealed)
                    .bind(&id)
                    .bind(self.tid())
                    .execute(&mut *tx)
                    .await
                    .map_err(&err)?;
                n += 1;
            }
            counts.insert(col.table.to_owned(), n);
        }
        sqlx::query(
            "INSERT INTO vault_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(KEY_ID)
        .bind(new.key_id())
        .execute(&mut *tx)
        .await
        .map_err(&err)?;
        tx.commit().await.map_err(&err)?;
        Ok(counts)
    }
}

impl PgStore {
    /// The store's tenant's sealed records per table: those its tenant's
    /// vault sealed (`gleaner vault status --tenant`).
    pub async fn tenant_sealed_counts(&self) -> Result<BTreeMap<String, u64>, KonnectorError> {
        self.count_sealed(Some(self.tid())).await
    }

    /// Sealed records per table, of `tenant` or of every tenant.
    async fn count_sealed(
        &self,
        tenant: Option<&str>,
    ) -> Result<BTreeMap<String, u64>, KonnectorError> {
        let err = self.err("counting sealed records");
        let mut conn = self.pool().acquire().await.map_err(&err)?;
        let mut out = BTreeMap::new();
        for col in SEALED_COLUMNS {
            if !table_exists(&mut conn, col.table).await.map_err(&err)? {
                continue;
            }
            // Table names come from the const list, never from input.
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM {} WHERE $1::text IS NULL OR tenant_id = $1",
                col.table
            )))
            .bind(tenant)
            .fetch_one(&mut *conn)
            .await
            .map_err(&err)?;
            out.insert(col.table.to_owned(), u64::try_from(n).unwrap_or(0));
        }
        Ok(out)
    }
}

/// The sealed OAuth tokens of `tenant`'s account.
async fn read_tokens(
    conn: &mut sqlx::PgConnection,
    tenant: &str,
    account_id: &str,
) -> Result<Option<SealedTokens>, sqlx::Error> {
    let Some(row) = sqlx::query(
        "SELECT sealed, expires_at FROM oauth_tokens WHERE tenant_id = $1 AND account_id = $2",
    )
    .bind(tenant)
    .bind(account_id)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    Ok(Some(SealedTokens {
        sealed: row.try_get("sealed")?,
        expires_at: row.try_get("expires_at")?,
    }))
}

/// Writes the sealed OAuth tokens of `tenant`'s account. Returns whether
/// a row was written (not when the account id is another tenant's).
async fn write_tokens(
    conn: &mut sqlx::PgConnection,
    tenant: &str,
    account_id: &str,
    tokens: &SealedTokens,
    updated_at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "INSERT INTO oauth_tokens (account_id, sealed, expires_at, updated_at, tenant_id) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (account_id) DO UPDATE SET sealed = excluded.sealed,
           expires_at = excluded.expires_at, updated_at = excluded.updated_at
         WHERE oauth_tokens.tenant_id = excluded.tenant_id",
    )
    .bind(account_id)
    .bind(&tokens.sealed)
    .bind(tokens.expires_at)
    .bind(updated_at)
    .bind(tenant)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(n > 0)
}

/// The error of tokens not written because the account id is another
/// tenant's.
fn foreign_tokens(account_id: &str) -> KonnectorError {
    KonnectorError::store(format!(
        "saving OAuth tokens: account {account_id} belongs to another tenant"
    ))
}

#[async_trait]
impl TokenStore for PgStore {
    async fn load_tokens(&self, account_id: &str) -> Result<Option<SealedTokens>, KonnectorError> {
        let err = self.err("reading OAuth tokens");
        let mut tx = self.scoped("reading OAuth tokens").await?;
        let tokens = read_tokens(&mut tx, self.tid(), account_id)
            .await
            .map_err(&err)?;
        tx.commit().await.map_err(&err)?;
        Ok(tokens)
    }

    async fn save_tokens(
        &self,
        account_id: &str,
        tokens: &SealedTokens,
        updated_at: DateTime<Utc>,
    ) -> Result<(), KonnectorError> {
        let err = self.err("saving OAuth tokens");
        let mut tx = self.scoped("saving OAuth tokens").await?;
        if !write_tokens(&mut tx, self.tid(), account_id, tokens, updated_at)
            .await
            .map_err(&err)?
        {
            return Err(foreign_tokens(account_id));
        }
        tx.commit().await.map_err(&err)
    }

    async fn delete_tokens(&self, account_id: &str) -> Result<(), KonnectorError> {
        let err = self.err("removing OAuth tokens");
        let mut tx = self.scoped("removing OAuth tokens").await?;
        sqlx::query("DELETE FROM oauth_tokens WHERE tenant_id = $1 AND account_id = $2")
            .bind(self.tid())
            .bind(account_id)
            .execute(&mut *tx)
            .await
            .map_err(&err)?;
        tx.commit().await.map_err(&err)
    }

    async fn lock_tokens(&self, account_id: &str) -> Result<Box<dyn TokenLock>, KonnectorError> {
        let err = self.err("locking OAuth tokens");
        // Scoped: the lock's reads and writes are the tenant's.
        let mut tx = self.scoped("locking OAuth tokens").await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(lock_class::TOKENS)
            .bind(lock_key(account_id))
            .execute(&mut *tx)
            .await
            .map_err(&err)?;
        Ok(Box::new(PgTokenLock {
            tx,
            store: self.clone(),
            account_id: account_id.to_owned(),
        }))
    }
}

/// The refresh lock on PostgreSQL: a transaction holding the account's
/// advisory token lock (released at its commit or rollback).
struct PgTokenLock {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    store: PgStore,
    account_id: String,
}

#[async_trait]
impl TokenLock for PgTokenLock {
    async fn current(&mut self) -> Result<Option<SealedTokens>, KonnectorError> {
        read_tokens(&mut self.tx, self.store.tid(), &self.account_id)
            .await
            .map_err(self.store.err("reading OAuth tokens"))
    }

    async fn write(
        &mut self,
        tokens: &SealedTokens,
        updated_at: DateTime<Utc>,
    ) -> Result<(), KonnectorError> {
        if write_tokens(
            &mut self.tx,
            self.store.tid(),
            &self.account_id,
            tokens,
            updated_at,
        )
        .await
        .map_err(self.store.err("saving OAuth tokens"))?
        {
            Ok(())
        } else {
            Err(foreign_tokens(&self.account_id))
        }
    }

    async fn commit(self: Box<Self>) -> Result<(), KonnectorError> {
        let store = self.store;
        self.tx
            .commit()
            .await
            .map_err(store.err("saving refreshed OAuth tokens"))
    }
}
