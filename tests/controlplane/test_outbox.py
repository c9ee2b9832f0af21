"""The outbox and the sweeper (DESIGN §7), with a real task of the application: the audit verification.

The ``worker`` tests run a real ``celery worker`` subprocess against the test database and a real Redis (the
configured one, or a private redis-server that the test stops and restarts).
"""

import datetime
import time

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from controlplane.models import OutboxMessage
from controlplane.outbox import outbox_enqueue, outbox_purge_done, outbox_republish_due
from controlplane.tasks import outbox_sweep
from governance.audit.models import AuditEvent, AuditVerification, chain_of
from tests.worker import wait_for

TASK = "governance.tasks.audit_verification_run"


class Rollback(Exception):
    pass


def _verification(project) -> AuditVerification:
    chain = chain_of(project.pk)
    return AuditVerification.objects.create(
        chain=chain, project=project, total=AuditEvent.objects.filter(chain=chain).count()
    )


def _request_verification(project) -> tuple[AuditVerification, OutboxMessage]:
    """What a view does: the row and its outbox message in one transaction."""
    with transaction.atomic():
        verification = _verification(project)
        message = outbox_enqueue(TASK, kwargs={"verification_id": verification.pk})
    return verification, message


def _make_due(message: OutboxMessage) -> None:
    OutboxMessage.objects.filter(pk=message.pk).update(republish_after=timezone.now() - datetime.timedelta(seconds=1))


def _done(message: OutboxMessage) -> OutboxMessage | None:
    message.refresh_from_db()
    return message if message.state == OutboxMessage.State.DONE else None


# --- In process (eager): every configuration, SQLite included. ---


@pytest.mark.django_db(transaction=True)
def test_eager_runs_after_commit_and_marks_done(project, celery_eager):
    verification, message = _request_verification(project)

    message.refresh_from_db()
    verification.refresh_from_db()
    assert verification.state == AuditVerification.State.DONE
    assert verification.result["ok"] is True
    assert message.state == OutboxMessage.State.DONE
    assert message.done_at is not None
    assert message.publish_count == 1
    assert message.kwargs == {"verification_id": verification.pk}


@pytest.mark.django_db(transaction=True)
def test_eager_rollback_runs_nothing(project, celery_eager):
    with pytest.raises(Rollback), transaction.atomic():
        verification = _verification(project)
        outbox_enqueue(TASK, kwargs={"verification_id": verification.pk})
        raise Rollback

    assert not OutboxMessage.objects.exists()
    assert not AuditVerification.objects.exists()


