-- Tenants in the job queue: every trigger, job and second-factor answer
-- belongs to one tenant (a person or household), like the store's rows.
--
-- Two walls keep a tenant's rows apart:
-- - the code: a queue opened for one tenant (PgQueue::for_tenant) names
--   `tenant_id = $n` in every statement and writes it on every insert;
-- - row-level security: the same queue runs inside a transaction that
--   takes the role gleaner_tenant and sets gleaner.tenant (the store's
--   begin_scoped); the policies below let that role see and write only the
--   rows of the tenant so named.
-- RLS is ENABLEd, not FORCEd: the connecting user's own, unscoped
-- transactions are the fleet's path (the daemon claims jobs of every
-- tenant, and a konnector's limit is counted across all of them).
--
-- The existing rows (an installation from before tenants) belong to the
-- default tenant; afterwards every insert names its tenant (no default).

-- The role is cluster-wide: create it once, even when several databases
-- of one server migrate at the same time (the store's migration does the
-- same).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gleaner_tenant') THEN
        CREATE ROLE gleaner_tenant NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

ALTER TABLE sched_triggers ADD COLUMN tenant_id TEXT COLLATE "C" NOT NULL DEFAULT 'default';
ALTER TABLE sched_triggers ALTER COLUMN tenant_id DROP DEFAULT;
ALTER TABLE sched_jobs ADD COLUMN tenant_id TEXT COLLATE "C" NOT NULL DEFAULT 'default';
ALTER TABLE sched_jobs ALTER COLUMN tenant_id DROP DEFAULT;
ALTER TABLE sched_twofa_answers ADD COLUMN tenant_id TEXT COLLATE "C" NOT NULL DEFAULT 'default';
ALTER TABLE sched_twofa_answers ALTER COLUMN tenant_id DROP DEFAULT;

-- A tenant's listings (`gleaner schedule`, `gleaner jobs --tenant`), its
-- claims, and the removal of a tenant.
CREATE INDEX sched_triggers_by_tenant ON sched_triggers (tenant_id, account_id);
CREATE INDEX sched_jobs_by_tenant ON sched_jobs (tenant_id, id);
CREATE INDEX sched_jobs_queued_by_tenant ON sched_jobs (tenant_id, not_before)
    WHERE state = 'queued';

ALTER TABLE sched_triggers ENABLE ROW LEVEL SECURITY;
ALTER TABLE sched_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE sched_twofa_answers ENABLE ROW LEVEL SECURITY;

CREATE POLICY tenant_wall ON sched_triggers TO gleaner_tenant
    USING (tenant_id = current_setting('gleaner.tenant', true))
    WITH CHECK (tenant_id = current_setting('gleaner.tenant', true));
CREATE POLICY tenant_wall ON sched_jobs TO gleaner_tenant
    USING (tenant_id = current_setting('gleaner.tenant', true))
    WITH CHECK (tenant_id = current_setting('gleaner.tenant', true));
CREATE POLICY tenant_wall ON sched_twofa_answers TO gleaner_tenant
    USING (tenant_id = current_setting('gleaner.tenant', true))
    WITH CHECK (tenant_id = current_setting('gleaner.tenant', true));

GRANT SELECT, INSERT, UPDATE, DELETE ON sched_triggers, sched_jobs, sched_twofa_answers
    TO gleaner_tenant;
-- `gleaner status --tenant` lists the fleet's workers (no tenant's data).
GRANT SELECT ON sched_workers TO gleaner_tenant;
-- sched_jobs.id is an identity column: inserting as gleaner_tenant draws
-- from its sequence.
DO $$
DECLARE
    seq TEXT := pg_get_serial_sequence('sched_jobs', 'id');
BEGIN
    IF seq IS NOT NULL THEN
        EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE %s TO gleaner_tenant', seq);
    END IF;
END
$$;
