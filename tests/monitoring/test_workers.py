"""Check runs on a real Celery worker process with the real Redis (DESIGN §7): the happy path an officer sees,
and the faults -- a pool child killed mid-check, the whole worker killed, Redis down when a batch arrives,
a check over its hard time limit.

The reaper is called here as beat's schedule calls it (``check_runs_reap``), with a clock moved past the hard
limit instead of waiting for it (or once a worker's own short limit has passed).
``TOLLGATE_TEST_CHECK_DELAY_SECONDS`` (test settings) slows a check down so it can be killed while it runs.
"""

import datetime
import os
import signal
import time

import pytest
from django.utils import timezone

from controlplane.models import OutboxMessage
from controlplane.tasks import outbox_sweep
from governance.accounts.access import Principal
from governance.audit.models import AuditEvent
from governance.promotion.services import policy_publish
from monitoring.api.views import REPORT_CSP
from monitoring.models import CheckRun
from monitoring.services.execution import check_runs_reap
from tests.monitoring.conftest import create_monitor, drifted, same_as_reference, upload, url
from tests.worker import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
RUN_TASK = "monitoring.tasks.run_check"


@pytest.fixture
def monitored(shared_storage, api, project, ml_engineer, officer, reference):
    """fraud-gbm v1 in production with reference data, a drift monitor, and a policy whose production gates
    include a passing drift check."""
    create_monitor(api(ml_engineer), project)
    document = {
        "environments": {
            "production": {
                "limited": [
                    {"kind": "approvals", "min": 1},
                    {"kind": "check", "check_kind": "data_drift", "max_age_hours": 168},
                ]
            }
        }
    }
    policy_publish(actor=Principal(officer), project=project, source=document)
    return project


def the_run() -> CheckRun:
    return CheckRun.objects.get()


def finished(run_id: int):
    run = CheckRun.objects.get(pk=run_id)
    return run if run.is_terminal else None


def drift_gate(client, project):
    dry = client.get(url(project, "models/fraud-gbm/versions/1/gates/"), {"environment": "production"}).json()
    return next(g for g in dry["gates"] if g["kind"] == "check")


def reap_later(seconds: float = 10_000) -> dict:
    """The reaper as beat runs it, at a time past every hard limit."""
    return check_runs_reap(now=timezone.now() + datetime.timedelta(seconds=seconds))


def test_a_drift_check_runs_on_a_worker_and_the_gate_reflects_it(api, monitored, ml_engineer, officer,
                                                                 celery_worker_process):  # fmt: skip
    project, engineer, reviewer = monitored, api(ml_engineer), api(officer)
    assert drift_gate(reviewer, project)["status"] == "failed"

    batch = upload(engineer, project, same_as_reference(), environment="production")
    assert batch.status_code == 201, batch.json()
    run = wait_for(lambda: finished(the_run().pk), message="the check run")
    assert (run.state, run.attempts) == ("passed", 1)
    wait_for(lambda: CheckRun.objects.get(pk=run.pk).report_state == "ready", message="the report")

    detail = reviewer.get(url(project, f"check-runs/{run.pk}/")).json()
    assert [(r["column"], r["method"], r["drifted"]) for r in detail["results"]] == [
        ("amount", "ks", False), ("country", "chi2_contingency", False), ("score", "ks", False)]  # fmt: skip
    report = reviewer.get(detail["report"]["html"], HTTP_ACCEPT="text/html")
    assert report.status_code == 200 and report["Content-Security-Policy"] == REPORT_CSP
    gate = drift_gate(reviewer, project)
    assert (gate["status"], gate["evidence"]["check_run"]) == ("passed", run.pk)

    upload(engineer, project, drifted(), environment="production")
    failed = wait_for(lambda: finished(CheckRun.objects.exclude(pk=run.pk).get().pk), message="the second run")
    assert failed.state == "failed"
    assert drift_gate(reviewer, project)["status"] == "failed"
    assert reviewer.get(url(project, "alerts/")).json()["count"] == 1
    assert celery_worker_process.succeeded(RUN_TASK) == 2


def test_a_child_killed_mid_check_reruns_and_yields_one_result(api, monitored, ml_engineer, monkeypatch,
                                                                celery_worker_factory):  # fmt: skip
    monkeypatch.setenv("TOLLGATE_TEST_CHECK_DELAY_SECONDS", "3")
    worker = celery_worker_factory()
    upload(api(ml_engineer), monitored, same_as_reference(), environment="production")
    running = wait_for(lambda: (r := the_run()).state == "running" and r, message="the check to start")
    pid = int(running.claimed_by.rsplit(":", 1)[1])
    assert pid != worker.process.pid  # the pool child, not the worker's main process
    os.kill(pid, signal.SIGKILL)

    wait_for(lambda: "already claimed" in worker.log(), message="the redelivered message to find the run claimed")
    assert the_run().state == "running"  # the lost attempt holds it until the reaper sees it
    assert reap_later()["requeued"] == 1
    run = wait_for(lambda: finished(the_run().pk), message="the second attempt")
    assert (run.state, run.attempts) == ("passed", 2)
    assert len(run.results) == 3
    assert AuditEvent.objects.filter(action__in=["check.passed", "check.failed"], target_id=str(run.pk)).count() == 1


