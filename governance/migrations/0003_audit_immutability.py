"""The database itself refuses UPDATE, DELETE and TRUNCATE of audit events.

Only an explicit maintenance mode lets them through: on PostgreSQL the session setting
``tollgate.audit_maintenance = 'on'``; on SQLite the per-connection function ``tollgate_audit_maintenance()``
returning 1 (governance.audit_db). The test suite's database flush uses it, and nothing else does.
"""

from django.db import migrations

from governance.audit_db import append_only


class Migration(migrations.Migration):
    dependencies = [("governance", "0002_audit_and_access_log")]
    operations = [append_only("governance_auditevent", name="audit", label="audit events")]
