//! [`SqliteStore`] as a [`Backend`]: the sealed records, the OAuth token
//! rows and their refresh lock (a `BEGIN IMMEDIATE` transaction: the
//! file's write lock, which every other process waits for), and the
//! front ends' reads, delegating to the inherent methods.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::backend::{Backend, BackendKind, SealedStore, SealedTokens, TokenLock, TokenStore};
use super::{Account, Projected, SqliteStore, StoredDoc};
use crate::error::KonnectorError;
use crate::vault::Vault;

#[async_trait]
impl SealedStore for SqliteStore {
    async fn vault_key_id(&self) -> Result<Option<String>, KonnectorError> {
        SqliteStore::vault_key_id(self).await
    }

    async fn set_vault_key_id(&self, key_id: &str) -> Result<(), KonnectorError> {
        SqliteStore::set_vault_key_id(self, key_id).await
    }

    async fn sealed_counts(&self) -> Result<BTreeMap<String, u64>, KonnectorError> {
        SqliteStore::sealed_counts(self).await
    }

    async fn reseal_all(
        &self,
        old: &Vault,
        new: &Vault,
    ) -> Result<BTreeMap<String, u64>, KonnectorError> {
        SqliteStore::reseal_all(self, old, new).await
    }
}

fn token_err(path: &std::path::Path, what: &str, e: &sqlx::Error) -> KonnectorError {
    super::sqlite_error::classify(what, path, e)
}

async fn read_tokens(
    conn: &mut sqlx::SqliteConnection,
    path: &std::path::Path,
    account_id: &str,
) -> Result<Option<SealedTokens>, KonnectorError> {
    let err = |e: sqlx::Error| token_err(path, "reading OAuth tokens", &e);
    let Some(row) = sqlx::query("SELECT sealed, expires_at FROM oauth_tokens WHERE account_id = ?")
        .bind(account_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(err)?
    else {
        return Ok(None);
    };
    let sealed: Vec<u8> = row.try_get("sealed").map_err(err)?;
    let expires: Option<String> = row.try_get("expires_at").map_err(err)?;
    let expires_at = expires
        .map(|s| {
            DateTime::parse_from_rfc3339(&s)
                .map(|d| d.with_timezone(&Utc))
                .map_err(|e| {
                    KonnectorError::store(format!(
                        "the OAuth expiry of account {account_id} is corrupt: {e}"
                    ))
                })
        })
        .transpose()?;
    Ok(Some(SealedTokens { sealed, expires_at }))
}

async fn write_tokens(
    conn: &mut sqlx::SqliteConnection,
    path: &std::path::Path,
    account_id: &str,
    tokens: &SealedTokens,
    updated_at: DateTime<Utc>,
) -> Result<(), KonnectorError> {
    sqlx::query(
        "INSERT INTO oauth_tokens (account_id, sealed, expires_at, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (account_id) DO UPDATE SET sealed = excluded.sealed,
           expires_at = excluded.expires_at, updated_at = excluded.updated_at",
    )
    .bind(account_id)
    .bind(&tokens.sealed)
    .bind(tokens.expires_at.map(|t| t.to_rfc3339()))
    .bind(updated_at.to_rfc3339())
    .execute(&mut *conn)
    .await
    .map_err(|e| token_err(path, "saving OAuth tokens", &e))?;
    Ok(())
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn load_tokens(&self, account_id: &str) -> Result<Option<SealedTokens>, KonnectorError> {
        let mut conn = self
            .pool()
            .acquire()
            .await
            .map_err(|e| token_err(self.path(), "reading OAuth tokens", &e))?;
        read_tokens(&mut conn, self.path(), account_id).await
    }

    async fn save_tokens(
        &self,
        account_id: &str,
        tokens: &SealedTokens,
        updated_at: DateTime<Utc>,
    ) -> Result<(), KonnectorError> {
        let mut conn = self
            .pool()
            .acquire()
            .await
            .map_err(|e| token_err(self.path(), "saving OAuth tokens", &e))?;
        write_tokens(&mut conn, self.path(), account_id, tokens, updated_at).await
    }

    async fn delete_tokens(&self, account_id: &str) -> Result<(), KonnectorError> {
        sqlx::query("DELETE FROM oauth_tokens WHERE account_id = ?")
            .bind(account_id)
            .execute(self.pool())
            .await
            .map_err(|e| token_err(self.path(), "removing OAuth tokens", &e))?;
        Ok(())
    }

    async fn lock_tokens(&self, account_id: &str) -> Result<Box<dyn TokenLock>, KonnectorError> {
        // IMMEDIATE: the write lock first, so a second process waits here
        // (up to the busy timeout) and reads the row only once we are done.
        let tx = self
            .pool()
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| token_err(self.path(), "locking OAuth tokens", &e))?;
        Ok(Box::new(SqliteTokenLock {
            tx,
            path: self.path().to_owned(),
            account_id: account_id.to_owned(),
        }))
    }
}

/// The refresh lock on SQLite: an `IMMEDIATE` transaction.
struct SqliteTokenLock {
    tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    path: std::path::PathBuf,
    account_id: String,
}

#[async_trait]
impl TokenLock for SqliteTokenLock {
    async fn current(&mut self) -> Result<Option<SealedTokens>, KonnectorError> {
        read_tokens(&mut self.tx, &self.path, &self.account_id).await
    }

    async fn write(
        &mut self,
        tokens: &SealedTokens,
        updated_at: DateTime<Utc>,
    ) -> Result<(), KonnectorError> {
        write_tokens(
            &mut self.tx,
            &self.path,
            &self.account_id,
            tokens,
            updated_at,
        )
        .await
    }

    async fn commit(self: Box<Self>) -> Result<(), KonnectorError> {
        let path = self.path;
        self.tx
            .commit()
            .await
            .map_err(|e| token_err(&path, "saving refreshed OAuth tokens", &e))
    }
}

#[async_trait]
impl Backend for SqliteStore {
    fn describe(&self) -> String {
        self.path().display().to_string()
    }

    fn kind(&self) -> BackendKind {
        BackendKind::Sqlite
    }

    async fn check(&self) -> Result<(), KonnectorError> {
        self.quick_check().await
    }

    async fn project(
        &self,
        doctype: &str,
        account_id: Option<&str>,
        fields: &[&str],
    ) -> Result<Vec<Projected>, KonnectorError> {
        SqliteStore::project(self, doctype, account_id, fields).await
    }

    async fn docs_by_id(
        &self,
        doctype: &str,
        ids: &[String],
    ) -> Result<BTreeMap<String, StoredDoc>, KonnectorError> {
        SqliteStore::docs_by_id(self, doctype, ids).await
    }

    async fn link_count(&self) -> Result<u64, KonnectorError> {
        SqliteStore::link_count(self).await
    }

    async fn linked_operations(&self, limit: u32) -> Result<Vec<StoredDoc>, KonnectorError> {
        SqliteStore::linked_operations(self, limit).await
    }

    async fn assign_missing_folders(
        &self,
        legacy: &(dyn for<'a> Fn(&'a Account) -> (String, String) + Send + Sync),
    ) -> Result<Vec<(String, String)>, KonnectorError> {
        SqliteStore::assign_missing_folders(self, legacy).await
    }

    async fn close(&self) {
        self.pool().close().await;
    }
}