@pytest.mark.django_db
def test_nothing_is_published_before_commit(project, celery_eager, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        verification, message = _request_verification(project)
    verification.refresh_from_db()
    assert verification.state == AuditVerification.State.QUEUED
    assert len(callbacks) == 1

    callbacks[0]()
    verification.refresh_from_db()
    assert verification.state == AuditVerification.State.DONE
    assert _done(message)


@pytest.mark.django_db(transaction=True)
def test_eager_task_failure_is_recorded_not_raised(project, celery_eager, monkeypatch):
    def broken(chain, progress=None):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("governance.audit.chain.verify_chain", broken)
    verification, message = _request_verification(project)  # the caller's request goes on

    message.refresh_from_db()
    assert message.state == OutboxMessage.State.DONE  # it ran; retrying is the task's business
    assert message.last_error == "RuntimeError: disk on fire"
    verification.refresh_from_db()
    assert verification.state == AuditVerification.State.ERROR


@pytest.mark.django_db
def test_enqueue_refuses_unknown_tasks_and_large_kwargs():
    with pytest.raises(LookupError):
        outbox_enqueue("governance.tasks.no_such_task", kwargs={})
    with pytest.raises(ValueError, match="ids, not data"):
        outbox_enqueue(TASK, kwargs={"verification_id": 1, "rows": ["x" * 100] * 100})
    assert not OutboxMessage.objects.exists()


@pytest.mark.django_db
def test_sweep_republishes_due_rows_with_backoff(project, celery_eager, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):  # the message never left: a lost publish
        verification, message = _request_verification(project)
    message.refresh_from_db()
    assert message.republish_after == message.created_at + datetime.timedelta(
        seconds=settings.TOLLGATE_OUTBOX_REPUBLISH_SECONDS
    )
    assert outbox_republish_due() == 0  # not due yet

    assert outbox_republish_due(now=message.republish_after) == 1
    verification.refresh_from_db()
    assert verification.state == AuditVerification.State.DONE
    assert _done(message).publish_count == 1
    assert outbox_republish_due(now=message.republish_after + datetime.timedelta(days=1)) == 0


@pytest.mark.django_db
def test_backoff_doubles_and_is_capped(settings, monkeypatch):
    settings.TOLLGATE_OUTBOX_REPUBLISH_SECONDS = 60
    monkeypatch.setattr("controlplane.outbox._publish", lambda pk: True)
    now = timezone.now()
    message = OutboxMessage.objects.create(task_name=TASK, kwargs={"verification_id": 0}, republish_after=now)
    gaps = []
    for publishes in range(1, 10):
        OutboxMessage.objects.filter(pk=message.pk).update(publish_count=publishes, republish_after=now)
        assert outbox_republish_due(now=now) == 1
        message.refresh_from_db()
        gaps.append((message.republish_after - now).total_seconds())
    assert gaps == [120, 240, 480, 960, 1920, 3840, 3840, 3840, 3840]


@pytest.mark.django_db
def test_sweep_purges_old_done_rows_only(settings):
    settings.TOLLGATE_OUTBOX_RETENTION_DAYS = 7
    now = timezone.now()
    old = now - datetime.timedelta(days=8)
    recent = now - datetime.timedelta(days=6)
    kept_recent = OutboxMessage.objects.create(task_name=TASK, state="done", done_at=recent, republish_after=recent)
    kept_pending = OutboxMessage.objects.create(task_name=TASK, created_at=old, republish_after=now)
    OutboxMessage.objects.create(task_name=TASK, state="done", done_at=old, republish_after=old)

    assert outbox_purge_done(now=now) == 1
    assert set(OutboxMessage.objects.values_list("pk", flat=True)) == {kept_recent.pk, kept_pending.pk}


def test_beat_runs_the_sweeper_every_30_seconds():
    entry = settings.CELERY_BEAT_SCHEDULE["outbox-sweep"]
    assert entry["task"] == "controlplane.tasks.outbox_sweep" == outbox_sweep.name
    assert entry["schedule"] == 30.0


# --- A real worker and a real Redis. ---


@pytest.mark.worker
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_rolled_back_work_never_runs_committed_work_runs(project, celery_worker_process):
    with pytest.raises(Rollback), transaction.atomic():
        gone = _verification(project)
        outbox_enqueue(TASK, kwargs={"verification_id": gone.pk})
        raise Rollback
    assert not OutboxMessage.objects.exists()

    verification, message = _request_verification(project)

    message = wait_for(lambda: _done(message), message="the outbox row to be done")
    verification.refresh_from_db()
    assert verification.state == AuditVerification.State.DONE
    assert verification.result["ok"] is True
    assert message.publish_count == 1
    assert message.last_error == ""
    # The queue is FIFO and the worker runs one task at a time: a message of the rolled-back transaction
    # would have been received before this one.
    log = celery_worker_process.log()
    assert log.count(f"Task {TASK}[") == 2  # received, succeeded: one task only
    assert f"'verification_id': {gone.pk}}}" not in log


@pytest.mark.worker
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_redis_down_at_commit_runs_once_redis_is_back(project, private_redis, celery_worker_factory):
    private_redis.stop()

    started = time.monotonic()
    verification, message = _request_verification(project)  # does not raise
    assert time.monotonic() - started < 10

    message.refresh_from_db()
    assert message.state == OutboxMessage.State.PENDING
    assert message.publish_count == 0
    assert message.last_published_at is None
    assert message.last_error

    private_redis.start()
    worker = celery_worker_factory()
    time.sleep(1)
    verification.refresh_from_db()
    assert verification.state == AuditVerification.State.QUEUED  # nothing reached the broker

    _make_due(message)
    assert outbox_sweep()["republished"] == 1

    message = wait_for(lambda: _done(message), message="the outbox row to be done")
    verification.refresh_from_db()
    assert verification.state == AuditVerification.State.DONE
    assert message.publish_count == 1
    assert outbox_sweep()["republished"] == 0  # done rows are never published again
    time.sleep(0.5)
    assert worker.succeeded(TASK) == 1


@pytest.mark.worker
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_message_lost_by_a_broker_restart_is_republished(project, private_redis, celery_worker_factory):
    verification, message = _request_verification(project)
    message.refresh_from_db()
    assert message.publish_count == 1
    assert private_redis.queue_length("default") == 1

    private_redis.restart()  # no persistence: the message is gone
    assert private_redis.queue_length("default") == 0
    worker = celery_worker_factory()
    time.sleep(1)
    verification.refresh_from_db()
    assert verification.state == AuditVerification.State.QUEUED

    # As beat does it: the sweep runs in the worker, which publishes the lost row again.
    _make_due(message)
    outbox_sweep.delay()

    message = wait_for(lambda: _done(message), message="the outbox row to be done")
    verification.refresh_from_db()
    assert verification.state == AuditVerification.State.DONE
    assert message.publish_count == 2
    assert worker.succeeded("controlplane.tasks.outbox_sweep") == 1
    assert worker.succeeded(TASK) == 1


@pytest.mark.worker
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_row_published_twice_has_its_effect_once(project, private_redis, celery_worker_factory):
    verification, message = _request_verification(project)
    _make_due(message)
    assert outbox_republish_due() == 1  # the sweeper thought the first message lost; it was not
    assert private_redis.queue_length("default") == 2

    worker = celery_worker_factory()
    wait_for(lambda: worker.succeeded(TASK) == 2, message="both messages to run")

    message = _done(message)
    assert message is not None
    assert message.publish_count == 2
    verification.refresh_from_db()
    assert verification.state == AuditVerification.State.DONE
    # The first run verified and finished, then marked the row done; the second found the verification
    # claimed already and returned: had it verified again, ``finished_at`` would be later than ``done_at``.
    assert verification.finished_at <= message.done_at
    assert "already claimed" in worker.log()
