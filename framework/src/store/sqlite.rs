//! The embedded store: one SQLite file, through sqlx.
//!
//! sqlx was picked over rusqlite because the same async API also speaks
//! PostgreSQL, which the scheduler's queue uses past one machine; the two
//! SQLite crates cannot live in one workspace (they clash over
//! `libsqlite3-sys`).
//!
//! Tables:
//! - `documents(doctype, id, account_id, dedup_key, rev, content_hash, data, ...)`
//!   with a **unique index on `(doctype, account_id, dedup_key)`**: finding
//!   whether a document exists is one index probe, never a scan of the
//!   doctype (Cozy's `hydrateAndFilter` loads them all). `data` is the
//!   document as staged; its `cozyMetadata` is rebuilt at read from the
//!   row (`created_at`, `updated_at`, `account_id`, `imported_from`,
//!   `source_identifier`, `created_version`, `updated_version`), not
//!   repeated in every document (schema 3). A partial index
//!   `documents_pending` lists the pending bank operations per account;
//! - `konnector_state(account_id, state, last_sync, last_run_id)`;
//! - `accounts(id, konnector, label, fields, sealed_secrets, endpoint, ...)`;
//! - `oauth_tokens(account_id, sealed, expires_at, updated_at)`.
//! - `sessions(account_id, sealed, expires_at, updated_at)`: saved login
//!   sessions, sealed by the vault (see [`super::sealed`]);
//! - `vault_meta(name, value)`: the id of the key the records use.
//!
//! The tables are made by sqlx migrations (`framework/migrations/sqlite/`,
//! recorded in `gleaner_store_migrations`, as on PostgreSQL), applied at
//! open inside one `BEGIN IMMEDIATE` transaction after the Rust upgrades of
//! a store from before migrations (see [`SqliteStore::open`]).
//!
//! A commit works in chunks of 400 documents: one lookup per chunk
//! (keys and hashes in one JSON parameter, answered by one JSON row that
//! names only the new and changed documents), one multi-row `INSERT` for
//! the new ones, whose ids are ordered ([`crate::ids::OrderedIds`]). A
//! doctype the account has nothing of yet (a first import) skips the
//! lookup.
//!
//! The database runs in WAL mode with `synchronous = NORMAL`: a process
//! crash never loses a committed run, and a power cut may lose the last
//! commit but never corrupts the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sha2::{Digest, Sha256};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::SqliteArguments;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Arguments as _, Row, SqlitePool};

use super::{
    Account, AccountStore, CommitCounts, DocStore, KeyedDoc, KonnectorState, RunCommit, StagedDoc,
    StoredDoc,
};
use crate::error::{ErrorCode, KonnectorError};
use crate::ids::{OrderedIds, new_id};

/// The last schema version of the stores written before migrations
/// (`PRAGMA user_version`), which this code still writes beside the
/// migrations table so that such a Gleaner keeps opening the store:
///
/// - 1: documents, state, accounts, OAuth tokens, sessions, vault meta;
/// - 2: accounts get a `folder` (unique), and labels are unique;
/// - 3: documents no longer repeat `cozyMetadata` in their JSON: it is
///   rebuilt at read from the row's columns (`created_at`, `updated_at`,
///   `account_id`, and the new `imported_from`, `source_identifier`,
///   `created_version`, `updated_version`). Rows written before keep the
///   `cozyMetadata` in their JSON until they are next updated.
///
/// A store below 3 is brought to 3 by the Rust upgrades
/// ([`migrate_accounts_v2`], [`migrate_documents_v3`]) before the
/// migrations run; one above 3 is refused. Later schema changes are
/// migrations (`framework/migrations/sqlite/`): one that a Gleaner from
/// before migrations must not open should also raise `user_version` (and
/// this constant with it).
const LEGACY_SCHEMA_VERSION: i64 = 3;

/// The table sqlx records the store's applied migrations in: the same
/// name as on PostgreSQL ([`super::postgres::MIGRATIONS_TABLE`]). The
/// scheduler's queue, in the same file, records its own in
/// `gleaner_queue_migrations`.
pub const MIGRATIONS_TABLE: &str = super::postgres::MIGRATIONS_TABLE;

/// The store's migrations (`framework/migrations/sqlite/`), recorded in
/// [`MIGRATIONS_TABLE`].
///
/// `0001_store.sql` is the whole schema 3, every statement `IF NOT EXISTS`:
/// on a store from before migrations (no migrations table, `user_version`
/// 1 to 3), brought to schema 3 by the Rust upgrades first, it creates
/// only what such a store may lack and sqlx records it as applied: no
/// baseline row is written by hand, and the table keeps sqlx's own layout
/// and checksums, so the migrator validates it like any other.
fn migrator() -> Migrator {
    let mut m = sqlx::migrate!("migrations/sqlite");
    m.dangerous_set_table_name(MIGRATIONS_TABLE);
    m
}

/// The columns an [`Account`] is read from (named, never `*`: a
/// statement prepared before a migration keeps its old column list).
macro_rules! account_columns {
    () => {
        "id, konnector, label, fields, sealed_secrets, endpoint, created_at, folder"
    };
}

/// How many documents one statement looks up or inserts.
const CHUNK: usize = 400;

