"""The database refuses UPDATE, DELETE and TRUNCATE of stored OpenLineage events, as it does for audit events
(0003_audit_immutability): only the maintenance mode of governance.audit_db, which the test suite's flush uses,
lets them through."""

from django.db import migrations

TABLE = "governance_lineageevent"

POSTGRES_UP = f"""
CREATE OR REPLACE FUNCTION tollgate_lineage_event_immutable() RETURNS trigger AS $$
BEGIN
    IF coalesce(current_setting('tollgate.audit_maintenance', true), '') = 'on' THEN
        IF TG_LEVEL = 'ROW' THEN RETURN coalesce(NEW, OLD); END IF;
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'lineage events are append-only: % refused', TG_OP USING ERRCODE = 'P0001';
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER lineage_event_append_only_rows BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION tollgate_lineage_event_immutable();
CREATE TRIGGER lineage_event_append_only_truncate BEFORE TRUNCATE ON {TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION tollgate_lineage_event_immutable();
"""
POSTGRES_DOWN = f"""
DROP TRIGGER IF EXISTS lineage_event_append_only_rows ON {TABLE};
DROP TRIGGER IF EXISTS lineage_event_append_only_truncate ON {TABLE};
DROP FUNCTION IF EXISTS tollgate_lineage_event_immutable();
"""
SQLITE_UP = [
    f"""CREATE TRIGGER lineage_event_append_only_update BEFORE UPDATE ON {TABLE}
        WHEN tollgate_audit_maintenance() = 0
        BEGIN SELECT RAISE(ABORT, 'lineage events are append-only: UPDATE refused'); END""",
    f"""CREATE TRIGGER lineage_event_append_only_delete BEFORE DELETE ON {TABLE}
        WHEN tollgate_audit_maintenance() = 0
        BEGIN SELECT RAISE(ABORT, 'lineage events are append-only: DELETE refused'); END""",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS lineage_event_append_only_update",
    "DROP TRIGGER IF EXISTS lineage_event_append_only_delete",
]


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
    dependencies = [("governance", "0006_lineage")]
    operations = [migrations.RunPython(forwards, backwards)]
