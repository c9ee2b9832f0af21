"""The database refuses UPDATE, DELETE and TRUNCATE of stored OpenLineage events, as it does for audit events
(0003_audit_immutability): only the maintenance mode of governance.audit_db, which the test suite's flush uses,
lets them through."""

from django.db import migrations

from governance.audit_db import append_only


class Migration(migrations.Migration):
    dependencies = [("governance", "0006_lineage")]
    operations = [append_only("governance_lineageevent", name="lineage_event", label="lineage events")]
