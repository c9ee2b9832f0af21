"""The monitoring lists cost a fixed number of queries: the same with a few rows as with more than twenty.

Every request pays five queries: the key, its ``last_used_at``, and the access log's savepoint, insert and
release; a project's list adds the project (six before the list's own)."""

import factory

from governance.accounts.access import Principal
from monitoring.models import Batch, CheckRun
from monitoring.services.batches import batch_register
from tests.factories import (
    AlertFactory,
    BatchFactory,
    CheckRunFactory,
    DeploymentFactory,
    MonitorFactory,
    RegisteredVersionFactory,
    bulk,
    sha,
)
from tests.list_queries import queries_of
from tests.monitoring.conftest import link_reference

MANY = 22
MONITORS = 9  # the six, the count, the page (with model, deployment, version, reference), their revisions
BATCHES = 9  # the six, the count, the page (with version, model, environment, creator), their labels
CHECK_RUNS = 8  # the six, the count, the page (with monitor, its revision, batch, version, model)
ALERTS = 8  # the six, the count, the page (with run, monitor, deployment, environment, version, acknowledger)


def test_the_monitoring_lists(api, project, ml_engineer, officer, django_assert_max_num_queries):
    def lists(monitors, alerts):
        def count(path, pinned, rows):
            return queries_of(django_assert_max_num_queries, api(officer), path, pinned, rows=rows)

        p = f"/api/v1/projects/{project.slug}/"
        return [
            count(f"{p}monitors/", MONITORS, monitors),
            count(f"{p}batches/", BATCHES, Batch.objects.count()),
            count(f"{p}check-runs/", CHECK_RUNS, CheckRun.objects.count()),
            count(f"{p}alerts/", ALERTS, alerts),
        ]

    # Through the services: fraud-gbm v1 deployed to production with reference data, a drift monitor of the
    # deployment and a quality monitor of the version, two batches registered (each queues both monitors' runs).
    version = RegisteredVersionFactory(project=project, created_by=ml_engineer, ready=True, confirmed_by=officer)
    deployment = DeploymentFactory(version=version, officer=officer)
    link_reference(project, ml_engineer, version)
    drift = MonitorFactory(deployment=deployment, created_by=ml_engineer)
    MonitorFactory(model_version=version, kind="data_quality", created_by=ml_engineer)
    for n in range(2):
        batch_register(actor=Principal(ml_engineer), project=project, uri=f"storage://projects/fraud/batches/{n}.parquet",
                       sha256=sha(f"batch {n}"), deployment=deployment)  # fmt: skip
    runs = list(CheckRun.objects.filter(monitor=drift))
    CheckRun.objects.filter(pk__in=[run.pk for run in runs]).update(state="failed", verdict="amount drifted")
    for run in runs:
        AlertFactory(check_run=run)
    few = lists(2, 2)

    more = [MonitorFactory(deployment=deployment, created_by=ml_engineer) for _ in range(MANY - 2)]
    batches = bulk(BatchFactory, MANY, model_version=version, deployment=deployment)
    failed = bulk(CheckRunFactory, MANY, monitor=factory.Iterator(more), batch=factory.Iterator(batches))
    bulk(AlertFactory, MANY, check_run=factory.Iterator(failed))
    assert lists(MANY, MANY + 2) == few