/// The embedded [`DocStore`] and [`AccountStore`].
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` and brings its tables
    /// up to date (the migrations of `framework/migrations/sqlite/`).
    ///
    /// A file that is not a SQLite database, a damaged one (SQLite's
    /// `quick_check`, run before anything is written), or one written by a
    /// newer Gleaner (a `user_version` above 3, or a migration this build
    /// does not know) is refused with `UNKNOWN_ERROR.STORE_FAILED` naming
    /// the path, and nothing is written to it. A store from an older
    /// Gleaner, with or without migrations, is upgraded in place.
    pub async fn open(path: &Path) -> Result<Self, KonnectorError> {
        let Some(path_text) = path.to_str() else {
            return Err(KonnectorError::store(format!(
                "the store's path {} is not valid UTF-8, which SQLite cannot open; choose a data directory whose name is UTF-8 (--data-dir or GLEANER_HOME)",
                path.display()
            )));
        };
        if let Some(dir) = path.parent() {
            crate::store::files::create_private_dir(dir).map_err(|e| {
                let failure = super::sqlite_error::io_failure(&e);
                let message = format!("cannot create the data directory {}: {e}", dir.display());
                match failure {
                    super::sqlite_error::Failure::DiskFull => KonnectorError::disk_full(message),
                    _ => KonnectorError::store(message),
                }
            })?;
        }
        let opening = |e: sqlx::Error| super::sqlite_error::classify("opening the store", path, &e);
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(opening)?
            .filename(path_text)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // A COMMIT that fails on a full disk makes SQLite roll the
            // transaction back by itself; sqlx's own rollback then fails
            // and the connection would come back believing it is still in
            // a transaction ("begin_with at non-zero transaction depth" on
            // its next use). Such a connection is closed, not reused.
            .after_release(|conn, _meta| {
                Box::pin(async move {
                    use sqlx::Connection as _;
                    if !conn.is_in_transaction() {
                        return Ok(true);
                    }
                    // A rollback queued by a dropped transaction runs
                    // before the ping answers.
                    conn.ping().await?;
                    Ok(!conn.is_in_transaction())
                })
            })
            .connect_with(options)
            .await
            .map_err(opening)?;
        // Personal data: the database and its WAL files are the user's alone.
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.as_os_str().to_owned();
            file.push(suffix);
            crate::store::files::make_private(Path::new(&file));
        }
        let store = Self {
            pool,
            path: path.to_owned(),
        };
        // A store from a newer Gleaner is refused before anything else
        // (nothing is written to it) ...
        {
            let mut conn = store.pool.acquire().await.map_err(opening)?;
            store.refuse_newer(&mut conn, "opening the store").await?;
        }
        // ... and damage is reported before anything writes on it.
        store.quick_check().await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Brings the tables up to date, in one `BEGIN IMMEDIATE` transaction:
    /// the Rust upgrades of a store from before migrations
    /// (`user_version` below [`LEGACY_SCHEMA_VERSION`]), then sqlx's
    /// [`migrator`], then `user_version` set to
    /// [`LEGACY_SCHEMA_VERSION`].
    ///
    /// sqlx's migrator takes no lock on SQLite (its `lock()` does nothing),
    /// so it runs on this transaction's connection, under SQLite's write
    /// lock: two processes opening one new file apply the migrations once,
    /// the second one waiting (up to the busy timeout), then finding them
    /// recorded. Each migration runs in a savepoint (sqlx's nested
    /// transaction); a failure rolls everything back, the Rust upgrades
    /// included. What was read before the lock is read again under it.
    async fn migrate(&self) -> Result<(), KonnectorError> {
        // IMMEDIATE: take the write lock first (waiting for it up to the
        // busy timeout), instead of failing at once when another process
        // writes between our read and our write.
        let migrating = self.err("preparing the store's tables");
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(&migrating)?;
        let version = self
            .refuse_newer(&mut tx, "preparing the store's tables")
            .await?;
        if version < LEGACY_SCHEMA_VERSION {
            migrate_accounts_v2(&mut tx).await.map_err(&migrating)?;
            migrate_documents_v3(&mut tx).await.map_err(&migrating)?;
        }
        // `run_direct` is `run` on a connection we hold (sqlx's own way
        // around `Acquire`'s higher-ranked bound, which makes `run(&mut
        // *tx)`'s future not `Send`): the same validation, then each
        // missing migration applied and recorded.
        migrator()
            .run_direct(None, &mut *tx, false)
            .await
            .map_err(|e| self.migrate_error(e))?;
        if version != LEGACY_SCHEMA_VERSION {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "PRAGMA user_version = {LEGACY_SCHEMA_VERSION}"
            )))
            .execute(&mut *tx)
            .await
            .map_err(&migrating)?;
        }
        tx.commit().await.map_err(&migrating)?;
        Ok(())
    }

    /// Refuses a store written by a newer Gleaner: a `user_version` above
    /// [`LEGACY_SCHEMA_VERSION`], or a migration recorded in
    /// [`MIGRATIONS_TABLE`] that this build does not know. Reads only;
    /// answers the store's `user_version`. A failure to read is one of
    /// `what`.
    async fn refuse_newer(
        &self,
        conn: &mut sqlx::SqliteConnection,
        what: &str,
    ) -> Result<i64, KonnectorError> {
        let reading = self.err(what);
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut *conn)
            .await
            .map_err(&reading)?;
        if version > LEGACY_SCHEMA_VERSION {
            return Err(KonnectorError::store(format!(
                "the store {} has schema version {version}, newer than this Gleaner's {LEGACY_SCHEMA_VERSION}: upgrade Gleaner",
                self.path.display()
            )));
        }
        if let Some(&unknown) = applied_migrations(&mut *conn, MIGRATIONS_TABLE)
            .await
            .map_err(&reading)?
            .iter()
            .rev()
            .find(|v| !migrator().version_exists(**v))
        {
            return Err(self.newer(unknown));
        }
        Ok(version)
    }

    /// The error for a store holding migration `version`, unknown to this
    /// build.
    fn newer(&self, version: i64) -> KonnectorError {
        let known = migrator().iter().map(|m| m.version).max().unwrap_or(0);
        KonnectorError::store(format!(
            "the store {} holds store migration {version}, newer than this Gleaner (it knows up to {known}): upgrade Gleaner; nothing was written to the store",
            self.path.display()
        ))
    }

    /// What a failure of sqlx's migrator means for the person.
    fn migrate_error(&self, e: MigrateError) -> KonnectorError {
        let path = self.path.display();
        match e {
            MigrateError::VersionMissing(v) => self.newer(v),
            MigrateError::VersionMismatch(v) => KonnectorError::store(format!(
                "the store {path} records store migration {v} with a different text than this Gleaner's; nothing was changed: run the Gleaner version that created it, or upgrade"
            )),
            MigrateError::Dirty(v) => KonnectorError::store(format!(
                "the store {path} has store migration {v} half applied (a migration failed); nothing was changed: restore a backup"
            )),
            MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) => {
                super::sqlite_error::classify("preparing the store's tables", &self.path, &e)
            }
            other => KonnectorError::store(format!(
                "preparing the store's tables failed in {path}: {other}"
            )),
        }
    }

    /// Runs SQLite's `PRAGMA quick_check` (page and record structure; a
    /// few milliseconds for a personal store) and reports damage as
    /// `UNKNOWN_ERROR.STORE_FAILED` naming what SQLite found.
    pub async fn quick_check(&self) -> Result<(), KonnectorError> {
        let problems: Vec<String> = sqlx::query_scalar("PRAGMA quick_check(5)")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| super::sqlite_error::classify("checking the store", &self.path, &e))?;
        if problems.len() == 1 && problems[0] == "ok" {
            return Ok(());
        }
        Err(KonnectorError::store(format!(
            "the store {} is damaged (SQLite's check found: {}); nothing was written to it: keep a copy of the file, then restore a backup",
            self.path.display(),
            problems
                .iter()
                .map(|p| p.replace('\n', " "))
                .collect::<Vec<_>>()
                .join("; ")
        )))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection pool, for crates that keep their own tables in the
    /// same file (the scheduler's queue).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn err(&self, what: &str) -> impl Fn(sqlx::Error) -> KonnectorError + '_ {
        let what = what.to_owned();
        move |e| super::sqlite_error::classify(&what, &self.path, &e)
    }
}

/// The versions recorded in the sqlx migrations table `table` of a
/// SQLite file, none when the table does not exist (a new file, or one
/// from before migrations). The store's ([`MIGRATIONS_TABLE`]) and the
/// scheduler's queue's share the file, each with its own table.
pub async fn applied_migrations(
    conn: &mut sqlx::SqliteConnection,
    table: &str,
) -> Result<Vec<i64>, sqlx::Error> {
    if !table_exists(&mut *conn, table).await? {
        return Ok(Vec::new());
    }
    // The table name is a constant of the caller's, never input.
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT version FROM {table} ORDER BY version"
    )))
    .fetch_all(&mut *conn)
    .await
}

/// Whether the table `name` exists in the SQLite file.
pub async fn table_exists(
    conn: &mut sqlx::SqliteConnection,
    name: &str,
) -> Result<bool, sqlx::Error> {
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?")
            .bind(name)
            .fetch_one(&mut *conn)
            .await?;
    Ok(n > 0)
}

