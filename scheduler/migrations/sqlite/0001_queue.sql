-- The job queue of Gleaner's scheduler in the store's SQLite file (Queue,
-- scheduler/src/queue/), beside the store's tables. Applied by sqlx's
-- migrator inside the queue's opening BEGIN IMMEDIATE transaction, recorded
-- in gleaner_queue_migrations (the name PostgreSQL's queue uses; the
-- store's migrations are in gleaner_store_migrations). Never edit a
-- migration that shipped: add the next one.
--
-- Every statement is idempotent (IF NOT EXISTS) on purpose: a queue created
-- by a Gleaner from before migrations already has these tables (its
-- `paused` column added by the Rust upgrade that runs just before, in the
-- same transaction); applying 0001 to it changes nothing but records the
-- migration.

-- One row per account: its cron override, its next automatic run, and its
-- current state (Cozy's current_state), block and pause.
CREATE TABLE IF NOT EXISTS sched_triggers (
    account_id TEXT PRIMARY KEY,
    konnector TEXT NOT NULL,
    cron TEXT,
    next_run_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'new',
    last_execution TEXT,
    last_success TEXT,
    last_failure TEXT,
    last_manual_execution TEXT,
    last_error_code TEXT,
    last_error_message TEXT,
    blocked_code TEXT,
    updated_at TEXT NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS sched_triggers_due ON sched_triggers (next_run_at);

-- One row per execution request; a retry is a new row, so each row ends once.
CREATE TABLE IF NOT EXISTS sched_jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT NOT NULL,
    konnector TEXT NOT NULL,
    trigger TEXT NOT NULL,
    manual INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    state TEXT NOT NULL,
    run_id TEXT NOT NULL,
    queued_at TEXT NOT NULL,
    not_before TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    lease_owner TEXT,
    lease_expires_at TEXT,
    recoveries INTEGER NOT NULL DEFAULT 0,
    error_code TEXT,
    error_message TEXT,
    report TEXT,
    twofa_kind TEXT,
    twofa_hint TEXT,
    twofa_deadline TEXT
);
-- One run per account at any moment, and no pile of queued jobs.
CREATE UNIQUE INDEX IF NOT EXISTS sched_jobs_one_active ON sched_jobs (account_id)
    WHERE state IN ('running', 'awaiting_user');
CREATE UNIQUE INDEX IF NOT EXISTS sched_jobs_one_queued ON sched_jobs (account_id)
    WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS sched_jobs_by_state ON sched_jobs (state, not_before);
CREATE INDEX IF NOT EXISTS sched_jobs_by_account ON sched_jobs (account_id, id);
CREATE INDEX IF NOT EXISTS sched_jobs_by_finish ON sched_jobs (finished_at);

-- A second-factor code given with `gleaner 2fa`, sealed by the vault, until
-- the waiting run takes it.
CREATE TABLE IF NOT EXISTS sched_twofa_answers (
    job_id INTEGER PRIMARY KEY,
    sealed BLOB NOT NULL,
    given_at TEXT NOT NULL
);

-- One row per daemon: its last heartbeat and its runs in flight.
CREATE TABLE IF NOT EXISTS sched_workers (
    worker_id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    started_at TEXT NOT NULL,
    last_beat TEXT NOT NULL,
    in_flight INTEGER NOT NULL
);
