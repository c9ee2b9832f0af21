-- Tollgate's two database roles (README, "Running in production"). A psql script; safe to run again.
--
--   owner    owns the schema. `manage.py migrate` runs as it, and so does this script (or a superuser).
--            Default: the user running the script.
--   app_role what web, worker and beat connect as. It owns nothing, so it cannot ALTER TABLE ... DISABLE
--            TRIGGER, and the append-only triggers ignore maintenance mode for it (governance migration 0009).
--            It gets SELECT, INSERT on the append-only tables, SELECT, INSERT, UPDATE, DELETE on the others,
--            USAGE, SELECT on the sequences, and the same (by ALTER DEFAULT PRIVILEGES) on the tables and
--            sequences later migrations create. Default: tollgate_app.
--
-- Run it after every `migrate` (docker-compose's db-roles service and .ci/run do), in the Tollgate database:
--
--   psql "postgres://tollgate@db.internal:5432/tollgate" -X -v ON_ERROR_STOP=1 \
--       [-v owner=tollgate] [-v app_role=tollgate_app] [-v app_password_file=/etc/tollgate/app_database_password] \
--       -f deploy/db-roles.sql
--
-- Without app_password_file the runtime role has no password (for trust or peer authentication, as in CI).
-- The runner needs CREATEROLE the first time (to create the runtime role); PostgreSQL 15 or later.
--
-- Adding an append-only table: make it append-only in its migration with governance.audit_db.append_only(),
-- whose triggers call tollgate_<name>_immutable() and which revokes UPDATE, DELETE and TRUNCATE on it from
-- every role but the owner, so the runtime role holds SELECT, INSERT on it as soon as that migration ran.
-- This script finds the append-only tables by those triggers, so there is nothing to add here.

\set ON_ERROR_STOP on
\if :{?owner}
\else
\set owner :USER
\endif
\if :{?app_role}
\else
\set app_role tollgate_app
\endif

BEGIN;

SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_role') AS create_app_role \gset
\if :create_app_role
CREATE ROLE :"app_role" LOGIN;
\else
ALTER ROLE :"app_role" LOGIN;
\endif
\if :{?app_password_file}
\set app_password `cat :'app_password_file'`
SELECT :'app_password' = '' AS empty_password \gset
\if :empty_password
DO $$ BEGIN RAISE EXCEPTION 'app_password_file names an empty or unreadable file'; END $$;
\endif
ALTER ROLE :"app_role" PASSWORD :'app_password';
\unset app_password
\endif

-- Nobody but the owner creates objects in the schema (PostgreSQL 15's default; older databases let PUBLIC).
SELECT NOT has_schema_privilege(:'owner', 'public', 'CREATE') AS owner_needs_create \gset
\if :owner_needs_create
GRANT USAGE, CREATE ON SCHEMA public TO :"owner";
\endif
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE CREATE ON SCHEMA public FROM :"app_role";
GRANT CONNECT ON DATABASE :"DBNAME" TO :"app_role";
GRANT USAGE ON SCHEMA public TO :"app_role";

-- Every table and sequence there is now, from scratch, so the result does not depend on earlier runs.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM :"app_role";
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM :"app_role";
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app_role";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"app_role";

-- The append-only tables (audit events, lineage events, any later one): read and append, nothing else.
-- And the migration history: read only, so the runtime role cannot mark a migration applied.
SELECT format('REVOKE ALL ON TABLE %s FROM %I', c.oid::regclass, :'app_role'),
       format('GRANT SELECT, INSERT ON TABLE %s TO %I', c.oid::regclass, :'app_role')
FROM pg_class c
WHERE c.relnamespace = 'public'::regnamespace
  AND EXISTS (
      SELECT FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
      WHERE t.tgrelid = c.oid AND NOT t.tgisinternal AND p.proname LIKE 'tollgate\_%\_immutable'
  )
ORDER BY c.relname
\gexec
SELECT format('REVOKE INSERT, UPDATE, DELETE ON TABLE %s FROM %I', c.oid::regclass, :'app_role')
FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relname = 'django_migrations'
\gexec

-- Tables and sequences that later migrations create (as the owner) get the same.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO :"app_role";

-- Refuse to finish with a runtime role that could switch immutability off.
SELECT set_config('tollgate.db_roles_owner', :'owner', true) AS checked_owner,
       set_config('tollgate.db_roles_app', :'app_role', true) AS checked_app_role \gset
DO $$
DECLARE
    owner_name text := current_setting('tollgate.db_roles_owner');
    app_name text := current_setting('tollgate.db_roles_app');
    app pg_roles%ROWTYPE;
    found text;
BEGIN
    SELECT * INTO app FROM pg_roles WHERE rolname = app_name;
    IF app.rolsuper OR app.rolcreaterole OR app.rolcreatedb OR app.rolreplication OR app.rolbypassrls THEN
        RAISE EXCEPTION 'role % must not be a superuser or have CREATEROLE, CREATEDB, REPLICATION or BYPASSRLS',
            app_name;
    END IF;
    IF pg_has_role(app_name, owner_name, 'MEMBER') THEN
        RAISE EXCEPTION 'role % must not be a member of the owner %', app_name, owner_name;
    END IF;
    SELECT string_agg(DISTINCT d.classid::regclass::text, ', ') INTO found
    FROM pg_shdepend d WHERE d.refclassid = 'pg_authid'::regclass AND d.refobjid = app.oid AND d.deptype = 'o';
    IF found IS NOT NULL THEN
        RAISE EXCEPTION 'role % must own nothing; it owns objects in %', app_name, found;
    END IF;
    SELECT string_agg(c.relname || ' (' || pg_get_userbyid(c.relowner) || ')', ', ') INTO found
    FROM pg_class c
    WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
      AND c.relowner <> owner_name::regrole;
    IF found IS NOT NULL THEN
        RAISE EXCEPTION 'tables not owned by %: %; run migrate as the owner, or pass -v owner=...', owner_name, found;
    END IF;
    SELECT string_agg(c.relname, ', ') INTO found
    FROM pg_class c
    WHERE c.relnamespace = 'public'::regnamespace
      AND EXISTS (
          SELECT FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
          WHERE t.tgrelid = c.oid AND NOT t.tgisinternal AND p.proname LIKE 'tollgate\_%\_immutable'
      )
      AND (has_table_privilege(app_name, c.oid, 'UPDATE') OR has_table_privilege(app_name, c.oid, 'DELETE')
           OR has_table_privilege(app_name, c.oid, 'TRUNCATE'));
    IF found IS NOT NULL THEN
        RAISE EXCEPTION 'role % can still change append-only tables (through PUBLIC?): %', app_name, found;
    END IF;
END
$$;

COMMIT;
