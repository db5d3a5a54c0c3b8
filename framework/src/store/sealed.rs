//! Sealed columns in the SQLite store: login sessions, the vault's key id,
//! and re-sealing everything under a new key in one transaction.
//!
//! [`SEALED_COLUMNS`] is the one list of every column that holds a vault
//! record, the scheduler's included (they share the file). Key rotation
//! ([`SqliteStore::reseal_all`]) and `gleaner vault status`
//! ([`SqliteStore::sealed_counts`]) walk it; a table that is not there
//! (yet) is skipped. **Whoever adds a sealed column adds one line to it**:
//! a test compares it with every `BLOB` column of the real schema, and the
//! rotation tests fill and check every table it names.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{SealedSession, SessionStore, SqliteStore};
use crate::error::KonnectorError;
use crate::vault::Vault;

/// A column whose values are vault records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedColumn {
    /// The table.
    pub table: &'static str,
    /// The column that identifies a row (and starts the AAD).
    pub id_column: &'static str,
    /// The column holding the sealed blob.
    pub blob_column: &'static str,
    /// Appended to the row id to form the record's associated data.
    pub aad_suffix: &'static str,
    /// What a key rotation does with the column's records.
    pub on_rotation: OnRotation,
}

/// What a key rotation does with a sealed column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRotation {
    /// Opens each record with the old key and seals it with the new one.
    Reseal,
    /// Deletes the records: short-lived ones whose associated data is not
    /// derived from the row's id (a 2FA code given and not yet taken: the
    /// waiting run asks again).
    Discard,
}

impl SealedColumn {
    /// The associated data of the row `id`.
    pub fn aad(&self, id: &str) -> Vec<u8> {
        format!("{id}{}", self.aad_suffix).into_bytes()
    }
}

/// The AAD suffix of a login session record (after the account id).
pub const SESSION_AAD_SUFFIX: &str = "/session";

/// Every sealed column of the store.
pub const SEALED_COLUMNS: &[SealedColumn] = &[
    SealedColumn {
        table: "accounts",
        id_column: "id",
        blob_column: "sealed_secrets",
        aad_suffix: "",
        on_rotation: OnRotation::Reseal,
    },
    SealedColumn {
        table: "sessions",
        id_column: "account_id",
        blob_column: "sealed",
        aad_suffix: SESSION_AAD_SUFFIX,
        on_rotation: OnRotation::Reseal,
    },
    SealedColumn {
        table: "oauth_tokens",
        id_column: "account_id",
        blob_column: "sealed",
        aad_suffix: OAUTH_AAD_SUFFIX,
        on_rotation: OnRotation::Reseal,
    },
    // The scheduler's table (same file): codes given with `gleaner 2fa`,
    // bound to the account (not the row's job id), taken within minutes.
    SealedColumn {
        table: "sched_twofa_answers",
        id_column: "job_id",
        blob_column: "sealed",
        aad_suffix: "",
        on_rotation: OnRotation::Discard,
    },
];

/// The AAD suffix of an OAuth token record (after the account id).
pub const OAUTH_AAD_SUFFIX: &str = "/oauth";

/// The `vault_meta` row naming the key the records are sealed with.
const KEY_ID: &str = "key_id";

