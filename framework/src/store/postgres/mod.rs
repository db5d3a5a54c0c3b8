//! The store on PostgreSQL: [`PgStore`], the same behaviour as the
//! embedded [`super::SqliteStore`] (one behaviour suite runs against both:
//! `tests/store_backends.rs`), for deployments that keep their data in a
//! database server.
//!
//! The tables are those of the SQLite store with PostgreSQL's types
//! (`framework/migrations/postgres/`, applied at open by sqlx's migrator
//! into its own table `gleaner_store_migrations`; the scheduler's queue
//! keeps its own). Where SQLite serializes writers with its file lock
//! (`BEGIN IMMEDIATE`), PostgreSQL's writers take **advisory transaction
//! locks**, released at commit or rollback:
//!
//! - a commit, an account's removal: the account's lock, so that two
//!   commits of one account run one after the other (the second sees the
//!   first's documents: created once, then skipped, as on SQLite; the
//!   unique index holds whatever happens), and the linking pass's lock
//!   *shared*;
//! - the linking pass: its lock *exclusive*: commits wait for it and are
//!   seen by the next pass, as on SQLite;
//! - an OAuth refresh: the account's token lock (see [`super::TokenStore`]).
//!
//! **Tenants.** A [`PgStore`] works for one tenant ([`PgStore::tenant`],
//! the default one unless [`PgStore::with_tenant`] names another): every
//! row of accounts, documents, konnector state, OAuth tokens and sessions
//! carries a `tenant_id`. Two walls keep tenants apart. The first is the
//! code: every statement on those tables filters on (or writes) the
//! store's tenant. The second is row-level security: each of those
//! operations runs in a transaction from [`tenant::begin_scoped`], which
//! takes the role `gleaner_tenant` and names the tenant, and the policies
//! of migration `0002_tenants.sql` then show and accept only that tenant's
//! rows, whatever a query says. The un-scoped connection (the tables'
//! owner) is the installation's administrative path: migrations, the vault
//! key (its id, the counts of sealed records and the rotation: one key per
//! installation), `gleaner migrate` ([`super::transfer`]) and the tenant
//! administration of [`tenants`].
//!
//! Files by concern: [`docs`] (documents and konnector state),
//! [`accounts`] (accounts and login sessions), [`sealed`] (vault records,
//! OAuth tokens), [`links`] (the bill↔operation linking pass and the
//! views), [`tenant`] (the scoped transaction), [`tenants`] (creating,
//! listing and removing tenants), [`error`] (what a failure means).

pub mod accounts;
pub mod docs;
pub mod error;
pub mod links;
pub mod sealed;
pub mod tenant;
pub mod tenants;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use super::backend::{Backend, BackendKind};
use crate::error::KonnectorError;
use crate::tenant::TenantId;

/// The table sqlx records the store's applied migrations in (the queue
/// has its own).
pub const MIGRATIONS_TABLE: &str = "gleaner_store_migrations";

/// How many connections [`PgStore::open`] allows.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 8;

/// Advisory lock classes (the first key of PostgreSQL's two-key advisory
/// locks; `gl` then a number), so that the store's locks never meet
/// another component's.
mod lock_class {
    /// One account's documents and state (commits, removal).
    pub const ACCOUNT: i32 = 0x676c_0001;
    /// One account's OAuth tokens (a refresh).
    pub const TOKENS: i32 = 0x676c_0002;
    /// The linking pass (second key 0).
    pub const LINKING: i32 = 0x676c_0003;
}

/// The second key of an advisory lock on `name`: the first four bytes of
/// its SHA-256 (two names sharing it only wait for each other).
fn lock_key(name: &str) -> i32 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(name.as_bytes());
    i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Takes the lock of `account_id`'s documents in `tx`'s transaction, and
/// the linking pass's lock shared.
async fn lock_account(tx: &mut PgConnection, account_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock_shared($1, 0)")
        .bind(lock_class::LINKING)
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(lock_class::ACCOUNT)
        .bind(lock_key(account_id))
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// A URL for messages: the password, if any, removed.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if matches!(u.scheme(), "postgres" | "postgresql") => {
            if u.password().is_some() {
                let _ = u.set_password(None);
            }
            u.to_string()
        }
        // Not a PostgreSQL URL: nothing before a credentials' `@` is kept.
        _ => match url.rsplit_once('@') {
            Some((_, host)) => format!("postgres://…@{host}"),
            None => url.to_owned(),
        },
    }
}

/// The [`super::DocStore`], [`super::AccountStore`] and every other
/// store trait on a PostgreSQL database, for one tenant (see the
/// [module](self)). Cheap to clone (a pool and two shared strings).
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// The URL without its password, for messages.
    place: Arc<str>,
    /// The tenant whose rows this store reads and writes.
    tenant: TenantId,
}

