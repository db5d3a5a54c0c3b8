//! Where documents, accounts and konnector state live.
//!
//! Traits: [`DocStore`] (documents and per-account konnector state),
//! [`AccountStore`] (configured accounts, secrets sealed), [`SessionStore`],
//! and in [`backend`] [`SealedStore`], [`TokenStore`] and [`Backend`] (all
//! of them). Two implementations with the same behaviour: the embedded
//! [`SqliteStore`] and [`PgStore`] on PostgreSQL. Files go to the
//! [`FileStore`], a directory tree per account.
//!
//! The central call is [`DocStore::commit_run`]: every document a run
//! produced, deduplicated on its [`crate::doctypes::Doctype::dedup_key`]
//! through a unique index, is written in **one transaction together with the
//! account's konnector state**. A crash leaves the old state or the new one,
//! never half of one.

pub mod backend;
pub mod files;
pub mod links;
pub mod postgres;
pub mod sealed;
pub mod sqlite;
mod sqlite_backend;
pub mod sqlite_error;
pub mod transfer;
pub mod views;

pub use backend::{Backend, BackendKind, SealedStore, SealedTokens, TokenLock, TokenStore};

pub use files::{FileStore, StagedFile};
pub use links::LinkSummary;
pub use postgres::PgStore;
pub use sealed::{OnRotation, SEALED_COLUMNS, SealedColumn};
pub use sqlite::SqliteStore;
pub use views::Projected;

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::error::KonnectorError;

/// A document staged by a run, waiting for the commit.
#[derive(Debug, Clone)]
pub struct StagedDoc {
    /// Its doctype.
    pub doctype: &'static str,
    /// Its deduplication key.
    pub key: String,
    /// The id to use if the document is new (files are linked from bills
    /// before the commit, so their ids are chosen early).
    pub id: Option<String>,
    /// The document as canonical JSON (object keys sorted), without `_id`,
    /// `_rev` or `cozyMetadata`. Kept serialized: a run holds its documents
    /// until the commit, and text takes a fraction of a `Value` tree's
    /// memory (it counts with a thousand runs at once).
    pub json: Box<str>,
    /// The key of a stored document this one **replaces**: the stored
    /// document keeps its id and gets this one's key and content (a
    /// pending bank operation that booked under another key). When no
    /// document has that key any more, this one is created; when one
    /// already has the new key, that one is updated and the replaced one
    /// deleted.
    pub replaces: Option<String>,
}

impl StagedDoc {
    /// Stages `data` (serialized canonically: `serde_json`'s maps are
    /// sorted by key).
    pub fn from_value(
        doctype: &'static str,
        key: String,
        id: Option<String>,
        data: &serde_json::Value,
    ) -> Self {
        Self {
            doctype,
            key,
            id,
            json: data.to_string().into_boxed_str(),
            replaces: None,
        }
    }
}

/// Everything one run writes.
#[derive(Debug, Clone)]
pub struct RunCommit {
    /// The account.
    pub account_id: String,
    /// The account's identifier (login), for `cozyMetadata`.
    pub account_identifier: Option<String>,
    /// The run's id.
    pub run_id: String,
    /// The konnector slug, for `cozyMetadata`.
    pub konnector: String,
    /// The documents, one per (doctype, key): a key given twice fails the
    /// commit (the unique index refuses it). [`crate::RunContext`] stages
    /// each key once.
    pub docs: Vec<StagedDoc>,
    /// Stored documents to delete, as `(doctype, dedup key)`, in the same
    /// transaction (a pending bank operation the bank cancelled). A key
    /// that is not stored is ignored.
    pub deletes: Vec<(String, String)>,
    /// The konnector's new state (cursor and anything it keeps).
    pub state: serde_json::Value,
    /// When the run finished.
    pub finished_at: DateTime<Utc>,
}

/// What a commit did per doctype.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// New documents.
    pub created: u64,
    /// Existing documents whose content changed.
    pub updated: u64,
    /// Existing documents with the same content.
    pub skipped: u64,
    /// Documents deleted ([`RunCommit::deletes`], or replaced ones).
    #[serde(default)]
    pub deleted: u64,
}

/// Counts by doctype.
pub type CommitCounts = BTreeMap<String, Counts>;

/// A stored document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDoc {
    /// The doctype.
    pub doctype: String,
    /// The id.
    pub id: String,
    /// The revision, CouchDB style (`3-ab12cd34`).
    pub rev: String,
    /// The account that produced it.
    pub account_id: String,
    /// The document with `_id`, `_rev` and `cozyMetadata`.
    pub data: serde_json::Value,
}

/// A stored document with its deduplication key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyedDoc {
    /// The id.
    pub id: String,
    /// The deduplication key it is stored under.
    pub key: String,
    /// The document as the konnector staged it: no `_id`, `_rev` or
    /// `cozyMetadata`.
    pub data: serde_json::Value,
}

/// The konnector state kept per account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KonnectorState {
    /// The state the konnector saved.
    pub state: serde_json::Value,
    /// When the last successful run committed.
    pub last_sync: DateTime<Utc>,
    /// The id of that run.
    pub last_run_id: String,
}

