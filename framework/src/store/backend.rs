//! The store behind traits: what the vault, the OAuth token manager, the
//! CLI and the web interface need from a store, whatever its engine.
//!
//! [`DocStore`], [`AccountStore`] and [`SessionStore`] (in the parent
//! module) hold documents, accounts and login sessions; this module adds
//! [`SealedStore`] (the vault's records and key id), [`TokenStore`] (OAuth
//! token rows and the lock a refresh holds), and [`Backend`], all of them
//! plus the reads the front ends make. Two implementations:
//! [`super::SqliteStore`] (one file, embedded) and [`super::PgStore`]
//! (PostgreSQL), with the same behaviour, checked by one suite run against
//! both (`tests/store_backends.rs`).

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{AccountStore, DocStore, Projected, SessionStore, StoredDoc};
use crate::error::KonnectorError;
use crate::store::Account;
use crate::vault::Vault;

/// The store's vault records ([`super::SEALED_COLUMNS`]) and the id of
/// the key they are sealed with.
#[async_trait]
pub trait SealedStore: Send + Sync {
    /// The id of the vault key the store's records are sealed with, if
    /// recorded.
    async fn vault_key_id(&self) -> Result<Option<String>, KonnectorError>;

    /// Records the id of the vault key the store's records are sealed with.
    async fn set_vault_key_id(&self, key_id: &str) -> Result<(), KonnectorError>;

    /// How many sealed records each sealed table holds (tables that do not
    /// exist are left out).
    async fn sealed_counts(&self) -> Result<BTreeMap<String, u64>, KonnectorError>;

    /// Opens every sealed record with `old`, seals it again with `new` and
    /// records `new`'s key id, **in one transaction**: on any error nothing
    /// changes. Columns marked [`super::OnRotation::Discard`] are emptied
    /// (counted as `"<table> (dropped)"`). Returns how many records were
    /// re-sealed per table.
    async fn reseal_all(
        &self,
        old: &Vault,
        new: &Vault,
    ) -> Result<BTreeMap<String, u64>, KonnectorError>;
}

/// An account's OAuth tokens as stored: a vault record (sealed under
/// `"{account_id}/oauth"`) and the access token's expiry.
#[derive(Clone)]
pub struct SealedTokens {
    /// The vault record holding `access_token` (and `refresh_token`).
    pub sealed: Vec<u8>,
    /// When the access token expires, if the provider said.
    pub expires_at: Option<DateTime<Utc>>,
}

/// OAuth token rows, one per account (see [`crate::oauth::TokenManager`]).
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// The account's stored tokens.
    async fn load_tokens(&self, account_id: &str) -> Result<Option<SealedTokens>, KonnectorError>;

    /// Saves (replaces) the account's tokens, stamped `updated_at`.
    async fn save_tokens(
        &self,
        account_id: &str,
        tokens: &SealedTokens,
        updated_at: DateTime<Utc>,
    ) -> Result<(), KonnectorError>;

    /// Forgets the account's tokens.
    async fn delete_tokens(&self, account_id: &str) -> Result<(), KonnectorError>;

    /// Takes the account's refresh lock, waiting for it: a transaction that
    /// other processes' [`TokenStore::lock_tokens`] on the same account
    /// wait for until it commits or is dropped (dropping it rolls back).
    /// A refresh reads the row under it, calls the provider and writes the
    /// new tokens before committing.
    async fn lock_tokens(&self, account_id: &str) -> Result<Box<dyn TokenLock>, KonnectorError>;
}

/// A held refresh lock on one account's tokens (see
/// [`TokenStore::lock_tokens`]). Dropped without [`TokenLock::commit`],
/// it writes nothing and releases the lock.
#[async_trait]
pub trait TokenLock: Send {
    /// The account's tokens as stored now (under the lock).
    async fn current(&mut self) -> Result<Option<SealedTokens>, KonnectorError>;

    /// Writes the account's new tokens, visible to others at the commit.
    async fn write(
        &mut self,
        tokens: &SealedTokens,
        updated_at: DateTime<Utc>,
    ) -> Result<(), KonnectorError>;

    /// Commits what was written and releases the lock.
    async fn commit(self: Box<Self>) -> Result<(), KonnectorError>;
}

/// Which engine a [`Backend`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// One SQLite file ([`super::SqliteStore`]).
    Sqlite,
    /// A PostgreSQL database ([`super::PgStore`]).
    Postgres,
}

/// A whole store: every store trait, plus what the CLI and the web
/// interface read from it.
#[async_trait]
pub trait Backend: DocStore + AccountStore + SessionStore + SealedStore + TokenStore {
    /// Where the store is, for messages: the file's path, or the database
    /// URL without its password.
    fn describe(&self) -> String;

    /// The engine.
    fn kind(&self) -> BackendKind;

    /// Checks the store: SQLite's `quick_check`, a round trip on
    /// PostgreSQL. Damage or an unreachable server is a store error.
    async fn check(&self) -> Result<(), KonnectorError>;

    /// The top-level `fields` of every document of `doctype` (of one
    /// account, or all), by id; `Null` where a document lacks one. A field
    /// that is not a plain key (letters, digits, `_`) is refused.
    async fn project(
        &self,
        doctype: &str,
        account_id: Option<&str>,
        fields: &[&str],
    ) -> Result<Vec<Projected>, KonnectorError>;

    /// Documents of `doctype` by id (the ones that exist), keyed by id.
    async fn docs_by_id(
        &self,
        doctype: &str,
        ids: &[String],
    ) -> Result<BTreeMap<String, StoredDoc>, KonnectorError>;

    /// How many (bill, operation) links the store holds: the entries of
    /// every bank operation's `bills`.
    async fn link_count(&self) -> Result<u64, KonnectorError>;

    /// The bank operations that pay or refund a bill, latest first, at
    /// most `limit`.
    async fn linked_operations(&self, limit: u32) -> Result<Vec<StoredDoc>, KonnectorError>;

    /// Gives every account without a files folder the folder `legacy`
    /// names first (when no other account has it) or second, in one
    /// transaction; returns the accounts set, with their folder.
    async fn assign_missing_folders(
        &self,
        legacy: &(dyn for<'a> Fn(&'a Account) -> (String, String) + Send + Sync),
    ) -> Result<Vec<(String, String)>, KonnectorError>;

    /// Closes the store's connections (waiting for those in use).
    async fn close(&self);
}

/// Whether `field` is a plain top-level key (the only kind
/// [`Backend::project`] picks).
pub(crate) fn plain_key(field: &str) -> bool {
    !field.is_empty()
        && field.len() <= 64
        && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}