impl SqliteStore {
    fn sealed_err(&self, what: &str) -> impl Fn(sqlx::Error) -> KonnectorError + '_ {
        let what = what.to_owned();
        move |e| super::sqlite_error::classify(&what, self.path(), &e)
    }

    async fn table_exists<'e, E>(executor: E, table: &str) -> Result<bool, sqlx::Error>
    where
        E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
    {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
        )
        .bind(table)
        .fetch_one(executor)
        .await?;
        Ok(n > 0)
    }

    /// The id of the vault key the store's records are sealed with, if
    /// recorded.
    pub async fn vault_key_id(&self) -> Result<Option<String>, KonnectorError> {
        sqlx::query_scalar("SELECT value FROM vault_meta WHERE name = ?")
            .bind(KEY_ID)
            .fetch_optional(self.pool())
            .await
            .map_err(self.sealed_err("reading the vault key id"))
    }

    /// Records the id of the vault key the store's records are sealed with.
    pub async fn set_vault_key_id(&self, key_id: &str) -> Result<(), KonnectorError> {
        sqlx::query("INSERT INTO vault_meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value")
            .bind(KEY_ID)
            .bind(key_id)
            .execute(self.pool())
            .await
            .map_err(self.sealed_err("recording the vault key id"))?;
        Ok(())
    }

    /// How many sealed records each sealed table holds.
    pub async fn sealed_counts(&self) -> Result<BTreeMap<String, u64>, KonnectorError> {
        let err = self.sealed_err("counting sealed records");
        let mut out = BTreeMap::new();
        for col in SEALED_COLUMNS {
            if !Self::table_exists(self.pool(), col.table)
                .await
                .map_err(&err)?
            {
                continue;
            }
            let n: i64 = // Table and column names come from the const list, never from input.
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {}", col.table)))
                .fetch_one(self.pool())
                .await
                .map_err(&err)?;
            out.insert(col.table.to_owned(), u64::try_from(n).unwrap_or(0));
        }
        Ok(out)
    }

    /// Opens every sealed record with `old`, seals it again with `new` and
    /// records `new`'s key id, **in one transaction**: on any error (a
    /// record that does not open, a full disk) nothing changes.
    ///
    /// Returns how many records were re-sealed per table.
    pub async fn reseal_all(
        &self,
        old: &Vault,
        new: &Vault,
    ) -> Result<BTreeMap<String, u64>, KonnectorError> {
        let err = self.sealed_err("re-sealing the store");
        let mut tx = self
            .pool()
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(&err)?;
        let mut counts = BTreeMap::new();
        for col in SEALED_COLUMNS {
            if !Self::table_exists(&mut *tx, col.table)
                .await
                .map_err(&err)?
            {
                continue;
            }
            if col.on_rotation == OnRotation::Discard {
                // Names come from the const list, never from input.
                let dropped =
                    sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {}", col.table)))
                        .execute(&mut *tx)
                        .await
                        .map_err(&err)?
                        .rows_affected();
                counts.insert(format!("{} (dropped)", col.table), dropped);
                continue;
            }
            // Names come from the const list, never from input.
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {id} AS id, {blob} AS blob FROM {table}",
                id = col.id_column,
                blob = col.blob_column,
                table = col.table
            )))
            .fetch_all(&mut *tx)
            .await
            .map_err(&err)?;
            let update = format!(
                "UPDATE {table} SET {blob} = ? WHERE {id} = ?",
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
                    .execute(&mut *tx)
                    .await
                    .map_err(&err)?;
                n += 1;
            }
            counts.insert(col.table.to_owned(), n);
        }
        sqlx::query("INSERT INTO vault_meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value")
            .bind(KEY_ID)
            .bind(new.key_id())
            .execute(&mut *tx)
            .await
            .map_err(&err)?;
        tx.commit().await.map_err(&err)?;
        Ok(counts)
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn load_session(
        &self,
        account_id: &str,
    ) -> Result<Option<SealedSession>, KonnectorError> {
        let err = self.sealed_err("reading the login session");
        let Some(row) = sqlx::query("SELECT sealed, expires_at FROM sessions WHERE account_id = ?")
            .bind(account_id)
            .fetch_optional(self.pool())
            .await
            .map_err(&err)?
        else {
            return Ok(None);
        };
        let expires: String = row.try_get("expires_at").map_err(&err)?;
        let expires_at = DateTime::parse_from_rfc3339(&expires)
            .map(|d| d.with_timezone(&Utc))
            .map_err(|e| {
                KonnectorError::store(format!(
                    "the session of account {account_id} has a bad expiry `{expires}`: {e}"
                ))
            })?;
        Ok(Some(SealedSession {
            sealed: row.try_get("sealed").map_err(&err)?,
            expires_at,
        }))
    }

    async fn save_session(
        &self,
        account_id: &str,
        session: &SealedSession,
    ) -> Result<(), KonnectorError> {
        sqlx::query(
            "INSERT INTO sessions (account_id, sealed, expires_at, updated_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (account_id) DO UPDATE SET sealed = excluded.sealed, expires_at = excluded.expires_at, updated_at = excluded.updated_at",
        )
        .bind(account_id)
        .bind(&session.sealed)
        .bind(session.expires_at.to_rfc3339())
        .bind(Utc::now().to_rfc3339())
        .execute(self.pool())
        .await
        .map_err(self.sealed_err("saving the login session"))?;
        Ok(())
    }

    async fn delete_session(&self, account_id: &str) -> Result<(), KonnectorError> {
        sqlx::query("DELETE FROM sessions WHERE account_id = ?")
            .bind(account_id)
            .execute(self.pool())
            .await
            .map_err(self.sealed_err("deleting the login session"))?;
        Ok(())
    }
}
