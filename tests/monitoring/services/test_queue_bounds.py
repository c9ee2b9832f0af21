"""Queue bounds of check runs (issue 13, item 6): user-initiated work beyond a bound ("run now", a batch
upload) is 429 and changes nothing; runs of labels and schedules beyond it wait as ``deferred`` and run once
the queue drains. On PostgreSQL the bound is counted and taken under advisory locks held to commit, so
concurrent requests cannot both pass.

Tests without ``transaction=True`` never publish (the test transaction never commits): runs stay queued, as
when every worker is busy."""

import threading
from pathlib import Path

import pandas as pd
import pytest
from django.db import connection, transaction

from controlplane.models import OutboxMessage
from governance.accounts.access import Principal
from governance.audit.models import AuditEvent
from monitoring.models import TERMINAL_STATES, Batch, CheckRun, Monitor
from monitoring.services.execution import check_run_execute, check_runs_reap
from monitoring.services.runs import check_run_request
from monitoring.services.schedules import monitor_scheduled
from tests.monitoring.conftest import create_monitor, same_as_reference, upload, url
from tests.monitoring.services.test_model_quality import QUALITY, good_labels, post_labels
from tests.worker import wait_for

pytestmark = pytest.mark.postgres
PRINCIPAL, PROJECT = "TOLLGATE_CHECK_QUEUE_PER_PRINCIPAL", "TOLLGATE_CHECK_QUEUE_PER_PROJECT"


def run_now(client, project, monitor: dict, batch: dict | None = None, *, threshold: float | None = None):
    """'Run now', after changing the monitor's configuration when ``threshold`` is given (a new revision, so
    a new run rather than the existing one -- how the attack queued 30 runs)."""
    if threshold is not None:
        changed = client.patch(url(project, f"monitors/{monitor['id']}/"), {"config": {"num_threshold": threshold}},
                               format="json")  # fmt: skip
        assert changed.status_code == 200, changed.json()
    body = {"monitor": monitor["id"], **({"batch": batch["id"]} if batch else {})}
    return client.post(url(project, "check-runs/"), body, format="json")


def states() -> list[str]:
    return sorted(CheckRun.objects.values_list("state", flat=True))


@pytest.mark.django_db
def test_run_now_beyond_the_principals_bound_is_429_and_changes_nothing(api, project, ml_engineer, officer,
                                                                        reference, settings):  # fmt: skip
    settings.TOLLGATE_CHECK_QUEUE_PER_PRINCIPAL = 2
    engineer = api(ml_engineer)
    monitor = create_monitor(engineer, project)
    batch = upload(engineer, project, same_as_reference(), environment="production").json()  # the first run
    assert run_now(engineer, project, monitor, batch, threshold=0.01).status_code == 201  # the second
    outbox_before = OutboxMessage.objects.count()

    refused = run_now(engineer, project, monitor, batch, threshold=0.02)
    assert refused.status_code == 429
    assert refused["Retry-After"] == "30"
    error = refused.json()["error"]
    assert error["code"] == "check_queue_full"
    assert "the limit per principal is 2 (TOLLGATE_CHECK_QUEUE_PER_PRINCIPAL)" in error["message"]
    assert error["details"] == [{"limit": "per_principal", "setting": PRINCIPAL, "value": 2, "in_queue": 2,
                                 "needed": 1}]  # fmt: skip
    assert list(CheckRun.objects.values_list("monitor_revision__revision", "requested_by")) == [
        (2, ml_engineer.pk), (1, ml_engineer.pk)]  # fmt: skip
    assert OutboxMessage.objects.count() == outbox_before

    # The bound is the engineer's: another member still runs the monitor's current configuration.
    other = run_now(api(officer), project, monitor, batch)
    assert other.status_code == 201, other.json()
    assert (other.json()["revision"], other.json()["state"]) == (3, "queued")


@pytest.mark.django_db
def test_the_projects_bound_refuses_every_member(api, project, ml_engineer, officer, reference, settings):
    settings.TOLLGATE_CHECK_QUEUE_PER_PROJECT = 2
    engineer = api(ml_engineer)
    monitor = create_monitor(engineer, project)
    batch = upload(engineer, project, same_as_reference(), environment="production").json()
    assert run_now(engineer, project, monitor, batch, threshold=0.01).status_code == 201
    engineer.patch(url(project, f"monitors/{monitor['id']}/"), {"config": {"num_threshold": 0.02}}, format="json")

    refused = run_now(api(officer), project, monitor, batch)
    assert refused.status_code == 429
    assert refused["Retry-After"] == "30"
    assert refused.json()["error"]["details"] == [{"limit": "per_project", "setting": PROJECT, "value": 2,
                                                   "in_queue": 2, "needed": 1}]  # fmt: skip
    assert "This project has 2 check runs queued or running" in refused.json()["error"]["message"]
    assert CheckRun.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_request_waits_for_the_one_holding_the_last_place_and_is_refused(api, project, ml_engineer, reference,
                                                                           settings, private_redis):  # fmt: skip
    """Two run-now requests for the last place: the second waits on the queue lock the first holds until it
    commits, then counts the first's run and is refused. Without the lock both would count one free place."""
    settings.TOLLGATE_CHECK_QUEUE_PER_PRINCIPAL = 1
    engineer = api(ml_engineer)
    batch = upload(engineer, project, same_as_reference(), environment="production").json()  # no monitor: no run
    first, second = create_monitor(engineer, project, name="first"), create_monitor(engineer, project, name="second")
    answer, done = {}, threading.Event()

    def request_second():
        try:
            answer["response"] = run_now(engineer, project, second, batch)
        finally:
            done.set()
            connection.close()

    with transaction.atomic():
        run, created = check_run_request(actor=Principal(ml_engineer), monitor=Monitor.objects.get(pk=first["id"]))
        assert created and run.state == "queued"
        thread = threading.Thread(target=request_second)
        thread.start()
        wait_for(lambda: done.is_set() or _waiting_on_an_advisory_lock(), message="the second request to block")
    thread.join(timeout=30)
    assert answer["response"].status_code == 429, answer["response"].json()
    assert list(CheckRun.objects.values_list("monitor_id", flat=True)) == [first["id"]]