/// Schema 2: every account owns a files folder of its own (a unique
/// index, so two accounts can never share one and a purge of one can never
/// delete the other's files), and labels are unique in the database, not
/// by a check-then-insert that two processes can race.
///
/// A store of schema 1 may hold duplicate labels (the race this closes):
/// the newer duplicates get their id appended. Existing accounts keep an
/// empty folder until [`SqliteStore::assign_missing_folders`] gives them
/// their old one (it needs the konnectors' names).
///
/// Runs on stores from before migrations only (`user_version` below
/// [`LEGACY_SCHEMA_VERSION`]), before migration 0001, in the opening
/// transaction; does nothing where there is no `accounts` table yet (a new
/// file: 0001 creates it as schema 3 has it). Idempotent.
async fn migrate_accounts_v2(tx: &mut sqlx::SqliteConnection) -> Result<(), sqlx::Error> {
    if !table_exists(&mut *tx, "accounts").await? {
        return Ok(());
    }
    let has_folder: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pragma_table_info('accounts') WHERE name = 'folder'",
    )
    .fetch_one(&mut *tx)
    .await?;
    if has_folder == 0 {
        sqlx::query("ALTER TABLE accounts ADD COLUMN folder TEXT NOT NULL DEFAULT ''")
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(
        "UPDATE accounts SET label = label || ' (' || substr(id, 1, 6) || ')'
         WHERE EXISTS (SELECT 1 FROM accounts older WHERE older.label = accounts.label
                       AND (older.created_at, older.id) < (accounts.created_at, accounts.id))",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query("CREATE UNIQUE INDEX IF NOT EXISTS accounts_label ON accounts (label)")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "CREATE UNIQUE INDEX IF NOT EXISTS accounts_folder ON accounts (folder) WHERE folder != ''",
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Schema 3: the columns `cozyMetadata` is rebuilt from. Runs as
/// [`migrate_accounts_v2`] does (nothing without a `documents` table).
async fn migrate_documents_v3(tx: &mut sqlx::SqliteConnection) -> Result<(), sqlx::Error> {
    if !table_exists(&mut *tx, "documents").await? {
        return Ok(());
    }
    for column in [
        "imported_from",
        "source_identifier",
        "created_version",
        "updated_version",
    ] {
        let has: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pragma_table_info('documents') WHERE name = ?",
        )
        .bind(column)
        .fetch_one(&mut *tx)
        .await?;
        if has == 0 {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "ALTER TABLE documents ADD COLUMN {column} TEXT"
            )))
            .execute(&mut *tx)
            .await?;
        }
    }
    Ok(())
}

/// The hash that decides whether a re-saved document changed.
fn content_hash(json: &str) -> String {
    // Staged JSON is canonical (serde_json's maps are ordered by key).
    let digest = Sha256::digest(json.as_bytes());
    hex::encode(&digest[..16])
}

/// The version written in `cozyMetadata`.
const APP_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The columns `cozyMetadata` is rebuilt from (select them with `data`).
macro_rules! meta_columns {
    () => {
        "created_at, updated_at, account_id, imported_from, source_identifier, created_version, updated_version"
    };
}

/// A document's `cozyMetadata`, as Cozy's konnector library writes it,
/// from its row ([`meta_columns`]).
fn cozy_metadata(row: &sqlx::sqlite::SqliteRow) -> Result<serde_json::Value, sqlx::Error> {
    let created_at: String = row.try_get("created_at")?;
    let updated_at: String = row.try_get("updated_at")?;
    let account: String = row.try_get("account_id")?;
    let imported_from: Option<String> = row.try_get("imported_from")?;
    let identifier: Option<String> = row.try_get("source_identifier")?;
    let created_version: Option<String> = row.try_get("created_version")?;
    let updated_version: Option<String> = row.try_get("updated_version")?;
    let updated_version = updated_version.unwrap_or_else(|| APP_VERSION.to_owned());
    Ok(serde_json::json!({
        "metadataVersion": 1,
        "doctypeVersion": 1,
        "createdAt": created_at,
        "createdByApp": "gleaner",
        "createdByAppVersion": created_version.unwrap_or_else(|| updated_version.clone()),
        "updatedAt": updated_at,
        "updatedByApps": [{"slug": "gleaner", "date": updated_at, "version": updated_version}],
        "sourceAccount": account,
        "sourceAccountIdentifier": identifier,
        "importedFrom": imported_from,
    }))
}

/// Adds the row's `cozyMetadata` to a stored document (a row of schema 2
/// or older has it in its JSON already and keeps that one).
fn add_metadata(
    data: &mut serde_json::Value,
    row: &sqlx::sqlite::SqliteRow,
) -> Result<(), sqlx::Error> {
    if let Some(obj) = data.as_object_mut()
        && !obj.contains_key("cozyMetadata")
    {
        obj.insert("cozyMetadata".to_owned(), cozy_metadata(row)?);
    }
    Ok(())
}

/// The lookup of a chunk: of the staged documents (key and hash, as one
/// JSON array in `?3`), those that are new or changed, as **one** JSON
/// array of `[index, stored id or null, stored rev or null]`: unchanged
/// documents are left out, and one row comes back per chunk rather than
/// one per document (a row through sqlx costs more than the probe).
const LOOKUP_SQL: &str =
    "WITH staged (i, k, h) AS (SELECT key, value ->> 0, value ->> 1 FROM json_each(?3))
    SELECT json_group_array(json_array(staged.i, d.id, d.rev)) AS changed FROM staged
    LEFT JOIN documents AS d INDEXED BY documents_dedup
      ON d.doctype = ?1 AND d.account_id = ?2 AND d.dedup_key = staged.k
    WHERE d.content_hash IS NOT staged.h";

/// The stored pending bank operations of an account (`?1`) and bank
/// account (`?2`) dated from `?3` to `?4`. The first two terms are those of
/// the partial index `documents_pending`, spelled as in its definition so
/// that the planner can use it.
const PENDING_SQL: &str = "SELECT id, dedup_key, data FROM documents INDEXED BY documents_pending
    WHERE doctype = 'io.cozy.bank.operations' AND json_extract(data, '$.isComing') = 1
      AND account_id = ?1 AND json_extract(data, '$.vendorAccountId') = ?2
      AND substr(json_extract(data, '$.date'), 1, 10) BETWEEN ?3 AND ?4
    ORDER BY dedup_key";

/// `INSERT` of `rows` documents: the constant parameters (doctype,
/// account, now, konnector, identifier, version) first, bound once per
/// statement in a one-row CTE, then id, key, hash and data per row.
/// Parameters are anonymous (`?`): with numbered ones (`?7`) sqlx looks
/// each name up in a list SQLite scans linearly, which made a 1,600-value
/// insert quadratic. The text of a full chunk is built once per process.
fn insert_sql(rows: usize) -> std::borrow::Cow<'static, str> {
    fn build(rows: usize) -> String {
        let mut sql = String::from(
            "WITH c (doctype, account, now, konnector, identifier, version) AS (VALUES (?, ?, ?, ?, ?, ?))
             INSERT INTO documents (doctype, id, account_id, dedup_key, rev, content_hash, data, created_at, updated_at,
               imported_from, source_identifier, created_version, updated_version)
             SELECT c.doctype, r.column1, c.account, r.column2, 1, r.column3, r.column4, c.now, c.now,
               c.konnector, c.identifier, c.version, c.version
             FROM c, (VALUES ",
        );
        for r in 0..rows {
            if r > 0 {
                sql.push_str(", ");
            }
            sql.push_str("(?, ?, ?, ?)");
        }
        sql.push_str(") AS r");
        sql
    }
    static FULL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if rows == CHUNK {
        std::borrow::Cow::Borrowed(FULL.get_or_init(|| build(CHUNK)).as_str())
    } else {
        std::borrow::Cow::Owned(build(rows))
    }
}

struct Existing {
    id: String,
    rev: i64,
    hash: String,
}

fn existing_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Existing, sqlx::Error> {
    Ok(Existing {
        id: row.try_get("id")?,
        rev: row.try_get("rev")?,
        hash: row.try_get("content_hash")?,
    })
}

