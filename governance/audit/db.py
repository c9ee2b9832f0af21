"""Maintenance mode for the audit table's append-only triggers (migration 0003).

Nothing in the application enters it. The test suite's database flush does (Django empties every table
between transactional tests), and so would an operator's deliberate, documented maintenance. On PostgreSQL
it counts only for the tables' owner (or a superuser), never for the role the processes connect as.
"""

import contextlib
import threading

from django.db import connection as default_connection
from django.db import migrations
from django.db.backends.signals import connection_created
from django.dispatch import receiver

_state = threading.local()


def _sqlite_flag() -> int:
    return 1 if getattr(_state, "maintenance", False) else 0


@receiver(connection_created)
def register_sqlite_function(sender, connection, **kwargs):
    if connection.vendor == "sqlite":
        connection.connection.create_function("tollgate_audit_maintenance", 0, _sqlite_flag, deterministic=False)


@contextlib.contextmanager
def audit_maintenance(connection=None):
    """Let UPDATE, DELETE and TRUNCATE of audit events through on this connection, for this block."""
    connection = connection or default_connection
    _state.maintenance = True
    try:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('tollgate.audit_maintenance', 'on', false)")
        yield
    finally:
        _state.maintenance = False
        if connection.vendor == "postgresql" and connection.connection is not None:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT set_config('tollgate.audit_maintenance', 'off', false)")
            except Exception:  # noqa: BLE001 - a broken connection is discarded anyway
                connection.close()


def append_only(table: str, *, name: str, label: str):
    """A migration operation making ``table`` append-only: the database refuses UPDATE, DELETE and (on
    PostgreSQL) TRUNCATE of its rows except in the maintenance mode above, which PostgreSQL honours only for
    roles holding the table owner's privileges (migration 0009). On PostgreSQL it also revokes UPDATE,
    DELETE and TRUNCATE from every role but the owner, so the runtime role's default privileges
    (deploy/db-roles.sql) leave it SELECT and INSERT on the new table from the migration on. ``name`` names
    the trigger function (``tollgate_<name>_immutable``, by which deploy/db-roles.sql finds the append-only
    tables) and the triggers; ``label`` says in the error what the rows are."""
    postgres_up = f"""
CREATE OR REPLACE FUNCTION tollgate_{name}_immutable() RETURNS trigger AS $$
BEGIN
    IF coalesce(pg_catalog.current_setting('tollgate.audit_maintenance', true), '') = 'on'
        AND pg_catalog.pg_has_role(current_user,
            (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = TG_RELID), 'USAGE') THEN
        IF TG_LEVEL = 'ROW' THEN RETURN coalesce(NEW, OLD); END IF;
        RETURN NULL;
    END IF;
    RAISE EXCEPTION '{label} are append-only: % refused', TG_OP USING ERRCODE = 'P0001';
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER {name}_append_only_rows BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION tollgate_{name}_immutable();
CREATE TRIGGER {name}_append_only_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION tollgate_{name}_immutable();
DO $$
DECLARE
    grantee text;
BEGIN
    FOR grantee IN
        SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                             ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END
        FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
        WHERE c.oid = '{table}'::pg_catalog.regclass AND a.grantee <> c.relowner
          AND a.privilege_type IN ('UPDATE', 'DELETE', 'TRUNCATE')
    LOOP
        EXECUTE 'REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM ' || grantee;
    END LOOP;
END
$$;
"""
    postgres_down = f"""
DROP TRIGGER IF EXISTS {name}_append_only_rows ON {table};
DROP TRIGGER IF EXISTS {name}_append_only_truncate ON {table};
DROP FUNCTION IF EXISTS tollgate_{name}_immutable();
"""
    sqlite_up = [
        f"""CREATE TRIGGER {name}_append_only_{verb.lower()} BEFORE {verb} ON {table}
        WHEN tollgate_audit_maintenance() = 0
        BEGIN SELECT RAISE(ABORT, '{label} are append-only: {verb} refused'); END"""
        for verb in ("UPDATE", "DELETE")
    ]
    sqlite_down = [f"DROP TRIGGER IF EXISTS {name}_append_only_{verb}" for verb in ("update", "delete")]

    def run(statements_by_vendor):
        def apply(apps, schema_editor):
            vendor = schema_editor.connection.vendor
            if vendor == "postgresql":
                schema_editor.execute(statements_by_vendor["postgresql"], None)
            elif vendor == "sqlite":
                for statement in statements_by_vendor["sqlite"]:
                    schema_editor.execute(statement)

        return apply

    return migrations.RunPython(
        run({"postgresql": postgres_up, "sqlite": sqlite_up}),
        run({"postgresql": postgres_down, "sqlite": sqlite_down}),
    )
