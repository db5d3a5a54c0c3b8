-- The store's tables on PostgreSQL: the same rows as the embedded SQLite
-- store (framework/src/store/sqlite.rs, schema 3), with PostgreSQL's types:
-- documents as jsonb, times as timestamptz, sealed records as bytea.
-- Applied by sqlx's migrator (table gleaner_store_migrations); never edit
-- a migration that shipped, add the next one.
--
-- Ids, keys and labels compare as bytes (COLLATE "C"), as SQLite's BINARY
-- does: paging by id, key order and label uniqueness do not depend on the
-- database's locale.

CREATE TABLE accounts (
    id TEXT COLLATE "C" PRIMARY KEY,
    konnector TEXT NOT NULL,
    label TEXT COLLATE "C" NOT NULL,
    -- The non-secret fields, a JSON object of strings.
    fields JSONB NOT NULL,
    -- Sealed by the vault with the account id as associated data.
    sealed_secrets BYTEA NOT NULL,
    endpoint TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    folder TEXT COLLATE "C" NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX accounts_label ON accounts (label);
CREATE UNIQUE INDEX accounts_folder ON accounts (folder) WHERE folder <> '';

CREATE TABLE documents (
    doctype TEXT COLLATE "C" NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    account_id TEXT COLLATE "C" NOT NULL,
    dedup_key TEXT COLLATE "C" NOT NULL,
    rev BIGINT NOT NULL,
    content_hash TEXT NOT NULL,
    -- The document as staged: no _id, _rev or cozyMetadata (rebuilt at
    -- read from the columns below).
    data JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    imported_from TEXT,
    source_identifier TEXT,
    created_version TEXT,
    updated_version TEXT,
    PRIMARY KEY (doctype, id)
);
-- Deduplication: one document per (doctype, account, key), enforced by the
-- database whatever the number of workers writing.
CREATE UNIQUE INDEX documents_dedup ON documents (doctype, account_id, dedup_key);
-- Pending bank operations by account and bank account (crate::bank).
CREATE INDEX documents_pending ON documents (account_id, (data ->> 'vendorAccountId'))
    WHERE doctype = 'io.cozy.bank.operations' AND (data -> 'isComing') = 'true'::jsonb;
CREATE INDEX documents_by_account ON documents (account_id);

CREATE TABLE konnector_state (
    account_id TEXT PRIMARY KEY,
    state JSONB NOT NULL,
    last_sync TIMESTAMPTZ NOT NULL,
    last_run_id TEXT NOT NULL
);

-- OAuth tokens, sealed under "{account_id}/oauth".
CREATE TABLE oauth_tokens (
    account_id TEXT PRIMARY KEY,
    sealed BYTEA NOT NULL,
    expires_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL
);

-- Saved login sessions, sealed under "{account_id}/session".
CREATE TABLE sessions (
    account_id TEXT PRIMARY KEY,
    sealed BYTEA NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- The id of the vault key the sealed records use.
CREATE TABLE vault_meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
