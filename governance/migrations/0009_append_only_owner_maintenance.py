"""The append-only triggers (0003 audit events, 0007 lineage events) honour maintenance mode only for a role
holding the table owner's privileges: the owner, its members, superusers.

Any role may set a custom setting such as ``tollgate.audit_maintenance``, so before this a role with UPDATE
could turn maintenance mode on for itself. The roles that pass the check can already ALTER TABLE ... DISABLE
TRIGGER, so the mode gives nobody a power they lack; the processes' own role (deploy/db-roles.sql) owns
nothing and does not pass. Catalog names are schema-qualified: a temporary table called pg_class would
otherwise shadow the catalog's. SQLite is unchanged (no roles there). The SQL is written out here rather than
imported from application code, so this migration keeps meaning what it meant when it was written.
"""

from django.db import migrations

TABLES = (("audit", "audit events"), ("lineage_event", "lineage events"))

MAINTENANCE = "coalesce(pg_catalog.current_setting('tollgate.audit_maintenance', true), '') = 'on'"
OWNER = (
    "pg_catalog.pg_has_role(current_user,"
    " (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = TG_RELID), 'USAGE')"
)


def immutable_function(name: str, label: str, condition: str) -> str:
    return f"""
CREATE OR REPLACE FUNCTION tollgate_{name}_immutable() RETURNS trigger AS $$
BEGIN
    IF {condition} THEN
        IF TG_LEVEL = 'ROW' THEN RETURN coalesce(NEW, OLD); END IF;
        RETURN NULL;
    END IF;
    RAISE EXCEPTION '{label} are append-only: % refused', TG_OP USING ERRCODE = 'P0001';
END
$$ LANGUAGE plpgsql;
"""


def replace_functions(condition: str):
    def apply(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for name, label in TABLES:
                schema_editor.execute(immutable_function(name, label, condition), None)

    return apply


class Migration(migrations.Migration):
    dependencies = [("governance", "0008_webhooks")]
    operations = [
        migrations.RunPython(
            replace_functions(f"{MAINTENANCE} AND {OWNER}"),
            replace_functions("coalesce(current_setting('tollgate.audit_maintenance', true), '') = 'on'"),
        )
    ]
