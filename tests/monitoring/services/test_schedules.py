"""Monitors on a schedule (issue 10): django-celery-beat rows owned by the monitor, scheduled runs of unchecked
batches, and the freshness alert when data stops arriving."""

import datetime
import json

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from governance.audit.models import AuditEvent
from monitoring.models import Alert, Batch, CheckRun
from monitoring.services.monitors import schedule_task_name
from monitoring.services.schedules import monitor_scheduled
from tests.monitoring.conftest import create_monitor, same_as_reference, upload, url
from tests.worker import wait_for

flow = pytest.mark.django_db(transaction=True)


@pytest.mark.django_db
def test_the_beat_entry_follows_the_monitor(api, project, ml_engineer, deployed):
    engineer = api(ml_engineer)
    monitor = create_monitor(engineer, project, config={"schedule": {"every_minutes": 60}, "freshness_hours": 24})
    task = PeriodicTask.objects.get(name=schedule_task_name(monitor["id"]))
    assert (task.task, json.loads(task.kwargs), task.enabled) == ("monitoring.tasks.monitor_scheduled",
                                                                   {"monitor_id": monitor["id"]}, True)  # fmt: skip
    assert (task.interval.every, task.interval.period, task.crontab) == (60, "minutes", None)

    detail = url(project, f"monitors/{monitor['id']}/")
    engineer.patch(detail, {"config": {"schedule": {"crontab": "15 */2 * * *"}}}, format="json")
    task.refresh_from_db()
    assert (task.interval, task.crontab.minute, task.crontab.hour) == (None, "15", "*/2")
    engineer.patch(detail, {"active": False}, format="json")
    task.refresh_from_db()
    assert task.enabled is False  # paused with the monitor
    engineer.patch(detail, {"config": {}}, format="json")
    assert not PeriodicTask.objects.filter(name=schedule_task_name(monitor["id"])).exists()

    bad = engineer.patch(detail, {"config": {"schedule": {"crontab": "every hour"}, "freshness_hours": -1}},
                         format="json")  # fmt: skip
    assert bad.status_code == 400
    assert {d["field"] for d in bad.json()["error"]["details"]} == {"config.schedule.crontab", "config.freshness_hours"}
    alone = engineer.patch(detail, {"config": {"freshness_hours": 2}}, format="json")
    assert "needs a schedule" in alone.json()["error"]["details"][0]["message"]


@pytest.mark.usefixtures("celery_eager")
@flow
def test_a_schedule_checks_each_unchecked_batch_once(api, project, ml_engineer, reference):
    engineer = api(ml_engineer)
    first = upload(engineer, project, same_as_reference(1), environment="production").json()
    second = upload(engineer, project, same_as_reference(2), environment="production").json()
    assert first["runs"] == second["runs"] == []  # no monitor yet
    monitor = create_monitor(engineer, project, config={"schedule": {"every_minutes": 5}})
    assert monitor_scheduled(monitor_id=monitor["id"]) == {"queued": 2, "deferred": 0, "alerted": False}
    assert sorted(CheckRun.objects.values_list("batch_id", "state")) == [(first["id"], "passed"),
                                                                          (second["id"], "passed")]  # fmt: skip
    assert monitor_scheduled(monitor_id=monitor["id"]) == {"queued": 0, "deferred": 0, "alerted": False}
    # A new configuration is a new revision: its schedule checks every batch again.
    engineer.patch(url(project, f"monitors/{monitor['id']}/"),
                   {"config": {"schedule": {"every_minutes": 5}, "num_threshold": 0.01}}, format="json")  # fmt: skip
    assert monitor_scheduled(monitor_id=monitor["id"])["queued"] == 2
    gone = monitor_scheduled(monitor_id=999999)
    assert gone == {"queued": 0, "deferred": 0, "alerted": False}  # gone: quietly nothing


@pytest.mark.usefixtures("celery_eager")
@flow
def test_silence_raises_one_freshness_alert_per_silence(api, project, ml_engineer, officer, reference):
    engineer = api(ml_engineer)
    monitor = create_monitor(engineer, project, config={"schedule": {"every_minutes": 60}, "freshness_hours": 6})
    now = timezone.now()
    assert monitor_scheduled(monitor_id=monitor["id"], now=now + datetime.timedelta(hours=5))["alerted"] is False
    assert monitor_scheduled(monitor_id=monitor["id"], now=now + datetime.timedelta(hours=7))["alerted"] is True
    assert monitor_scheduled(monitor_id=monitor["id"], now=now + datetime.timedelta(hours=9))["alerted"] is False
    alerts = api(officer).get(url(project, "alerts/")).json()["results"]
    assert [(a["kind"], a["monitor"], a["environment"], a["check_run"]) for a in alerts] == [
        ("no_data", monitor["id"], "production", None)]  # fmt: skip
    assert "more than 6 hours" in alerts[0]["message"]
    assert AuditEvent.objects.filter(action="alert.raised").count() == 1

    upload(engineer, project, same_as_reference(), environment="production")  # data again; then silence again
    Batch.objects.update(created_at=now + datetime.timedelta(hours=10))
    assert monitor_scheduled(monitor_id=monitor["id"], now=now + datetime.timedelta(hours=12))["alerted"] is False
    assert monitor_scheduled(monitor_id=monitor["id"], now=now + datetime.timedelta(hours=17))["alerted"] is True
    assert Alert.objects.filter(kind="no_data").count() == 2


@pytest.mark.worker
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_scheduled_run_on_a_worker(shared_storage, api, project, ml_engineer, reference, celery_worker_process):
    from monitoring.tasks import monitor_scheduled as scheduled_task

    engineer = api(ml_engineer)
    batch = upload(engineer, project, same_as_reference(), environment="production").json()
    monitor = create_monitor(engineer, project, config={"schedule": {"every_minutes": 1}, "freshness_hours": 1})
    entry = PeriodicTask.objects.get(name=schedule_task_name(monitor["id"]))
    # What beat does when the entry is due: publish its task with its arguments.
    scheduled_task.apply_async(kwargs=json.loads(entry.kwargs))
    run = wait_for(lambda: CheckRun.objects.filter(batch_id=batch["id"], state__in=["passed", "failed"]).first(),
                   message="the scheduled run")  # fmt: skip
    assert (run.state, run.requested_by_id) == ("passed", None)
    assert celery_worker_process.succeeded("monitoring.tasks.monitor_scheduled") == 1
    assert not Alert.objects.exists()  # the batch arrived within the hour