impl SqliteStore {
    /// The stored document with this key, for an update.
    async fn lookup(
        &self,
        tx: &mut sqlx::SqliteConnection,
        doctype: &str,
        account_id: &str,
        key: &str,
    ) -> Result<Option<Existing>, KonnectorError> {
        let row = sqlx::query(
            "SELECT id, rev, content_hash FROM documents WHERE doctype = ? AND account_id = ? AND dedup_key = ?",
        )
        .bind(doctype)
        .bind(account_id)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await
        .map_err(self.err("committing the run"))?;
        row.map(|r| existing_from_row(&r))
            .transpose()
            .map_err(self.err("committing the run"))
    }

    /// Writes a new content (and, with `new_key`, a new key) over a stored
    /// document, keeping its id and creation time. The JSON is written
    /// without `cozyMetadata` (schema 3), even over a row that had one.
    #[allow(clippy::too_many_arguments)]
    async fn update_doc(
        &self,
        tx: &mut sqlx::SqliteConnection,
        commit: &RunCommit,
        doctype: &str,
        old: &Existing,
        new_key: Option<&str>,
        json: &str,
        hash: &str,
        now: &str,
    ) -> Result<(), KonnectorError> {
        sqlx::query(
            "UPDATE documents SET rev = ?, content_hash = ?, data = ?, updated_at = ?, dedup_key = coalesce(?, dedup_key),
               imported_from = ?, source_identifier = ?, updated_version = ?, created_version = coalesce(created_version, ?)
             WHERE doctype = ? AND id = ?",
        )
        .bind(old.rev + 1)
        .bind(hash)
        .bind(json)
        .bind(now)
        .bind(new_key)
        .bind(&commit.konnector)
        .bind(commit.account_identifier.as_deref())
        .bind(APP_VERSION)
        .bind(APP_VERSION)
        .bind(doctype)
        .bind(&old.id)
        .execute(&mut *tx)
        .await
        .map_err(self.err("committing the run"))?;
        Ok(())
    }

    /// Whether the account has any document of the doctype.
    async fn has_docs(
        &self,
        tx: &mut sqlx::SqliteConnection,
        doctype: &str,
        account_id: &str,
    ) -> Result<bool, KonnectorError> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM documents INDEXED BY documents_dedup WHERE doctype = ? AND account_id = ?)",
        )
        .bind(doctype)
        .bind(account_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(self.err("committing the run"))
    }

    /// Inserts new documents (at most [`CHUNK`]) with one statement,
    /// each with its content hash. The documents are moved into the
    /// statement's parameters, not copied.
    async fn insert_docs(
        &self,
        tx: &mut sqlx::SqliteConnection,
        commit: &RunCommit,
        doctype: &str,
        docs: Vec<(StagedDoc, String)>,
        now: &str,
        ids: &mut OrderedIds,
    ) -> Result<(), KonnectorError> {
        if docs.is_empty() {
            return Ok(());
        }
        let encode = |e: sqlx::error::BoxDynError| {
            KonnectorError::store(format!("cannot encode a document for the store: {e}"))
        };
        let mut args = SqliteArguments::default();
        args.add(doctype.to_owned()).map_err(encode)?;
        args.add(commit.account_id.clone()).map_err(encode)?;
        args.add(now.to_owned()).map_err(encode)?;
        args.add(commit.konnector.clone()).map_err(encode)?;
        args.add(commit.account_identifier.clone())
            .map_err(encode)?;
        args.add(APP_VERSION).map_err(encode)?;
        let rows = docs.len();
        for (doc, hash) in docs {
            let StagedDoc { id, key, json, .. } = doc;
            args.add(id.unwrap_or_else(|| ids.next_id()))
                .map_err(encode)?;
            args.add(key).map_err(encode)?;
            args.add(hash).map_err(encode)?;
            args.add(String::from(json)).map_err(encode)?;
        }
        let sql = insert_sql(rows);
        let result = match sql {
            std::borrow::Cow::Borrowed(sql) => sqlx::query_with(sql, args).execute(&mut *tx).await,
            std::borrow::Cow::Owned(sql) => {
                sqlx::query_with(sqlx::AssertSqlSafe(sql), args)
                    .execute(&mut *tx)
                    .await
            }
        };
        result.map_err(self.err("committing the run"))?;
        Ok(())
    }

    /// Commits a document that replaces another ([`StagedDoc::replaces`]).
    async fn replace_doc(
        &self,
        tx: &mut sqlx::SqliteConnection,
        commit: &RunCommit,
        doc: &StagedDoc,
        now: &str,
        c: &mut super::Counts,
    ) -> Result<(), KonnectorError> {
        let Some(old_key) = doc.replaces.as_deref() else {
            return Ok(());
        };
        let err = self.err("committing the run");
        let doctype = doc.doctype;
        let account = commit.account_id.as_str();
        let hash = content_hash(&doc.json);
        // A document has the new key already: it is the one kept, and the
        // replaced one goes (one document, never two).
        if let Some(twin) = self.lookup(tx, doctype, account, &doc.key).await? {
            if twin.hash == hash {
                c.skipped += 1;
            } else {
                self.update_doc(tx, commit, doctype, &twin, None, &doc.json, &hash, now)
                    .await?;
                c.updated += 1;
            }
            if old_key != doc.key {
                c.deleted += sqlx::query(
                    "DELETE FROM documents WHERE doctype = ? AND account_id = ? AND dedup_key = ? AND id != ?",
                )
                .bind(doctype)
                .bind(account)
                .bind(old_key)
                .bind(&twin.id)
                .execute(&mut *tx)
                .await
                .map_err(&err)?
                .rows_affected();
            }
            return Ok(());
        }
        match self.lookup(tx, doctype, account, old_key).await? {
            Some(old) => {
                self.update_doc(
                    tx,
                    commit,
                    doctype,
                    &old,
                    Some(&doc.key),
                    &doc.json,
                    &hash,
                    now,
                )
                .await?;
                c.updated += 1;
            }
            None => {
                let id = doc.id.clone().unwrap_or_else(new_id);
                sqlx::query(
                    "INSERT INTO documents (doctype, id, account_id, dedup_key, rev, content_hash, data, created_at, updated_at,
                       imported_from, source_identifier, created_version, updated_version)
                     VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(doctype)
                .bind(id)
                .bind(account)
                .bind(&doc.key)
                .bind(&hash)
                .bind(&*doc.json)
                .bind(now)
                .bind(now)
                .bind(&commit.konnector)
                .bind(commit.account_identifier.as_deref())
                .bind(APP_VERSION)
                .bind(APP_VERSION)
                .execute(&mut *tx)
                .await
                .map_err(&err)?;
                c.created += 1;
            }
        }
        Ok(())
    }

    fn keyed_from_row(
        &self,
        doctype: &str,
        row: &sqlx::sqlite::SqliteRow,
    ) -> Result<KeyedDoc, KonnectorError> {
        let err = self.err("reading a document");
        let id: String = row.try_get("id").map_err(&err)?;
        let text: String = row.try_get("data").map_err(&err)?;
        let mut data: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            KonnectorError::store(format!(
                "document {doctype}/{id} in {} is corrupt: {e}",
                self.path.display()
            ))
        })?;
        if let Some(obj) = data.as_object_mut() {
            obj.remove("cozyMetadata");
        }
        Ok(KeyedDoc {
            key: row.try_get("dedup_key").map_err(&err)?,
            id,
            data,
        })
    }
}

#[async_trait]
impl DocStore for SqliteStore {
    async fn find_id(
        &self,
        account_id: &str,
        doctype: &str,
        key: &str,
    ) -> Result<Option<String>, KonnectorError> {
        sqlx::query_scalar(
            "SELECT id FROM documents WHERE doctype = ? AND account_id = ? AND dedup_key = ?",
        )
        .bind(doctype)
        .bind(account_id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.err("looking up a document"))
    }

