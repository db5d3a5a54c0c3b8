-- The embedded store's tables (SqliteStore, framework/src/store/sqlite.rs):
-- the schema that `PRAGMA user_version` 3 named before the store used
-- migrations. Applied by sqlx's migrator inside the opening BEGIN IMMEDIATE
-- transaction, recorded in gleaner_store_migrations (the name PostgreSQL's
-- store uses; the queue's tables in the same file keep their own,
-- gleaner_queue_migrations). Never edit a migration that shipped: add the
-- next one.
--
-- Every statement is idempotent (IF NOT EXISTS) on purpose: a store
-- created by a Gleaner from before migrations already has these tables
-- (brought to schema 3 by the Rust upgrades that run just before this
-- migration, in the same transaction); applying 0001 to it changes nothing
-- but creates what a schema-1 store may lack (sessions, OAuth tokens, vault
-- meta, the pending index were added without a version bump) and records
-- the migration.

-- Documents as konnectors stage them; `cozyMetadata` is rebuilt at read
-- from the row's columns (created_at, updated_at, account_id and the last
-- four). The last four columns come last, as in a store upgraded in place.
CREATE TABLE IF NOT EXISTS documents (
    doctype TEXT NOT NULL,
    id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    rev INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    imported_from TEXT,
    source_identifier TEXT,
    created_version TEXT,
    updated_version TEXT,
    PRIMARY KEY (doctype, id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS documents_dedup ON documents (doctype, account_id, dedup_key);
-- Pending bank operations by account: the candidates of the pending-to-booked
-- matching (crate::bank), found without reading the booked ones. Queries
-- spell these terms exactly so that the planner can use the index.
CREATE INDEX IF NOT EXISTS documents_pending ON documents (account_id, json_extract(data, '$.vendorAccountId'))
    WHERE doctype = 'io.cozy.bank.operations' AND json_extract(data, '$.isComing') = 1;

CREATE TABLE IF NOT EXISTS konnector_state (
    account_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    last_sync TEXT NOT NULL,
    last_run_id TEXT NOT NULL
);

-- Accounts: unique labels, and a files folder of their own ('' until
-- assign_missing_folders gives an upgraded account its old one).
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY,
    konnector TEXT NOT NULL,
    label TEXT NOT NULL,
    fields TEXT NOT NULL,
    sealed_secrets BLOB NOT NULL,
    endpoint TEXT,
    created_at TEXT NOT NULL,
    folder TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS accounts_label ON accounts (label);
CREATE UNIQUE INDEX IF NOT EXISTS accounts_folder ON accounts (folder) WHERE folder != '';

-- OAuth tokens, sealed by the vault under "{account_id}/oauth"
-- (see framework::oauth::tokens).
CREATE TABLE IF NOT EXISTS oauth_tokens (
    account_id TEXT PRIMARY KEY,
    sealed BLOB NOT NULL,
    expires_at TEXT,
    updated_at TEXT NOT NULL
);

-- Saved login sessions, sealed by the vault.
CREATE TABLE IF NOT EXISTS sessions (
    account_id TEXT PRIMARY KEY,
    sealed BLOB NOT NULL,
    expires_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- The id of the vault key the records are sealed with.
CREATE TABLE IF NOT EXISTS vault_meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
