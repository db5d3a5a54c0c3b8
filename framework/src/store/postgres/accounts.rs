//! Accounts and login sessions on PostgreSQL: [`AccountStore`] and
//! [`SessionStore`] for [`PgStore`], with SQLite's rules: labels and
//! files folders unique within the tenant (the same errors when a second
//! account claims one), removal in one transaction. Every statement runs
//! in the tenant's scoped transaction and names the tenant (see the
//! [parent](super)).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::PgStore;
use crate::error::{ErrorCode, KonnectorError};
use crate::store::{Account, AccountStore, SealedSession, SessionStore};

/// The columns an [`Account`] is read from.
macro_rules! account_columns {
    () => {
        "id, konnector, label, fields::text AS fields, sealed_secrets, endpoint, created_at, folder"
    };
}

impl PgStore {
    fn account_from_row(&self, r: &PgRow) -> Result<Account, KonnectorError> {
        let err = self.err("reading an account");
        let id: String = r.try_get("id").map_err(&err)?;
        let fields: String = r.try_get("fields").map_err(&err)?;
        Ok(Account {
            konnector: r.try_get("konnector").map_err(&err)?,
            label: r.try_get("label").map_err(&err)?,
            fields: serde_json::from_str(&fields).map_err(|e| {
                KonnectorError::store(format!("account {id} is corrupt in the store: {e}"))
            })?,
            sealed_secrets: r.try_get("sealed_secrets").map_err(&err)?,
            endpoint: r.try_get("endpoint").map_err(&err)?,
            created_at: r.try_get("created_at").map_err(&err)?,
            folder: r.try_get("folder").map_err(&err)?,
            id,
        })
    }

    /// [`crate::store::Backend::assign_missing_folders`]: SQLite's
    /// algorithm, the accounts table locked against other writers for the
    /// transaction (SQLite's `IMMEDIATE`).
    pub(super) async fn assign_folders(
        &self,
        legacy: &(dyn Fn(&Account) -> (String, String) + Send + Sync),
    ) -> Result<Vec<(String, String)>, KonnectorError> {
        let err = self.err("assigning account folders");
        let mut tx = self.scoped("assigning account folders").await?;
        sqlx::query("LOCK TABLE accounts IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await
            .map_err(&err)?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts WHERE tenant_id = $1 AND folder = '' ORDER BY created_at, id"
        ))
        .bind(self.tid())
        .fetch_all(&mut *tx)
        .await
        .map_err(&err)?;
        let mut done = Vec::new();
        for row in &rows {
            let account = self.account_from_row(row)?;
            let (old, own) = legacy(&account);
            let taken: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM accounts WHERE tenant_id = $1 AND folder = $2)",
            )
            .bind(self.tid())
            .bind(&old)
            .fetch_one(&mut *tx)
            .await
            .map_err(&err)?;
            let folder = if taken { own } else { old };
            sqlx::query("UPDATE accounts SET folder = $1 WHERE tenant_id = $2 AND id = $3")
                .bind(&folder)
                .bind(self.tid())
                .bind(&account.id)
                .execute(&mut *tx)
                .await
                .map_err(&err)?;
            done.push((account.id, folder));
        }
        tx.commit().await.map_err(&err)?;
        Ok(done)
    }
}