/// The store's migrations, recorded in [`MIGRATIONS_TABLE`].
fn migrator() -> Migrator {
    let mut m = sqlx::migrate!("migrations/postgres");
    m.dangerous_set_table_name(MIGRATIONS_TABLE);
    m
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host/db`)
    /// with up to [`DEFAULT_MAX_CONNECTIONS`] connections and brings its
    /// tables up to date. See [`PgStore::open_with`].
    pub async fn open(url: &str) -> Result<Self, KonnectorError> {
        Self::open_with(url, DEFAULT_MAX_CONNECTIONS).await
    }

    /// Connects with up to `max_connections` connections and applies the
    /// migrations this Gleaner knows. A server that cannot be reached, a
    /// refused login and a database written by a newer Gleaner are store
    /// errors naming the URL (never its password) and what to check.
    pub async fn open_with(url: &str, max_connections: u32) -> Result<Self, KonnectorError> {
        let place = redact_url(url);
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            KonnectorError::store(format!(
                "the PostgreSQL URL {place} is not valid ({e}); expected postgres://user:password@host:port/database"
            ))
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|e| error::connect_error(&place, &e))?;
        let store = Self {
            pool,
            place: place.into(),
            tenant: TenantId::default_tenant(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Refuses a database holding a migration this binary does not know,
    /// then applies the missing ones (sqlx's migrator serializes
    /// concurrent openers with an advisory lock).
    async fn migrate(&self) -> Result<(), KonnectorError> {
        let migrator = migrator();
        let err = self.err("preparing the store's tables");
        let recorded: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(MIGRATIONS_TABLE)
            .fetch_one(&self.pool)
            .await
            .map_err(&err)?;
        if recorded {
            let applied: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT version FROM {MIGRATIONS_TABLE} ORDER BY version"
            )))
            .fetch_all(&self.pool)
            .await
            .map_err(&err)?;
            if let Some(&v) = applied.iter().rev().find(|v| !migrator.version_exists(**v)) {
                return Err(self.newer(v));
            }
        }
        migrator.run(&self.pool).await.map_err(|e| match e {
            MigrateError::VersionMissing(v) => self.newer(v),
            MigrateError::Execute(e) => err(e),
            other => KonnectorError::store(format!(
                "preparing the store's tables failed in {}: {other}",
                self.place
            )),
        })
    }

    fn newer(&self, version: i64) -> KonnectorError {
        KonnectorError::store(format!(
            "the store {} was written by a newer Gleaner (migration {version}, unknown to this one); upgrade Gleaner",
            self.place
        ))
    }

    /// The same database (the same pool) working for `tenant`. Does not
    /// check that the tenant exists ([`PgStore::tenant_exists`]): a store
    /// for an unknown tenant simply sees no rows.
    pub fn with_tenant(&self, tenant: TenantId) -> PgStore {
        Self {
            pool: self.pool.clone(),
            place: self.place.clone(),
            tenant,
        }
    }

    /// The tenant whose rows this store reads and writes.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The tenant's name, bound in queries as `tenant_id`.
    pub(crate) fn tid(&self) -> &str {
        self.tenant.as_str()
    }

    /// A transaction confined to this store's tenant by row-level security
    /// ([`tenant::begin_scoped`]); a failure to open it is a store error of
    /// `what`.
    pub(crate) async fn scoped(
        &self,
        what: &str,
    ) -> Result<Transaction<'static, Postgres>, KonnectorError> {
        tenant::begin_scoped(&self.pool, &self.tenant)
            .await
            .map_err(self.err(what))
    }

    /// The connection pool, for components that keep their own tables in
    /// the same database (the scheduler's queue).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The database's URL without its password.
    pub fn place(&self) -> &str {
        &self.place
    }

    /// Turns a sqlx error of `what` into a store error (see [`error`]).
    fn err(&self, what: &str) -> impl Fn(sqlx::Error) -> KonnectorError + '_ {
        let what = what.to_owned();
        move |e| error::classify(&what, &self.place, &e)
    }
}

#[async_trait]
impl Backend for PgStore {
    fn describe(&self) -> String {
        self.place.to_string()
    }

    fn kind(&self) -> BackendKind {
        BackendKind::Postgres
    }

    async fn check(&self) -> Result<(), KonnectorError> {
        // Through the tenant's wall: the role exists and may be taken.
        let err = self.err("checking the store");
        let mut tx = self.scoped("checking the store").await?;
        sqlx::query("SELECT 1")
            .execute(&mut *tx)
            .await
            .map_err(&err)?;
        tx.commit().await.map_err(&err)?;
        Ok(())
    }

    async fn project(
        &self,
        doctype: &str,
        account_id: Option<&str>,
        fields: &[&str],
    ) -> Result<Vec<super::Projected>, KonnectorError> {
        self.project_fields(doctype, account_id, fields).await
    }

    async fn docs_by_id(
        &self,
        doctype: &str,
        ids: &[String],
    ) -> Result<std::collections::BTreeMap<String, super::StoredDoc>, KonnectorError> {
        self.docs_with_ids(doctype, ids).await
    }

    async fn link_count(&self) -> Result<u64, KonnectorError> {
        self.count_links().await
    }

    async fn linked_operations(&self, limit: u32) -> Result<Vec<super::StoredDoc>, KonnectorError> {
        self.operations_linked(limit).await
    }

    async fn assign_missing_folders(
        &self,
        legacy: &(dyn for<'a> Fn(&'a super::Account) -> (String, String) + Send + Sync),
    ) -> Result<Vec<(String, String)>, KonnectorError> {
        self.assign_folders(legacy).await
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