    async fn commit_run(&self, mut commit: RunCommit) -> Result<CommitCounts, KonnectorError> {
        let now = commit.finished_at.to_rfc3339();
        let err = self.err("committing the run");
        let mut counts = CommitCounts::new();
        let mut ids = OrderedIds::new(commit.finished_at);
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(&err)?;

        // Deletes first: they free the keys they held.
        for (doctype, key) in &commit.deletes {
            let n = sqlx::query(
                "DELETE FROM documents WHERE doctype = ? AND account_id = ? AND dedup_key = ?",
            )
            .bind(doctype)
            .bind(&commit.account_id)
            .bind(key)
            .execute(&mut *tx)
            .await
            .map_err(&err)?
            .rows_affected();
            counts.entry(doctype.clone()).or_default().deleted += n;
        }

        // The documents are consumed chunk by chunk: their memory goes as
        // they are written.
        let docs = std::mem::take(&mut commit.docs);
        for doc in docs.iter().filter(|d| d.replaces.is_some()) {
            let c = counts.entry(doc.doctype.to_owned()).or_default();
            self.replace_doc(&mut tx, &commit, doc, &now, c).await?;
        }
        // Whether the account had none of a doctype before this commit (a
        // first import): then every document is new, no lookup needed.
        let mut first_import: BTreeMap<&'static str, bool> = BTreeMap::new();
        let mut rest = docs.into_iter().filter(|d| d.replaces.is_none()).peekable();
        while let Some(head) = rest.next() {
            let doctype = head.doctype;
            let mut chunk = Vec::with_capacity(CHUNK);
            chunk.push(head);
            while chunk.len() < CHUNK {
                match rest.next_if(|d| d.doctype == doctype) {
                    Some(d) => chunk.push(d),
                    None => break,
                }
            }
            let first = match first_import.get(doctype) {
                Some(&first) => first,
                None => {
                    let first = !self.has_docs(&mut tx, doctype, &commit.account_id).await?;
                    first_import.insert(doctype, first);
                    first
                }
            };
            let hashes: Vec<String> = chunk.iter().map(|d| content_hash(&d.json)).collect();
            let c = counts.entry(doctype.to_owned()).or_default();
            if first {
                c.created += chunk.len() as u64;
                let docs = chunk.into_iter().zip(hashes).collect();
                self.insert_docs(&mut tx, &commit, doctype, docs, &now, &mut ids)
                    .await?;
                continue;
            }
            // 1. One indexed lookup for the whole chunk (LOOKUP_SQL):
            // only new and changed documents answer, so a re-import of
            // unchanged ones reads no row back. The staged side is the
            // LEFT JOIN's outer loop: one probe of the dedup index per
            // document, never a walk of the doctype.
            let staged: Vec<[&str; 2]> = chunk
                .iter()
                .zip(&hashes)
                .map(|(d, h)| [d.key.as_str(), h.as_str()])
                .collect();
            let staged = serde_json::to_string(&staged).map_err(|e| {
                KonnectorError::store(format!("cannot encode the documents' keys: {e}"))
            })?;
            let changed: String = sqlx::query_scalar(LOOKUP_SQL)
                .bind(doctype)
                .bind(&commit.account_id)
                .bind(staged)
                .fetch_one(&mut *tx)
                .await
                .map_err(&err)?;
            let changed: Vec<(usize, Option<String>, Option<i64>)> = serde_json::from_str(&changed)
                .map_err(|e| {
                    KonnectorError::store(format!(
                        "the store's lookup answered something unexpected: {e}"
                    ))
                })?;
            c.skipped += chunk.len().saturating_sub(changed.len()) as u64;
            // 2. New documents in one multi-row insert; changed ones updated.
            let mut chunk: Vec<Option<(StagedDoc, String)>> =
                chunk.into_iter().zip(hashes).map(Some).collect();
            let mut inserts = Vec::new();
            for (i, id, rev) in changed {
                let Some((doc, hash)) = chunk.get_mut(i).and_then(Option::take) else {
                    continue;
                };
                match id {
                    Some(id) => {
                        let old = Existing {
                            id,
                            rev: rev.unwrap_or(1),
                            hash: String::new(),
                        };
                        self.update_doc(
                            &mut tx, &commit, doctype, &old, None, &doc.json, &hash, &now,
                        )
                        .await?;
                        c.updated += 1;
                    }
                    None => {
                        inserts.push((doc, hash));
                        c.created += 1;
                    }
                }
            }
            self.insert_docs(&mut tx, &commit, doctype, inserts, &now, &mut ids)
                .await?;
        }
        sqlx::query(
            "INSERT INTO konnector_state (account_id, state, last_sync, last_run_id) VALUES (?, ?, ?, ?)
             ON CONFLICT (account_id) DO UPDATE SET state = excluded.state, last_sync = excluded.last_sync, last_run_id = excluded.last_run_id",
        )
        .bind(&commit.account_id)
        .bind(commit.state.to_string())
        .bind(&now)
        .bind(&commit.run_id)
        .execute(&mut *tx)
        .await
        .map_err(&err)?;
        tx.commit().await.map_err(&err)?;
        Ok(counts)
    }

    async fn get_by_key(
        &self,
        account_id: &str,
        doctype: &str,
        key: &str,
    ) -> Result<Option<KeyedDoc>, KonnectorError> {
        let row = sqlx::query(
            "SELECT id, dedup_key, data FROM documents WHERE doctype = ? AND account_id = ? AND dedup_key = ?",
        )
        .bind(doctype)
        .bind(account_id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.err("reading a document"))?;
        row.map(|r| self.keyed_from_row(doctype, &r)).transpose()
    }

    async fn pending_bank_operations(
        &self,
        account_id: &str,
        vendor_account_id: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<KeyedDoc>, KonnectorError> {
        let rows = sqlx::query(PENDING_SQL)
            .bind(account_id)
            .bind(vendor_account_id)
            .bind(from.format("%Y-%m-%d").to_string())
            .bind(to.format("%Y-%m-%d").to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(self.err("listing pending bank operations"))?;
        rows.iter()
            .map(|r| self.keyed_from_row("io.cozy.bank.operations", r))
            .collect()
    }

    async fn list(
        &self,
        doctype: &str,
        account_id: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredDoc>, KonnectorError> {
        let err = self.err("listing documents");
        let rows = sqlx::query(concat!(
            "SELECT id, rev, content_hash, data, ",
            meta_columns!(),
            " FROM documents
             WHERE doctype = ?1 AND (?2 IS NULL OR account_id = ?2) AND (?3 IS NULL OR id > ?3)
             ORDER BY id LIMIT ?4"
        ))
        .bind(doctype)
        .bind(account_id)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(&err)?;
        rows.into_iter()
            .map(|row| {
                let id: String = row.try_get("id").map_err(&err)?;
                let rev: i64 = row.try_get("rev").map_err(&err)?;
                let hash: String = row.try_get("content_hash").map_err(&err)?;
                let text: String = row.try_get("data").map_err(&err)?;
                let mut data: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                    KonnectorError::store(format!(
                        "document {doctype}/{id} in {} is corrupt: {e}",
                        self.path.display()
                    ))
                })?;
                let rev = format!("{rev}-{}", &hash[..hash.len().min(8)]);
                add_metadata(&mut data, &row).map_err(&err)?;
                if let Some(obj) = data.as_object_mut() {
                    obj.insert("_id".into(), id.clone().into());
                    obj.insert("_rev".into(), rev.clone().into());
                }
                Ok(StoredDoc {
                    doctype: doctype.to_owned(),
                    id,
                    rev,
                    account_id: row.try_get("account_id").map_err(&err)?,
                    data,
                })
            })
            .collect()
    }

    async fn count_by_doctype(&self) -> Result<BTreeMap<String, u64>, KonnectorError> {
        let rows = sqlx::query("SELECT doctype, COUNT(*) AS n FROM documents GROUP BY doctype")
            .fetch_all(&self.pool)
            .await
            .map_err(self.err("counting documents"))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let n: i64 = row.try_get("n").map_err(self.err("counting documents"))?;
            out.insert(
                row.try_get("doctype")
                    .map_err(self.err("counting documents"))?,
                u64::try_from(n).unwrap_or(0),
            );
        }
        Ok(out)
    }

