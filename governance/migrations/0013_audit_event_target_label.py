"""Audit events name their target as people know it (issue 14, item 9): ``model:fraud-gbm/3``.

No backfill: audit rows are append-only and their hashed bytes fixed, so events written before this migration
keep an empty label (their bodies, version 1, have none, and they verify as before); find them by
``target_type`` and ``target_id``. Adding the column with a constant default rewrites no row."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0012_lineage_run_link"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="target_label",
            field=models.TextField(blank=True, default=""),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(
                fields=["project", "target_label"],
                name="audit_project_label_idx",
                opclasses=["int8_ops", "text_pattern_ops"],
            ),
        ),
    ]
