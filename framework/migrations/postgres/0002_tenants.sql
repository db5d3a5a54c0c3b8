-- Tenants: the people or households whose data one installation keeps
-- apart (framework/src/tenant.rs). Every row of the store's tenant tables
-- names its tenant; rows written before this migration belong to the
-- default tenant.
--
-- Two walls: the code filters every query on tenant_id, and row-level
-- security is the second one. A tenant's work runs in a transaction that
-- takes the role gleaner_tenant and sets gleaner.tenant
-- (store::postgres::tenant::begin_scoped); the policies below let that role
-- see and write only the rows of the tenant so named. RLS is ENABLEd, not
-- FORCEd: the tables' owner (the connecting user, un-scoped) is the
-- installation's administrative path (migrations, `gleaner migrate`,
-- removing a tenant, recovery) and sees every row.
--
-- The role is cluster-wide: creating it needs CREATEROLE (or superuser).
-- Without it, an administrator creates it first (CREATE ROLE gleaner_tenant
-- NOLOGIN) and grants it to the user Gleaner connects as (GRANT
-- gleaner_tenant TO <user>); both steps below are then no-ops. The blocks
-- tolerate a concurrent creator (several databases of one cluster
-- migrating at once; the scheduler's queue migration has the same block).

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gleaner_tenant') THEN
        CREATE ROLE gleaner_tenant NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

-- A superuser may take any role; anyone else needs to be a member of it to
-- SET ROLE (begin_scoped).
DO $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       AND NOT pg_has_role(current_user, 'gleaner_tenant', 'MEMBER') THEN
        EXECUTE format('GRANT gleaner_tenant TO %I', current_user);
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

CREATE TABLE tenants (
    id TEXT COLLATE "C" PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL
);
INSERT INTO tenants (id, created_at) VALUES ('default', now());

-- Existing rows belong to the default tenant; the default then goes, so
-- that every insert names its tenant.
ALTER TABLE accounts ADD COLUMN tenant_id TEXT COLLATE "C" NOT NULL DEFAULT 'default';
ALTER TABLE accounts ALTER COLUMN tenant_id DROP DEFAULT;
ALTER TABLE documents ADD COLUMN tenant_id TEXT COLLATE "C" NOT NULL DEFAULT 'default';
ALTER TABLE documents ALTER COLUMN tenant_id DROP DEFAULT;
ALTER TABLE konnector_state ADD COLUMN tenant_id TEXT COLLATE "C" NOT NULL DEFAULT 'default';
ALTER TABLE konnector_state ALTER COLUMN tenant_id DROP DEFAULT;
ALTER TABLE oauth_tokens ADD COLUMN tenant_id TEXT COLLATE "C" NOT NULL DEFAULT 'default';
ALTER TABLE oauth_tokens ALTER COLUMN tenant_id DROP DEFAULT;
ALTER TABLE sessions ADD COLUMN tenant_id TEXT COLLATE "C" NOT NULL DEFAULT 'default';
ALTER TABLE sessions ALTER COLUMN tenant_id DROP DEFAULT;

-- Every row names a tenant that exists: a run still committing while its
-- tenant is removed fails (or makes the removal fail and roll back) rather
-- than leave rows of a tenant that is gone.
ALTER TABLE accounts ADD CONSTRAINT accounts_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id);
ALTER TABLE documents ADD CONSTRAINT documents_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id);
ALTER TABLE konnector_state ADD CONSTRAINT konnector_state_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id);
ALTER TABLE oauth_tokens ADD CONSTRAINT oauth_tokens_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id);
ALTER TABLE sessions ADD CONSTRAINT sessions_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id);

-- Labels and files folders are unique within a tenant (two people may both
-- have an account labelled `bank`). The constraint names stay: the store
-- reads them to word its errors.
DROP INDEX accounts_label;
CREATE UNIQUE INDEX accounts_label ON accounts (tenant_id, label);
DROP INDEX accounts_folder;
CREATE UNIQUE INDEX accounts_folder ON accounts (tenant_id, folder) WHERE folder <> '';
CREATE INDEX accounts_by_tenant ON accounts (tenant_id, created_at, id);
-- A tenant's documents of a doctype in id order (listing, paging, views,
-- the linking pass). The dedup index stays as it is: account ids are
-- random and unique across tenants.
CREATE INDEX documents_by_tenant ON documents (tenant_id, doctype, id);
-- Removing a tenant.
CREATE INDEX konnector_state_by_tenant ON konnector_state (tenant_id);
CREATE INDEX oauth_tokens_by_tenant ON oauth_tokens (tenant_id);
CREATE INDEX sessions_by_tenant ON sessions (tenant_id);

-- The second wall.
ALTER TABLE accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE konnector_state ENABLE ROW LEVEL SECURITY;
ALTER TABLE oauth_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;

CREATE POLICY tenant_wall ON accounts TO gleaner_tenant
    USING (tenant_id = current_setting('gleaner.tenant', true))
    WITH CHECK (tenant_id = current_setting('gleaner.tenant', true));
CREATE POLICY tenant_wall ON documents TO gleaner_tenant
    USING (tenant_id = current_setting('gleaner.tenant', true))
    WITH CHECK (tenant_id = current_setting('gleaner.tenant', true));
CREATE POLICY tenant_wall ON konnector_state TO gleaner_tenant
    USING (tenant_id = current_setting('gleaner.tenant', true))
    WITH CHECK (tenant_id = current_setting('gleaner.tenant', true));
CREATE POLICY tenant_wall ON oauth_tokens TO gleaner_tenant
    USING (tenant_id = current_setting('gleaner.tenant', true))
    WITH CHECK (tenant_id = current_setting('gleaner.tenant', true));
CREATE POLICY tenant_wall ON sessions TO gleaner_tenant
    USING (tenant_id = current_setting('gleaner.tenant', true))
    WITH CHECK (tenant_id = current_setting('gleaner.tenant', true));

GRANT SELECT, INSERT, UPDATE, DELETE ON accounts, documents, konnector_state, oauth_tokens, sessions
    TO gleaner_tenant;
GRANT SELECT ON vault_meta, tenants TO gleaner_tenant;
