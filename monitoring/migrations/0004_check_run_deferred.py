"""Check runs may wait as ``deferred`` while a queue bound is reached (issue 13: TOLLGATE_CHECK_QUEUE_*)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('monitoring', '0003_check_run_time_limit'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='checkrun',
            name='check_run_state_valid',
        ),
        migrations.AlterField(
            model_name='checkrun',
            name='state',
            field=models.CharField(choices=[('deferred', 'Deferred'), ('queued', 'Queued'), ('running', 'Running'), ('passed', 'Passed'), ('failed', 'Failed'), ('error', 'Error'), ('timed_out', 'Timed Out')], default='queued', max_length=16),
        ),
        migrations.AddConstraint(
            model_name='checkrun',
            constraint=models.CheckConstraint(condition=models.Q(('state__in', ['deferred', 'queued', 'running', 'passed', 'failed', 'error', 'timed_out'])), name='check_run_state_valid'),
        ),
    ]