def _waiting_on_an_advisory_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        return cursor.fetchone()[0] > 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_never_queue_more_than_the_bound(api, project, ml_engineer, reference, settings,
                                                             private_redis):  # fmt: skip
    settings.TOLLGATE_CHECK_QUEUE_PER_PRINCIPAL = 3
    engineer = api(ml_engineer)
    batch = upload(engineer, project, same_as_reference(), environment="production").json()
    monitors = [create_monitor(engineer, project, name=f"drift-{i}") for i in range(8)]
    clients = [api(ml_engineer) for _ in monitors]  # a client (and a connection) per thread
    start, statuses = threading.Barrier(len(monitors)), []

    def request(client, monitor):
        try:
            start.wait(timeout=30)
            statuses.append(run_now(client, project, monitor, batch).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=request, args=pair) for pair in zip(clients, monitors, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [201] * 3 + [429] * 5
    assert states() == ["queued"] * 3


def stored_batches(settings) -> list[str]:
    root = Path(settings.STORAGES["default"]["OPTIONS"]["location"])
    return sorted(str(path.relative_to(root)) for path in root.glob("projects/*/batches/*/*.parquet"))


@pytest.mark.django_db
def test_a_batch_upload_whose_runs_do_not_all_fit_is_refused_whole(api, project, ml_engineer, reference, settings):
    settings.TOLLGATE_CHECK_QUEUE_PER_PRINCIPAL = 3
    engineer = api(ml_engineer)
    create_monitor(engineer, project, name="drift-a")
    create_monitor(engineer, project, name="drift-b")
    first = upload(engineer, project, same_as_reference(1), environment="production").json()
    assert [r["state"] for r in first["runs"]] == ["queued", "queued"]
    files, events, outbox = stored_batches(settings), AuditEvent.objects.count(), OutboxMessage.objects.count()
    assert len(files) == 1

    refused = upload(engineer, project, same_as_reference(2), environment="production")
    assert refused.status_code == 429
    assert refused["Retry-After"] == "30"
    error = refused.json()["error"]
    assert error["code"] == "check_queue_full"
    assert "has 2 check runs queued or running and this needs 2 more; the limit per principal is 3" in error["message"]
    assert error["details"] == [{"limit": "per_principal", "setting": PRINCIPAL, "value": 3, "in_queue": 2,
                                 "needed": 2}]  # fmt: skip
    assert list(Batch.objects.values_list("pk", flat=True)) == [first["id"]]  # not half-done: no batch, no run
    assert states() == ["queued", "queued"]
    assert stored_batches(settings) == files
    assert (AuditEvent.objects.count(), OutboxMessage.objects.count()) == (events, outbox)

    # Once the queue drains, the same upload goes through.
    for run in first["runs"]:
        assert check_run_execute(run_id=run["id"], worker="test:1") == "passed"
    again = upload(engineer, project, same_as_reference(2), environment="production")
    assert again.status_code == 201, again.json()
    assert [r["state"] for r in again.json()["runs"]] == ["queued", "queued"]


@pytest.mark.django_db
def test_a_batch_needing_more_runs_than_a_bound_is_409_naming_it(api, project, ml_engineer, reference, settings):
    """Waiting cannot help, so no Retry-After: the operator raises the setting (or the project has fewer
    monitors)."""
    settings.TOLLGATE_CHECK_QUEUE_PER_PROJECT = 1
    engineer = api(ml_engineer)
    create_monitor(engineer, project, name="drift-a")
    create_monitor(engineer, project, name="drift-b")

    refused = upload(engineer, project, same_as_reference(1), environment="production")
    assert refused.status_code == 409
    assert "Retry-After" not in refused
    assert refused.json()["error"]["code"] == "check_queue_too_small"
    assert refused.json()["error"]["details"] == [{"limit": "per_project", "setting": PROJECT, "value": 1,
                                                   "needed": 2}]  # fmt: skip
    assert (Batch.objects.count(), CheckRun.objects.count(), stored_batches(settings)) == (0, 0, [])


def label_first_batch(engineer, project, frame):
    """A drift run of a first batch (queued), then its labels (a new batch revision: a model_quality run)."""
    first = upload(engineer, project, frame, environment="production").json()
    assert [r["state"] for r in first["runs"]] == ["queued"]
    labelled = post_labels(engineer, project, first["id"], pd.DataFrame({"is_fraud": good_labels(frame)}))
    assert labelled.status_code == 201, labelled.json()  # labels are never refused for a full queue
    return first, [r for r in labelled.json()["runs"] if r["kind"] == "model_quality"]


@pytest.mark.django_db
def test_label_and_scheduled_runs_beyond_the_projects_bound_wait_and_the_reaper_releases_them(
    api, project, ml_engineer, reference, settings
):
    settings.TOLLGATE_CHECK_QUEUE_PER_PROJECT = 1
    engineer = api(ml_engineer)
    create_monitor(engineer, project)
    create_monitor(engineer, project, kind="model_quality", config=QUALITY)
    first, [quality] = label_first_batch(engineer, project, same_as_reference(1))
    assert quality["state"] == "deferred"
    scheduled = create_monitor(engineer, project, name="scheduled", config={"schedule": {"every_minutes": 5}})
    assert monitor_scheduled(monitor_id=scheduled["id"]) == {"queued": 0, "deferred": 1, "alerted": False}
    assert monitor_scheduled(monitor_id=scheduled["id"]) == {"queued": 0, "deferred": 0, "alerted": False}  # once
    assert run_now(engineer, project, scheduled).status_code == 200  # the deferred run is the batch's run
    assert check_runs_reap()["released"] == 0  # no room yet
    deferred = CheckRun.objects.filter(state="deferred")
    assert not OutboxMessage.objects.filter(kwargs__run_id__in=list(deferred.values_list("pk", flat=True))).exists()

    assert check_run_execute(run_id=first["runs"][0]["id"], worker="test:1") == "passed"
    assert check_runs_reap()["released"] == 1  # the oldest first
    released = CheckRun.objects.get(pk=quality["id"])
    assert released.state == "queued"
    assert OutboxMessage.objects.filter(kwargs__run_id=released.pk, state="pending").count() == 1
    assert list(deferred.values_list("monitor_id", "requested_by")) == [(scheduled["id"], None)]

    assert check_run_execute(run_id=released.pk, worker="test:1") == "passed"
    assert check_runs_reap()["released"] == 1
    assert states() == ["passed", "passed", "queued"]


@pytest.mark.django_db
def test_a_members_full_queue_defers_their_label_runs_not_the_projects_schedule(api, project, ml_engineer,
                                                                                 reference, settings):  # fmt: skip
    settings.TOLLGATE_CHECK_QUEUE_PER_PRINCIPAL = 1
    engineer = api(ml_engineer)
    create_monitor(engineer, project)
    create_monitor(engineer, project, kind="model_quality", config=QUALITY)
    first, [quality] = label_first_batch(engineer, project, same_as_reference(1))
    assert quality["state"] == "deferred"  # the engineer's drift run holds their one place
    scheduled = create_monitor(engineer, project, name="scheduled", config={"schedule": {"every_minutes": 5}})
    assert monitor_scheduled(monitor_id=scheduled["id"]) == {"queued": 1, "deferred": 0, "alerted": False}
    assert check_runs_reap()["released"] == 0  # the project has room, the engineer has none

    assert check_run_execute(run_id=first["runs"][0]["id"], worker="test:1") == "passed"
    assert check_runs_reap()["released"] == 1
    assert CheckRun.objects.get(pk=quality["id"]).state == "queued"


@pytest.mark.worker
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_deferred_label_and_scheduled_runs_run_once_the_queue_drains(
    shared_storage, api, project, ml_engineer, reference, settings, monkeypatch, celery_worker_factory
):
    """No beat here: the worker releases the next deferred run as each run ends."""
    monkeypatch.setenv(PROJECT, "1")  # the worker, which releases deferred runs as runs end, reads it too
    settings.TOLLGATE_CHECK_QUEUE_PER_PROJECT = 1
    engineer = api(ml_engineer)
    create_monitor(engineer, project)
    create_monitor(engineer, project, kind="model_quality", config=QUALITY)
    _, [quality] = label_first_batch(engineer, project, same_as_reference(1))
    assert quality["state"] == "deferred"
    scheduled = create_monitor(engineer, project, name="scheduled", config={"schedule": {"every_minutes": 5}})
    assert monitor_scheduled(monitor_id=scheduled["id"]) == {"queued": 0, "deferred": 1, "alerted": False}
    assert states() == ["deferred", "deferred", "queued"]

    celery_worker_factory()
    wait_for(lambda: CheckRun.objects.filter(state__in=TERMINAL_STATES).count() == 3, timeout=180,
             message="every deferred run to run")  # fmt: skip
    assert states() == ["passed"] * 3
    assert CheckRun.objects.filter(monitor_id=scheduled["id"], requested_by=None, state="passed").count() == 1
