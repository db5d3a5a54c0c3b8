-- The job queue of Gleaner's scheduler on PostgreSQL (PgQueue), beside the
-- store's tables (accounts, konnector_state) in the same database. Applied by
-- sqlx's migrator with its own table, gleaner_queue_migrations.
--
-- The same tables as the SQLite queue (scheduler/src/queue/schema.rs), with
-- PostgreSQL's types: times are TIMESTAMPTZ, flags BOOLEAN, the report JSONB.
-- Every time is written by Gleaner from its clock, never now() of the server.

-- One row per account: its cron override, its next automatic run, and its
-- current state (Cozy's current_state), block and pause.
CREATE TABLE sched_triggers (
    account_id TEXT PRIMARY KEY,
    konnector TEXT NOT NULL,
    cron TEXT,
    next_run_at TIMESTAMPTZ NOT NULL,
    status TEXT NOT NULL DEFAULT 'new',
    last_execution TIMESTAMPTZ,
    last_success TIMESTAMPTZ,
    last_failure TIMESTAMPTZ,
    last_manual_execution TIMESTAMPTZ,
    last_error_code TEXT,
    last_error_message TEXT,
    blocked_code TEXT,
    updated_at TIMESTAMPTZ NOT NULL,
    paused BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX sched_triggers_due ON sched_triggers (next_run_at);

-- One row per execution request; a retry is a new row (each row ends once).
CREATE TABLE sched_jobs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id TEXT NOT NULL,
    konnector TEXT NOT NULL,
    trigger TEXT NOT NULL,
    manual BOOLEAN NOT NULL,
    attempt INTEGER NOT NULL,
    state TEXT NOT NULL,
    run_id TEXT NOT NULL,
    queued_at TIMESTAMPTZ NOT NULL,
    not_before TIMESTAMPTZ NOT NULL,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    lease_owner TEXT,
    lease_expires_at TIMESTAMPTZ,
    recoveries INTEGER NOT NULL DEFAULT 0,
    error_code TEXT,
    error_message TEXT,
    report JSONB,
    twofa_kind TEXT,
    twofa_hint TEXT,
    twofa_deadline TIMESTAMPTZ
);
-- One run per account at any moment, for the whole fleet.
CREATE UNIQUE INDEX sched_jobs_one_active ON sched_jobs (account_id)
    WHERE state IN ('running', 'awaiting_user');
-- A missed night and a manual request do not pile up.
CREATE UNIQUE INDEX sched_jobs_one_queued ON sched_jobs (account_id)
    WHERE state = 'queued';
CREATE INDEX sched_jobs_by_state ON sched_jobs (state, not_before);
CREATE INDEX sched_jobs_by_account ON sched_jobs (account_id, id);
CREATE INDEX sched_jobs_by_finish ON sched_jobs (finished_at);
-- Counting a konnector's active runs inside a claim, and a worker's leases.
CREATE INDEX sched_jobs_active_by_konnector ON sched_jobs (konnector)
    WHERE state IN ('running', 'awaiting_user');
CREATE INDEX sched_jobs_active_by_owner ON sched_jobs (lease_owner)
    WHERE state IN ('running', 'awaiting_user');

-- A code given with `gleaner 2fa`, sealed by the vault, until the waiting
-- run takes it.
CREATE TABLE sched_twofa_answers (
    job_id BIGINT PRIMARY KEY,
    sealed BYTEA NOT NULL,
    given_at TIMESTAMPTZ NOT NULL
);

-- The workers of the fleet: each daemon beats every lease/3.
CREATE TABLE sched_workers (
    worker_id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    last_beat TIMESTAMPTZ NOT NULL,
    in_flight INTEGER NOT NULL
);