/// A configured account. Secret fields are sealed by the vault.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    /// Unique id.
    pub id: String,
    /// The konnector slug.
    pub konnector: String,
    /// A name the user picks (default: the identifier).
    pub label: String,
    /// The non-secret fields.
    pub fields: BTreeMap<String, String>,
    /// The secret fields, sealed by [`crate::vault::Vault`].
    pub sealed_secrets: Vec<u8>,
    /// A base URL that replaces the manifest's (sandboxes).
    pub endpoint: Option<String>,
    /// When the account was added.
    pub created_at: DateTime<Utc>,
    /// The account's folder in the files tree, relative and `/`-separated
    /// (see [`Account::default_folder`]). Unique in the store: no two
    /// accounts ever share one.
    pub folder: String,
}

impl Account {
    /// The files folder of a new account: the konnector's name, then the
    /// account's id. Keyed by the id, which is unique and never changes;
    /// the label is only for display (two labels such as `a:b` and `a_b`
    /// would sanitize to one folder name).
    pub fn default_folder(konnector_name: &str, id: &str) -> String {
        format!(
            "{}/{}",
            files::sanitize_name(konnector_name),
            files::sanitize_name(id)
        )
    }
}

/// The longest label accepted, in characters.
pub const MAX_LABEL_CHARS: usize = 100;

/// Checks an account label: not blank, at most [`MAX_LABEL_CHARS`]
/// characters, no control characters (newlines, escapes) that would garble
/// a terminal or a log line.
pub fn check_label(label: &str) -> Result<(), KonnectorError> {
    let bad = |why: &str| {
        KonnectorError::new(
            crate::error::ErrorCode::InvalidData,
            format!("the label {label:?} is refused: {why}"),
        )
    };
    if label.trim().is_empty() {
        return Err(bad("it is empty"));
    }
    if label.trim() != label {
        return Err(bad("it starts or ends with a space"));
    }
    if label.chars().count() > MAX_LABEL_CHARS {
        return Err(bad(&format!(
            "it is longer than {MAX_LABEL_CHARS} characters"
        )));
    }
    if label.chars().any(char::is_control) {
        return Err(bad(
            "it holds a control character (a newline, a tab or an escape)",
        ));
    }
    Ok(())
}

/// Documents and konnector state.
#[async_trait]
pub trait DocStore: Send + Sync {
    /// The id of the document with this key, if one exists.
    async fn find_id(
        &self,
        account_id: &str,
        doctype: &str,
        key: &str,
    ) -> Result<Option<String>, KonnectorError>;

    /// Writes a run's documents and the account's state in one transaction.
    async fn commit_run(&self, commit: RunCommit) -> Result<CommitCounts, KonnectorError>;

    /// Documents of a doctype, in id order, after `after` (for paging).
    async fn list(
        &self,
        doctype: &str,
        account_id: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredDoc>, KonnectorError>;

    /// How many documents there are, by doctype.
    async fn count_by_doctype(&self) -> Result<BTreeMap<String, u64>, KonnectorError>;

    /// The account's konnector state, if a run ever committed.
    async fn state(&self, account_id: &str) -> Result<Option<KonnectorState>, KonnectorError>;

    /// The stored document with this key, if one exists (without `_id`,
    /// `_rev` or `cozyMetadata`).
    async fn get_by_key(
        &self,
        account_id: &str,
        doctype: &str,
        key: &str,
    ) -> Result<Option<KeyedDoc>, KonnectorError>;

    /// The account's stored **pending** bank operations (`isComing: true`)
    /// of one bank account (`vendorAccountId`) dated from `from` to `to`
    /// (days, inclusive), in key order. Served by an index of pending
    /// operations: it does not read the booked ones.
    async fn pending_bank_operations(
        &self,
        account_id: &str,
        vendor_account_id: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<KeyedDoc>, KonnectorError>;

    /// Links bills to the bank operations that paid them (and health
    /// refunds to their credits), across accounts and konnectors, in one
    /// transaction: see [`links`]. `now` stamps the documents it rewrites.
    /// A store that keeps no bank data links nothing (the default).
    async fn link_bills_and_operations(
        &self,
        now: DateTime<Utc>,
    ) -> Result<LinkSummary, KonnectorError> {
        let _ = now;
        Ok(LinkSummary::default())
    }
}

/// Configured accounts.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Inserts or replaces an account.
    async fn put_account(&self, account: &Account) -> Result<(), KonnectorError>;
    /// An account by id.
    async fn get_account(&self, id: &str) -> Result<Option<Account>, KonnectorError>;
    /// Every account, oldest first.
    async fn list_accounts(&self) -> Result<Vec<Account>, KonnectorError>;
    /// Removes an account and its state; with `purge`, its documents too.
    /// Returns whether it existed.
    async fn remove_account(&self, id: &str, purge: bool) -> Result<bool, KonnectorError>;
}

/// A login session as stored: a vault record and its expiry.
#[derive(Clone)]
pub struct SealedSession {
    /// The vault record (cookie jar and konnector state), sealed with the
    /// account id + [`sealed::SESSION_AAD_SUFFIX`] as associated data.
    pub sealed: Vec<u8>,
    /// After this instant the session is not restored.
    pub expires_at: DateTime<Utc>,
}

/// Saved login sessions, one per account (see [`crate::session`]).
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// The account's saved session, expired or not.
    async fn load_session(&self, account_id: &str)
    -> Result<Option<SealedSession>, KonnectorError>;
    /// Saves (replaces) the account's session.
    async fn save_session(
        &self,
        account_id: &str,
        session: &SealedSession,
    ) -> Result<(), KonnectorError>;
    /// Forgets the account's session.
    async fn delete_session(&self, account_id: &str) -> Result<(), KonnectorError>;
}