#[async_trait]
impl AccountStore for PgStore {
    async fn put_account(&self, a: &Account) -> Result<(), KonnectorError> {
        crate::store::check_label(&a.label)?;
        if a.folder.is_empty() {
            return Err(KonnectorError::invalid_data(format!(
                "account {} has no files folder",
                a.id
            )));
        }
        let fields = serde_json::to_string(&a.fields).map_err(|e| {
            KonnectorError::store(format!("cannot encode the account's fields: {e}"))
        })?;
        let err = self.err("saving the account");
        let mut tx = self.scoped("saving the account").await?;
        // An id of another tenant's account is never overwritten: the
        // update's WHERE (and the wall) leave it, and nothing is written.
        let result = sqlx::query(
            "INSERT INTO accounts (id, konnector, label, fields, sealed_secrets, endpoint, created_at, folder, tenant_id)
             VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9)
             ON CONFLICT (id) DO UPDATE SET konnector = excluded.konnector, label = excluded.label, fields = excluded.fields,
               sealed_secrets = excluded.sealed_secrets, endpoint = excluded.endpoint, folder = excluded.folder
             WHERE accounts.tenant_id = excluded.tenant_id",
        )
        .bind(&a.id)
        .bind(&a.konnector)
        .bind(&a.label)
        .bind(fields)
        .bind(&a.sealed_secrets)
        .bind(&a.endpoint)
        .bind(a.created_at)
        .bind(&a.folder)
        .bind(self.tid())
        .execute(&mut *tx)
        .await;
        match result {
            Ok(r) if r.rows_affected() == 0 => Err(KonnectorError::new(
                ErrorCode::InvalidData,
                format!("the account id {} is taken already", a.id),
            )),
            Ok(_) => tx.commit().await.map_err(&err),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                if e.constraint() == Some("accounts_label") {
                    Err(KonnectorError::new(
                        ErrorCode::InvalidData,
                        format!("an account labelled `{}` exists already", a.label),
                    ))
                } else {
                    Err(KonnectorError::new(
                        ErrorCode::InvalidData,
                        format!(
                            "the files folder `{}` belongs to another account already",
                            a.folder
                        ),
                    ))
                }
            }
            Err(e) => Err(err(e)),
        }
    }

    async fn get_account(&self, id: &str) -> Result<Option<Account>, KonnectorError> {
        let err = self.err("reading the account");
        let mut tx = self.scoped("reading the account").await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(self.tid())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(&err)?;
        tx.commit().await.map_err(&err)?;
        row.map(|r| self.account_from_row(&r)).transpose()
    }

    async fn list_accounts(&self) -> Result<Vec<Account>, KonnectorError> {
        let err = self.err("listing accounts");
        let mut tx = self.scoped("listing accounts").await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts WHERE tenant_id = $1 ORDER BY created_at, id"
        ))
        .bind(self.tid())
        .fetch_all(&mut *tx)
        .await
        .map_err(&err)?;
        tx.commit().await.map_err(&err)?;
        rows.iter().map(|r| self.account_from_row(r)).collect()
    }

    async fn remove_account(&self, id: &str, purge: bool) -> Result<bool, KonnectorError> {
        let err = self.err("removing the account");
        let mut tx = self.scoped("removing the account").await?;
        // A commit of this account in flight finishes first (its documents
        // are then purged with the rest).
        super::lock_account(&mut tx, id).await.map_err(&err)?;
        let n = sqlx::query("DELETE FROM accounts WHERE tenant_id = $1 AND id = $2")
            .bind(self.tid())
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(&err)?
            .rows_affected();
        for table in ["konnector_state", "oauth_tokens", "sessions"] {
            // Names from this list, never from input.
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE tenant_id = $1 AND account_id = $2"
            )))
            .bind(self.tid())
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(&err)?;
        }
        if purge {
            sqlx::query("DELETE FROM documents WHERE tenant_id = $1 AND account_id = $2")
                .bind(self.tid())
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(&err)?;
        }
        tx.commit().await.map_err(&err)?;
        Ok(n > 0)
    }
}

#[async_trait]
impl SessionStore for PgStore {
    async fn load_session(
        &self,
        account_id: &str,
    ) -> Result<Option<SealedSession>, KonnectorError> {
        let err = self.err("reading the login session");
        let mut tx = self.scoped("reading the login session").await?;
        let row = sqlx::query(
            "SELECT sealed, expires_at FROM sessions WHERE tenant_id = $1 AND account_id = $2",
        )
        .bind(self.tid())
        .bind(account_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(&err)?;
        tx.commit().await.map_err(&err)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let expires_at: DateTime<Utc> = row.try_get("expires_at").map_err(&err)?;
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
        let err = self.err("saving the login session");
        let mut tx = self.scoped("saving the login session").await?;
        let n = sqlx::query(
            "INSERT INTO sessions (account_id, sealed, expires_at, updated_at, tenant_id) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (account_id) DO UPDATE SET sealed = excluded.sealed, expires_at = excluded.expires_at, updated_at = excluded.updated_at
             WHERE sessions.tenant_id = excluded.tenant_id",
        )
        .bind(account_id)
        .bind(&session.sealed)
        .bind(session.expires_at)
        .bind(Utc::now())
        .bind(self.tid())
        .execute(&mut *tx)
        .await
        .map_err(&err)?
        .rows_affected();
        if n == 0 {
            return Err(KonnectorError::store(format!(
                "the login session of account {account_id} belongs to another tenant"
            )));
        }
        tx.commit().await.map_err(&err)
    }

    async fn delete_session(&self, account_id: &str) -> Result<(), KonnectorError> {
        let err = self.err("deleting the login session");
        let mut tx = self.scoped("deleting the login session").await?;
        sqlx::query("DELETE FROM sessions WHERE tenant_id = $1 AND account_id = $2")
            .bind(self.tid())
            .bind(account_id)
            .execute(&mut *tx)
            .await
            .map_err(&err)?;
        tx.commit().await.map_err(&err)
    }
}