def test_a_worker_killed_and_restarted_completes_the_run_after_the_sweep(api, monitored, ml_engineer, monkeypatch,
                                                                          celery_worker_factory):  # fmt: skip
    monkeypatch.setenv("TOLLGATE_TEST_CHECK_DELAY_SECONDS", "3")
    first = celery_worker_factory()
    upload(api(ml_engineer), monitored, same_as_reference(), environment="production")
    wait_for(lambda: the_run().state == "running", message="the check to start")
    os.killpg(first.process.pid, signal.SIGKILL)  # kill -9 of the whole worker, children included
    first.process.wait()
    first.process = None

    monkeypatch.setenv("TOLLGATE_TEST_CHECK_DELAY_SECONDS", "0")
    second = celery_worker_factory()
    time.sleep(1)
    assert the_run().state == "running"  # nobody re-runs it before the sweep
    assert reap_later()["requeued"] == 1
    run = wait_for(lambda: finished(the_run().pk), message="the run after the restart")
    assert (run.state, run.attempts) == ("passed", 2)
    wait_for(lambda: second.succeeded(RUN_TASK) == 1, message="the restarted worker to log the run")


def test_a_check_over_its_workers_hard_limit_is_retried_then_timed_out(api, monitored, ml_engineer, officer,
                                                                        settings, monkeypatch,
                                                                        celery_worker_factory):  # fmt: skip
    # The worker's own limit (its soft limit defaults to 90 % of it, which the test delay ignores, as native code
    # would); this process -- which publishes the run and reaps it, as web and beat do -- keeps its default.
    monkeypatch.setenv("TOLLGATE_TEST_CHECK_DELAY_SECONDS", "30")
    monkeypatch.setenv("TOLLGATE_CHECK_TIME_LIMIT", "2")
    assert settings.TOLLGATE_CHECK_TIME_LIMIT == 360
    settings.TOLLGATE_CHECK_REAP_MARGIN_SECONDS, settings.TOLLGATE_CHECK_MAX_ATTEMPTS = 0, 3
    worker = celery_worker_factory()
    upload(api(ml_engineer), monitored, same_as_reference(), environment="production")

    for attempt in (1, 2, 3):
        wait_for(lambda a=attempt: worker.log().count("Hard time limit (2s) exceeded") >= a, timeout=30,
                 message=f"attempt {attempt} to hit the worker's hard limit")  # fmt: skip
        run = the_run()
        assert (run.state, run.attempts, run.time_limit_seconds) == ("running", attempt, 2)
        wait_for(lambda: (timezone.now() - the_run().claimed_at).total_seconds() > 2, message="the limit to pass")
        outcome = check_runs_reap()  # by the run's limit: this process's own is 360 s
        if attempt < 3:
            assert outcome["requeued"] == 1
            wait_for(lambda a=attempt: the_run().attempts == a + 1, timeout=20, message="the next attempt")
        else:
            assert outcome["timed_out"] == 1
    run = the_run()
    assert (run.state, run.attempts) == ("timed_out", 3)
    assert run.error == "attempt 3 was still running after the hard time limit of 2s"
    assert run.report_state == "none"
    gate = drift_gate(api(officer), monitored)
    assert gate["status"] == "failed" and "timed_out" in gate["reason"]


def test_redis_down_when_a_batch_arrives(api, monitored, ml_engineer, private_redis, celery_worker_factory):
    private_redis.stop()
    started = time.monotonic()
    response = upload(api(ml_engineer), monitored, same_as_reference(), environment="production")
    assert response.status_code == 201, response.json()  # the upload succeeds
    assert time.monotonic() - started < 15
    assert the_run().state == "queued"
    message = OutboxMessage.objects.get(task_name=RUN_TASK)
    assert message.state == "pending" and message.publish_count == 0 and message.last_error

    private_redis.start()
    celery_worker_factory()
    OutboxMessage.objects.filter(pk=message.pk).update(republish_after=timezone.now() - datetime.timedelta(seconds=1))
    assert outbox_sweep()["republished"] == 1  # as beat does every 30 s
    run = wait_for(lambda: finished(the_run().pk), message="the run once Redis is back")
    assert (run.state, run.attempts) == ("passed", 1)