    async fn link_bills_and_operations(
        &self,
        now: DateTime<Utc>,
    ) -> Result<super::LinkSummary, KonnectorError> {
        self.link_pass(now).await
    }

    async fn state(&self, account_id: &str) -> Result<Option<KonnectorState>, KonnectorError> {
        let err = self.err("reading the konnector state");
        let Some(row) = sqlx::query(
            "SELECT state, last_sync, last_run_id FROM konnector_state WHERE account_id = ?",
        )
        .bind(account_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(&err)?
        else {
            return Ok(None);
        };
        let state: String = row.try_get("state").map_err(&err)?;
        let last_sync: String = row.try_get("last_sync").map_err(&err)?;
        let corrupt = |what: String| {
            KonnectorError::store(format!(
                "the state of account {account_id} is corrupt: {what}"
            ))
        };
        Ok(Some(KonnectorState {
            state: serde_json::from_str(&state).map_err(|e| corrupt(e.to_string()))?,
            last_sync: parse_time(&last_sync).map_err(corrupt)?,
            last_run_id: row.try_get("last_run_id").map_err(&err)?,
        }))
    }
}

#[async_trait]
impl AccountStore for SqliteStore {
    async fn put_account(&self, a: &Account) -> Result<(), KonnectorError> {
        super::check_label(&a.label)?;
        if a.folder.is_empty() {
            return Err(KonnectorError::invalid_data(format!(
                "account {} has no files folder",
                a.id
            )));
        }
        let fields = serde_json::to_string(&a.fields).map_err(|e| {
            KonnectorError::store(format!("cannot encode the account's fields: {e}"))
        })?;
        let result = sqlx::query(
            "INSERT INTO accounts (id, konnector, label, fields, sealed_secrets, endpoint, created_at, folder) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET konnector = excluded.konnector, label = excluded.label, fields = excluded.fields,
               sealed_secrets = excluded.sealed_secrets, endpoint = excluded.endpoint, folder = excluded.folder",
        )
        .bind(&a.id)
        .bind(&a.konnector)
        .bind(&a.label)
        .bind(fields)
        .bind(&a.sealed_secrets)
        .bind(&a.endpoint)
        .bind(a.created_at.to_rfc3339())
        .bind(&a.folder)
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                let message = e.message().to_owned();
                if message.contains("accounts.label") {
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
            Err(e) => Err(self.err("saving the account")(e)),
        }
    }

