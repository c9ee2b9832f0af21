"""A run has one stored OpenLineage event per (eventType, eventTime) (issue 13, item 8): a replay with other
content is refused (409) instead of being stored beside the first.

Stored events are append-only, so conflicting pairs stored before this migration cannot be removed here: it
stops and names them, and the operator decides which to keep (in the audit maintenance mode, as the owner)."""

from django.db import migrations, models
from django.db.models import Count


def refuse_existing_conflicts(apps, schema_editor):
    LineageEvent = apps.get_model("governance", "LineageEvent")
    conflicts = (
        LineageEvent.objects.values("project_id", "run_id", "event_type", "event_time")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .order_by("project_id", "run_id", "event_time")
    )
    found = [
        f"project {c['project_id']}, run {c['run_id']}, eventType {c['event_type'] or '(none)'}, "
        f"eventTime {c['event_time'].isoformat()}: {c['n']} events"
        for c in conflicts[:20]
    ]
    if found:
        raise RuntimeError(
            "Some runs have several stored OpenLineage events with the same eventType and eventTime; keep one "
            "of each before migrating (governance_lineageevent):\n  " + "\n  ".join(found)
        )


class Migration(migrations.Migration):
    dependencies = [("governance", "0010_model_card_confirmation_revision")]

    operations = [
        migrations.RunPython(refuse_existing_conflicts, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="lineageevent",
            constraint=models.UniqueConstraint(
                fields=("project", "run_id", "event_type", "event_time"), name="lineage_event_identity"
            ),
        ),
    ]
