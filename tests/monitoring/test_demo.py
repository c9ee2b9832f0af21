"""seed_demo's monitoring part, in process (no Redis): one batch passes, the drifted one fails and alerts."""

import pytest
from django_celery_beat.models import PeriodicTask

from governance.management.commands._demo_datasets import seed_datasets
from governance.management.commands._demo_monitoring import HISTORY_DAYS, QUALITY_MONITOR, seed_monitoring
from monitoring.models import Alert, CheckRun, Monitor
from monitoring.services.monitors import schedule_task_name


@pytest.mark.django_db(transaction=True)
def test_the_demo_batches_visibly_pass_and_fail(project, ml_engineer, deployed, celery_eager):
    _, training = seed_datasets(project, ml_engineer)
    seeded = seed_monitoring(project, ml_engineer, deployed, training)

    states = {label: {kind: CheckRun.objects.get(pk=pk).state for kind, pk in value["runs"].items()}
              for label, value in seeded.items()}  # fmt: skip
    assert states == {"like-reference": {"data_drift": "passed", "data_quality": "passed", "model_quality": "passed"},
                      "drifted": {"data_drift": "failed", "data_quality": "failed"}}  # fmt: skip
    assert CheckRun.objects.get(pk=seeded["like-reference"]["runs"]["model_quality"]).batch_revision == 2
    assert CheckRun.objects.filter(kind="data_drift").count() == 2 + HISTORY_DAYS
    assert PeriodicTask.objects.filter(name=schedule_task_name(Monitor.objects.get(name=QUALITY_MONITOR).pk)).exists()
    assert Alert.objects.filter(check_run__kind="data_drift").count() == 1
    assert set(CheckRun.objects.values_list("report_state", flat=True)) == {"ready"}
    assert seed_monitoring(project, ml_engineer, deployed, training) == seeded  # safe to run again