    async fn get_account(&self, id: &str) -> Result<Option<Account>, KonnectorError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.err("reading the account"))?;
        row.map(|r| self.account_from_row(&r)).transpose()
    }

    async fn list_accounts(&self) -> Result<Vec<Account>, KonnectorError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(self.err("listing accounts"))?;
        rows.iter().map(|r| self.account_from_row(r)).collect()
    }

    async fn remove_account(&self, id: &str, purge: bool) -> Result<bool, KonnectorError> {
        let err = self.err("removing the account");
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(&err)?;
        let n = sqlx::query("DELETE FROM accounts WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(&err)?
            .rows_affected();
        sqlx::query("DELETE FROM konnector_state WHERE account_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(&err)?;
        sqlx::query("DELETE FROM oauth_tokens WHERE account_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(&err)?;
        sqlx::query("DELETE FROM sessions WHERE account_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(&err)?;
        if purge {
            sqlx::query("DELETE FROM documents WHERE account_id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(&err)?;
        }
        tx.commit().await.map_err(&err)?;
        Ok(n > 0)
    }
}

impl SqliteStore {
    /// Gives every account that has no files folder yet (accounts made
    /// before schema 2) the folder its files were in: `legacy(account)`,
    /// the konnector's name and the label as Gleaner used to name it, if
    /// no other account has claimed that folder; otherwise a folder of its
    /// own keyed by its id (its files are downloaded again there, and the
    /// shared folder stays with the older account). One transaction.
    ///
    /// Returns the accounts whose folder was set, with the folder.
    pub async fn assign_missing_folders(
        &self,
        legacy: &(dyn Fn(&Account) -> (String, String) + Send + Sync),
    ) -> Result<Vec<(String, String)>, KonnectorError> {
        let err = self.err("assigning account folders");
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(&err)?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts WHERE folder = '' ORDER BY created_at, id"
        ))
        .fetch_all(&mut *tx)
        .await
        .map_err(&err)?;
        let mut done = Vec::new();
        for row in &rows {
            let account = self.account_from_row(row)?;
            let (old, own) = legacy(&account);
            let taken: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts WHERE folder = ?")
                .bind(&old)
                .fetch_one(&mut *tx)
                .await
                .map_err(&err)?;
            let folder = if taken == 0 { old } else { own };
            sqlx::query("UPDATE accounts SET folder = ? WHERE id = ?")
                .bind(&folder)
                .bind(&account.id)
                .execute(&mut *tx)
                .await
                .map_err(&err)?;
            done.push((account.id, folder));
        }
        tx.commit().await.map_err(&err)?;
        Ok(done)
    }

    fn account_from_row(&self, r: &sqlx::sqlite::SqliteRow) -> Result<Account, KonnectorError> {
        let err = self.err("reading an account");
        let id: String = r.try_get("id").map_err(&err)?;
        let corrupt = |what: String| {
            KonnectorError::store(format!("account {id} is corrupt in the store: {what}"))
        };
        let fields: String = r.try_get("fields").map_err(&err)?;
        let created: String = r.try_get("created_at").map_err(&err)?;
        Ok(Account {
            konnector: r.try_get("konnector").map_err(&err)?,
            label: r.try_get("label").map_err(&err)?,
            fields: serde_json::from_str(&fields).map_err(|e| corrupt(e.to_string()))?,
            sealed_secrets: r.try_get("sealed_secrets").map_err(&err)?,
            endpoint: r.try_get("endpoint").map_err(&err)?,
            created_at: parse_time(&created).map_err(corrupt)?,
            folder: r.try_get("folder").map_err(&err)?,
            id,
        })
    }
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| format!("bad time `{s}`: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn commit(docs: Vec<StagedDoc>, state: serde_json::Value) -> RunCommit {
        RunCommit {
            account_id: "acc".into(),
            account_identifier: Some("12345678".into()),
            run_id: new_id(),
            konnector: "test".into(),
            docs,
            deletes: Vec::new(),
            state,
            finished_at: Utc::now(),
        }
    }

    fn doc(key: &str, amount: u32) -> StagedDoc {
        StagedDoc::from_value(
            "io.cozy.bills",
            key.into(),
            None,
            &json!({"vendor": "V", "amount": amount}),
        )
    }

    #[tokio::test]
    async fn saving_twice_creates_nothing_and_changes_update() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("g.db")).await.unwrap();
        let c = store
            .commit_run(commit(vec![doc("a", 1), doc("b", 2)], json!({"cursor": 1})))
            .await
            .unwrap();
        assert_eq!(c["io.cozy.bills"].created, 2);
        let c = store
            .commit_run(commit(
                vec![doc("a", 1), doc("b", 3), doc("c", 4)],
                json!({"cursor": 2}),
            ))
            .await
            .unwrap();
        assert_eq!(
            c["io.cozy.bills"],
            super::super::Counts {
                created: 1,
                updated: 1,
                skipped: 1,
                deleted: 0
            }
        );
        let docs = store.list("io.cozy.bills", None, None, 100).await.unwrap();
        assert_eq!(docs.len(), 3);
        let b = docs.iter().find(|d| d.data["amount"] == json!(3)).unwrap();
        assert!(b.rev.starts_with("2-"));
        assert_eq!(b.data["cozyMetadata"]["sourceAccount"], "acc");
        assert_eq!(
            store.state("acc").await.unwrap().unwrap().state,
            json!({"cursor": 2})
        );
        assert!(
            store
                .find_id("acc", "io.cozy.bills", "c")
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .find_id("other", "io.cozy.bills", "c")
                .await
                .unwrap()
                .is_none()
        );
    }

    /// Schema 1 → 2: duplicate labels (the old race) get their id
    /// appended; accounts keep their old folder unless another account
    /// claimed it (`a:b` and `a_b` both sanitized to `a_b`).
    #[tokio::test]
    async fn a_schema_1_store_gets_unique_labels_and_own_folders() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.db");
        let store = SqliteStore::open(&path).await.unwrap();
        // Back to schema 1: no folder column, no unique indexes.
        for stmt in [
            "DROP INDEX accounts_folder",
            "DROP INDEX accounts_label",
            "ALTER TABLE accounts DROP COLUMN folder",
            "PRAGMA user_version = 1",
        ] {
            sqlx::query(stmt).execute(store.pool()).await.unwrap();
        }
        for (id, label, at) in [
            ("id-old-ab", "a:b", "2026-01-01T00:00:00Z"),
            ("id-new-ab", "a_b", "2026-01-02T00:00:00Z"),
            ("id-dup-1", "phone", "2026-01-03T00:00:00Z"),
            ("id-dup-2", "phone", "2026-01-04T00:00:00Z"),
        ] {
            sqlx::query("INSERT INTO accounts (id, konnector, label, fields, sealed_secrets, endpoint, created_at) VALUES (?, 'free-mobile', ?, '{}', x'00', NULL, ?)")
                .bind(id)
                .bind(label)
                .bind(at)
                .execute(store.pool())
                .await
                .unwrap();
        }
        store.pool().close().await;
        let store = SqliteStore::open(&path).await.unwrap();
        let labels: Vec<String> = store
            .list_accounts()
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.label)
            .collect();
        assert_eq!(labels, ["a:b", "a_b", "phone", "phone (id-dup)"]);
        let legacy = |a: &Account| {
            (
                format!(
                    "Free Mobile/{}",
                    crate::store::files::sanitize_name(&a.label)
                ),
                Account::default_folder("Free Mobile", &a.id),
            )
        };
        let done = store.assign_missing_folders(&legacy).await.unwrap();
        assert_eq!(done.len(), 4);
        let folder = |id: &str| {
            done.iter()
                .find(|(i, _)| i == id)
                .map(|(_, f)| f.clone())
                .unwrap()
        };
        assert_eq!(folder("id-old-ab"), "Free Mobile/a_b");
        assert_eq!(folder("id-new-ab"), "Free Mobile/id-new-ab");
        // Nothing left to assign, and the index refuses a shared folder.
        assert!(
            store
                .assign_missing_folders(&legacy)
                .await
                .unwrap()
                .is_empty()
        );
        let mut other = store.get_account("id-new-ab").await.unwrap().unwrap();
        other.folder = "Free Mobile/a_b".into();
        let err = store.put_account(&other).await.err().unwrap();
        assert!(
            err.message.contains("belongs to another account"),
            "{}",
            err.message
        );
    }

    /// Schema 3 stores documents without `cozyMetadata` and rebuilds it at
    /// read; a row written before keeps its own until it changes.
    #[tokio::test]
    async fn metadata_is_rebuilt_at_read_and_old_rows_keep_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("g.db")).await.unwrap();
        store
            .commit_run(commit(vec![doc("a", 1)], json!(null)))
            .await
            .unwrap();
        let raw: String = sqlx::query_scalar("SELECT data FROM documents WHERE dedup_key = 'a'")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert!(!raw.contains("cozyMetadata"), "{raw}");
        let listed = store.list("io.cozy.bills", None, None, 10).await.unwrap();
        let meta = &listed[0].data["cozyMetadata"];
        assert_eq!(meta["sourceAccount"], "acc");
        assert_eq!(meta["sourceAccountIdentifier"], "12345678");
        assert_eq!(meta["importedFrom"], "test");
        assert_eq!(meta["createdByApp"], "gleaner");
        assert_eq!(meta["createdAt"], meta["updatedAt"]);
        // Ids of new documents are 32 hex digits, in creation order.
        store
            .commit_run(commit(vec![doc("b", 1), doc("c", 1)], json!(null)))
            .await
            .unwrap();
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM documents WHERE dedup_key IN ('b', 'c') ORDER BY dedup_key",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        assert!(
            ids.iter()
                .all(|id| id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()))
        );
        assert!(ids[0] < ids[1], "{ids:?}");

        // A schema-2 row: its JSON holds its metadata.
        sqlx::query(
            "INSERT INTO documents (doctype, id, account_id, dedup_key, rev, content_hash, data, created_at, updated_at)
             VALUES ('io.cozy.bills', 'old', 'acc', 'old', 1, ?, ?, '2020-01-01T00:00:00+00:00', '2020-01-01T00:00:00+00:00')",
        )
        .bind(content_hash(r#"{"amount":7,"vendor":"V"}"#))
        .bind(r#"{"amount":7,"cozyMetadata":{"createdAt":"2020-01-01T00:00:00+00:00","importedFrom":"older"},"vendor":"V"}"#)
        .execute(store.pool())
        .await
        .unwrap();
        let c = store
            .commit_run(commit(vec![doc("old", 7)], json!(null)))
            .await
            .unwrap();
        assert_eq!(c["io.cozy.bills"].skipped, 1);
        let old = |docs: Vec<StoredDoc>| docs.into_iter().find(|d| d.id == "old").unwrap();
        let before = old(store.list("io.cozy.bills", None, None, 10).await.unwrap());
        assert_eq!(before.data["cozyMetadata"]["importedFrom"], "older");
        store
            .commit_run(commit(vec![doc("old", 8)], json!(null)))
            .await
            .unwrap();
        let after = old(store.list("io.cozy.bills", None, None, 10).await.unwrap());
        assert_eq!(after.data["cozyMetadata"]["importedFrom"], "test");
        assert_eq!(
            after.data["cozyMetadata"]["createdAt"],
            "2020-01-01T00:00:00+00:00"
        );
        assert!(after.rev.starts_with("2-"));
    }

    /// The commit's lookup probes the dedup index once per staged document
    /// (the staged rows are the outer loop), and the pending operations
    /// come from their partial index: neither walks the doctype.
    #[tokio::test]
    async fn lookups_use_their_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("g.db")).await.unwrap();
        let plan = |sql: String| {
            let store = store.clone();
            async move {
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                    .bind("io.cozy.bank.operations")
                    .bind("acc")
                    .bind(r#"[["k","h"]]"#)
                    .bind("2026-01-01")
                    .fetch_all(store.pool())
                    .await
                    .unwrap();
                rows.iter()
                    .map(|r| r.try_get::<String, _>("detail").unwrap())
                    .collect::<Vec<_>>()
                    .join(" | ")
            }
        };
        let lookup = plan(LOOKUP_SQL.to_owned()).await;
        assert!(
            lookup.contains(
                "USING INDEX documents_dedup (doctype=? AND account_id=? AND dedup_key=?)"
            ),
            "{lookup}"
        );
        let pending = plan(PENDING_SQL.to_owned()).await;
        assert!(
            pending.contains("USING INDEX documents_pending"),
            "{pending}"
        );
    }

    #[tokio::test]
    async fn a_corrupt_file_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.db");
        std::fs::write(&path, vec![b'x'; 4096]).unwrap();
        let err = SqliteStore::open(&path).await.err().unwrap();
        assert_eq!(err.code, crate::error::ErrorCode::StoreFailed);
        assert!(err.message.contains("g.db"), "{}", err.message);
    }

    /// A connection pool on `path` that does none of the store's opening
    /// (the file as another program, or an older Gleaner, sees it).
    async fn raw_pool(path: &Path) -> SqlitePool {
        let options = SqliteConnectOptions::from_str("sqlite://")
            .unwrap()
            .filename(path)
            .create_if_missing(true);
        SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap()
    }

    async fn user_version(pool: &SqlitePool) -> i64 {
        sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(pool)
            .await
            .unwrap()
    }

    async fn has_table(pool: &SqlitePool, name: &str) -> bool {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type IN ('table', 'index') AND name = ?",
        )
        .bind(name)
        .fetch_one(pool)
        .await
        .unwrap();
        n > 0
    }

    /// A store exactly as the first Gleaner wrote it (schema 1: no migrations
    /// table, no sessions, tokens nor vault meta tables, no folder, labels
    /// not unique) opens: the Rust upgrades bring it to schema 3, migration
    /// 0001 adds what it lacks and is recorded as sqlx records it, and
    /// nothing it held is lost.
    #[tokio::test]
    async fn a_store_from_before_migrations_is_upgraded_and_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.db");
        let pool = raw_pool(&path).await;
        for stmt in [
            // The schema 1 of the first Gleaner, as it created it.
            "CREATE TABLE documents (doctype TEXT NOT NULL, id TEXT NOT NULL, account_id TEXT NOT NULL,
                dedup_key TEXT NOT NULL, rev INTEGER NOT NULL, content_hash TEXT NOT NULL, data TEXT NOT NULL,
                created_at TEXT NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (doctype, id)) WITHOUT ROWID",
            "CREATE UNIQUE INDEX documents_dedup ON documents (doctype, account_id, dedup_key)",
            "CREATE TABLE konnector_state (account_id TEXT PRIMARY KEY, state TEXT NOT NULL,
                last_sync TEXT NOT NULL, last_run_id TEXT NOT NULL)",
            "CREATE TABLE accounts (id TEXT PRIMARY KEY, konnector TEXT NOT NULL, label TEXT NOT NULL,
                fields TEXT NOT NULL, sealed_secrets BLOB NOT NULL, endpoint TEXT, created_at TEXT NOT NULL)",
            "INSERT INTO accounts VALUES
                ('id-dup-1', 'free-mobile', 'phone', '{}', x'00', NULL, '2026-01-03T00:00:00Z'),
                ('id-dup-2', 'free-mobile', 'phone', '{}', x'00', NULL, '2026-01-04T00:00:00Z')",
            r#"INSERT INTO documents VALUES ('io.cozy.bills', 'doc-1', 'id-dup-1', 'k1', 1, 'h1',
                '{"amount":7,"cozyMetadata":{"createdByApp":"gleaner"}}',
                '2026-01-05T00:00:00Z', '2026-01-05T00:00:00Z')"#,
            r#"INSERT INTO konnector_state VALUES ('id-dup-1', '{"cursor":1}', '2026-01-05T00:00:00Z', 'run-1')"#,
            "PRAGMA user_version = 1",
        ] {
            sqlx::query(stmt)
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;

        let store = SqliteStore::open(&path).await.unwrap();
        let labels: Vec<String> = store
            .list_accounts()
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.label)
            .collect();
        assert_eq!(labels, ["phone", "phone (id-dup)"]);
        let docs = store.list("io.cozy.bills", None, None, 10).await.unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].data["amount"], json!(7));
        assert_eq!(
            store.state("id-dup-1").await.unwrap().unwrap().state,
            json!({"cursor": 1})
        );
        store.pool().close().await;

        let pool = raw_pool(&path).await;
        assert_eq!(user_version(&pool).await, LEGACY_SCHEMA_VERSION);
        for name in [
            "sessions",
            "oauth_tokens",
            "vault_meta",
            "documents_pending",
            "accounts_label",
            "accounts_folder",
        ] {
            assert!(has_table(&pool, name).await, "{name} was not created");
        }
        let recorded: Vec<(i64, bool, Vec<u8>)> = sqlx::query_as(
            "SELECT version, success, checksum FROM gleaner_store_migrations ORDER BY version",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let expected: Vec<(i64, bool, Vec<u8>)> = migrator()
            .iter()
            .map(|m| (m.version, true, m.checksum.to_vec()))
            .collect();
        assert_eq!(recorded, expected);
        assert_eq!(recorded[0].0, 1);
        pool.close().await;

        // Opening again is a no-op that sqlx's migrator validates.
        let again = SqliteStore::open(&path).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM gleaner_store_migrations")
            .fetch_one(again.pool())
            .await
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(again.list_accounts().await.unwrap().len(), 2);
    }

    /// A store holding a migration this build does not know (a newer
    /// Gleaner's) is refused with a message naming the file and the
    /// migration, and nothing is written to it: neither the Rust upgrades
    /// (`user_version` stays 2) nor migration 0001 (the table dropped
    /// stays dropped).
    #[tokio::test]
    async fn a_store_with_an_unknown_migration_is_refused_and_left_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.db");
        let store = SqliteStore::open(&path).await.unwrap();
        store.pool().close().await;
        let pool = raw_pool(&path).await;
        for stmt in [
            "INSERT INTO gleaner_store_migrations (version, description, success, checksum, execution_time)
             VALUES (9999, 'from the future', TRUE, x'00', 1)",
            "DROP TABLE vault_meta",
            "PRAGMA user_version = 2",
        ] {
            sqlx::query(stmt).execute(&pool).await.unwrap();
        }
        pool.close().await;

        let err = SqliteStore::open(&path).await.err().unwrap();
        assert_eq!(err.code, ErrorCode::StoreFailed);
        for part in ["g.db", "9999", "newer than this Gleaner", "upgrade Gleaner"] {
            assert!(err.message.contains(part), "{part}: {}", err.message);
        }

        let pool = raw_pool(&path).await;
        let versions: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM gleaner_store_migrations ORDER BY version")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(versions, [1, 9999]);
        assert!(!has_table(&pool, "vault_meta").await);
        assert_eq!(user_version(&pool).await, 2);
    }

    /// Two openings of one new file at once (two processes starting
    /// together) both succeed, and the migration is applied once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_openings_of_a_new_file_at_once_both_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.db");
        let (a, b) = tokio::join!(SqliteStore::open(&path), SqliteStore::open(&path));
        let (a, b) = (a.unwrap(), b.unwrap());
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM gleaner_store_migrations")
            .fetch_one(a.pool())
            .await
            .unwrap();
        assert_eq!(n, 1);
        assert!(b.list_accounts().await.unwrap().is_empty());
    }
}
