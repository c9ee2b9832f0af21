"""The database itself refuses UPDATE, DELETE and TRUNCATE of audit events.

Only an explicit maintenance mode lets them through: on PostgreSQL the session setting
``tollgate.audit_maintenance = 'on'``; on SQLite the per-connection function ``tollgate_audit_maintenance()``
returning 1 (governance.audit_db). The test suite's database flush uses it, and nothing else does.
"""

from django.db import migrations

TABLE = "governance_auditevent"

POSTGRES_UP = f"""
CREATE OR REPLACE FUNCTION tollgate_audit_immutable() RETURNS trigger AS $$
BEGIN
    IF coalesce(current_setting('tollgate.audit_maintenance', true), '') = 'on' THEN
        IF TG_LEVEL = 'ROW' THEN RETURN coalesce(NEW, OLD); END IF;
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit events are append-only: % refused', TG_OP USING ERRCODE = 'P0001';
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_append_only_rows BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION tollgate_audit_immutable();
CREATE TRIGGER audit_append_only_truncate BEFORE TRUNCATE ON {TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION tollgate_audit_immutable();
"""
POSTGRES_DOWN = f"""
DROP TRIGGER IF EXISTS audit_append_only_rows ON {TABLE};
DROP TRIGGER IF EXISTS audit_append_only_truncate ON {TABLE};
DROP FUNCTION IF EXISTS tollgate_audit_immutable();
"""
SQLITE_UP = [
    f"""CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON {TABLE}
        WHEN tollgate_audit_maintenance() = 0
        BEGIN SELECT RAISE(ABORT, 'audit events are append-only: UPDATE refused'); END""",
    f"""CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON {TABLE}
        WHEN tollgate_audit_maintenance() = 0
        BEGIN SELECT RAISE(ABORT, 'audit events are append-only: DELETE refused'); END""",
]
SQLITE_DOWN = ["DROP TRIGGER IF EXISTS audit_append_only_update", "DROP TRIGGER IF EXISTS audit_append_only_delete"]


def forwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES_UP, None)
    elif vendor == "sqlite":
        for statement in SQLITE_UP:
            schema_editor.execute(statement)


def backwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES_DOWN, None)
    elif vendor == "sqlite":
        for statement in SQLITE_DOWN:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("governance", "0002_audit_and_access_log")]
    operations = [migrations.RunPython(forwards, backwards)]
