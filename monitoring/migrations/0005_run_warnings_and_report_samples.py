"""Issue 14: a run's structured warnings (a window below the reliable size of its drift methods); the report's
samples per side (``report_sample_rows`` said "per side" when only one side was sampled); and alerts raised by a
check run name its monitor (they showed ``"monitor": null``)."""

from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def forwards(apps, schema_editor):
    CheckRun = apps.get_model("monitoring", "CheckRun")
    Alert = apps.get_model("monitoring", "Alert")
    ModelVersionDataset = apps.get_model("governance", "ModelVersionDataset")
    for run in CheckRun.objects.filter(report_sample_rows__isnull=False).select_related("batch").iterator():
        rows = run.report_sample_rows
        link = (
            ModelVersionDataset.objects.filter(model_version_id=run.model_version_id, role="reference")
            .select_related("dataset_version")
            .order_by("-id")
            .first()
        )
        sides = {"reference": link.dataset_version.row_count if link else None, "batch": run.batch.row_count}
        # A side is recorded as sampled only when it is known to have had more rows than the sample.
        run.report_samples = {side: {"rows": rows, "of": of} for side, of in sides.items() if of and of > rows}
        run.save(update_fields=["report_samples"])
    monitor = CheckRun.objects.filter(pk=OuterRef("check_run_id")).values("monitor_id")[:1]
    Alert.objects.filter(monitor__isnull=True, check_run__isnull=False).update(monitor=Subquery(monitor))


class Migration(migrations.Migration):

    dependencies = [
        ('monitoring', '0004_check_run_deferred'),
    ]

    operations = [
        migrations.AddField(
            model_name='checkrun',
            name='report_samples',
            field=models.JSONField(blank=True, default=dict, help_text='The sides the report was built on a sample of, and only those: {"reference": {"rows": 100000, "of": 1000000}}; the verdict used every row.'),
        ),
        migrations.AddField(
            model_name='checkrun',
            name='warnings',
            field=models.JSONField(blank=True, default=list, help_text='Structured warnings about the verdict: [{"code": "window_below_reliable_size", "message", ...}].'),
        ),
        migrations.RunPython(forwards, migrations.RunPython.noop),
        migrations.RemoveField(
            model_name='checkrun',
            name='report_sample_rows',
        ),
    ]
