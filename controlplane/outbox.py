"""The outbox (DESIGN §7): enqueue work after commit, and never lose it.

Usage, inside the transaction that creates the work::

    with transaction.atomic():
        run = CheckRun.objects.create(..., state="queued")
        outbox_enqueue("monitoring.tasks.run_check", kwargs={"run_id": run.pk})

The row commits (or rolls back) with the caller's change; the message is published after commit. Its
``outbox_id`` header ties the message to the row: when a worker has run the task, the row becomes ``done``.
If the broker is down, the row stays ``pending`` and the request goes on; beat's sweeper
(``controlplane.tasks.outbox_sweep``) publishes it again later. A message can therefore arrive twice (a
sweep after a lost message that was not lost, a redelivery): **every task enqueued through the outbox must be
safe to run twice** -- it claims its row with a conditional update (``queued -> running``, STYLE.md) and
returns quietly when the claim fails.

Without ``REDIS_URL`` Celery is eager: the task runs in process right after commit and the row ends done.
"""

from __future__ import annotations

import datetime
import importlib
import json
import logging

from celery.signals import task_postrun, task_prerun
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from controlplane.backoff import backoff_seconds
from controlplane.celery import app
from controlplane.models import OutboxMessage

log = logging.getLogger(__name__)

HEADER = "outbox_id"
MAX_KWARGS_BYTES = 4096
SWEEP_BATCH = 500
# A republish waits the threshold, then twice, four times ... up to 64 times it (about an hour by default),
# so work nobody consumes (no worker for its queue) does not pile up copies in the broker.
MAX_BACKOFF_DOUBLINGS = 6
# After a task starts, its row is not republished before the hard time limit plus this margin has passed.
RUNNING_MARGIN_SECONDS = 60
# One quick retry of a failed publish: with the broker down the request should not wait on it; the sweeper
# publishes the row later anyway.
RETRY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


def _threshold() -> datetime.timedelta:
    return datetime.timedelta(seconds=settings.TOLLGATE_OUTBOX_REPUBLISH_SECONDS)


def _backoff(publish_number: int) -> datetime.timedelta:
    """How long after the ``publish_number``-th publish (1-based) the sweeper tries again."""
    base = settings.TOLLGATE_OUTBOX_REPUBLISH_SECONDS
    return datetime.timedelta(seconds=backoff_seconds(publish_number, base=base, cap=base * 2**MAX_BACKOFF_DOUBLINGS))


def _task(task_name: str):
    """The task registered as ``task_name``: Celery's default name, ``<module>.<function>``, whose module is
    imported if need be (the web process does not load every task module as a worker does)."""
    if task_name not in app.tasks:
        module = task_name.rpartition(".")[0]
        try:
            importlib.import_module(module)
        except (ImportError, ValueError) as exc:
            raise LookupError(f"no Celery task named {task_name!r}: {exc}") from exc
    try:
        return app.tasks[task_name]
    except KeyError:
        raise LookupError(f"no Celery task named {task_name!r}") from None


def outbox_enqueue(task_name: str, *, kwargs: dict, queue: str | None = None) -> OutboxMessage:
    """Write an outbox row in the caller's transaction; publish the task after commit.

    ``kwargs`` are ids and small values (JSON, at most 4 KB); ``queue`` overrides the task's route. An unknown
    task name or unfit kwargs raise here, inside the transaction; a broker failure after commit never raises.
    """
    _task(task_name)
    encoded = json.dumps(kwargs)
    if len(encoded.encode("utf-8")) > MAX_KWARGS_BYTES:
        raise ValueError(f"outbox kwargs of {task_name} exceed {MAX_KWARGS_BYTES} bytes: pass ids, not data")
    now = timezone.now()
    message = OutboxMessage.objects.create(
        task_name=task_name,
        kwargs=json.loads(encoded),
        queue=queue or "",
        created_at=now,
        republish_after=now + _backoff(1),
    )
    transaction.on_commit(lambda: _publish(message.pk), robust=True)
    return message


def _publish(message_id: int) -> bool:
    """Send the row's task to the broker. Never raises: a failure is logged and left to the sweeper."""
    message = OutboxMessage.objects.filter(pk=message_id, state=OutboxMessage.State.PENDING).first()
    if message is None:
        return False
    try:
        _task(message.task_name).apply_async(
            kwargs=message.kwargs, queue=message.queue or None, headers={HEADER: message.pk}, retry_policy=RETRY
        )
    except Exception as exc:  # noqa: BLE001 -- the request (or the sweep) must go on
        if app.conf.task_always_eager:  # the task ran here and raised; the row is done already
            log.exception("outbox #%s: %s failed in process", message.pk, message.task_name)
            OutboxMessage.objects.filter(pk=message.pk).update(last_error=_describe(exc))
            return False
        log.warning("outbox #%s: publishing %s failed, left to the sweeper: %r", message.pk, message.task_name, exc)
        OutboxMessage.objects.filter(pk=message.pk, state=OutboxMessage.State.PENDING).update(
            last_error=_describe(exc), republish_after=timezone.now() + _threshold()
        )
        return False
    OutboxMessage.objects.filter(pk=message.pk).update(
        publish_count=F("publish_count") + 1, last_published_at=timezone.now()
    )
    return True


def outbox_republish_due(*, now: datetime.datetime | None = None, limit: int = SWEEP_BATCH) -> int:
    """Publish again the pending rows whose ``republish_after`` has passed; returns how many were published.

    Each row is claimed first by a conditional update of ``republish_after``, so two sweeps running at once
    do not both publish it."""
    now = now or timezone.now()
    due = list(
        OutboxMessage.objects.filter(state=OutboxMessage.State.PENDING, republish_after__lte=now)
        .order_by("republish_after")
        .values_list("pk", "republish_after", "publish_count")[:limit]
    )
    published = 0
    for pk, republish_after, publish_count in due:
        claimed = OutboxMessage.objects.filter(
            pk=pk, state=OutboxMessage.State.PENDING, republish_after=republish_after
        ).update(republish_after=now + _backoff(publish_count + 1))
        if claimed and _publish(pk):
            published += 1
    if due:
        log.info("outbox sweep: %s of %s due rows published", published, len(due))
    return published


def outbox_purge_done(*, now: datetime.datetime | None = None) -> int:
    """Delete done rows older than ``TOLLGATE_OUTBOX_RETENTION_DAYS``; returns how many."""
    cutoff = (now or timezone.now()) - datetime.timedelta(days=settings.TOLLGATE_OUTBOX_RETENTION_DAYS)
    deleted, _ = OutboxMessage.objects.filter(state=OutboxMessage.State.DONE, done_at__lt=cutoff).delete()
    if deleted:
        log.info("outbox: %s done rows older than %s deleted", deleted, cutoff.isoformat())
    return deleted


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


def _outbox_id(task) -> int | None:
    request = getattr(task, "request", None)
    if request is None:
        return None
    value = (request.headers or {}).get(HEADER) or getattr(request, HEADER, None)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def outbox_defer(task, *, seconds: float) -> None:
    """A task from the outbox is about to retry itself in ``seconds``: its row is not republished before
    that retry could have run (plus the usual hold), so the sweeper does not bring it forward."""
    message_id = _outbox_id(task)
    if message_id is None:
        return
    limit = getattr(task, "time_limit", None) or app.conf.task_time_limit or 0
    hold = max(datetime.timedelta(seconds=limit + RUNNING_MARGIN_SECONDS), _threshold())
    OutboxMessage.objects.filter(pk=message_id, state=OutboxMessage.State.PENDING).update(
        republish_after=timezone.now() + datetime.timedelta(seconds=seconds) + hold
    )


@task_prerun.connect(dispatch_uid="controlplane.outbox.started")
def _on_task_started(sender=None, task=None, **_):
    """A task from the outbox started: no republish before it could have hit its hard time limit."""
    message_id = _outbox_id(task)
    if message_id is None:
        return
    limit = getattr(task, "time_limit", None) or app.conf.task_time_limit or 0
    hold = max(datetime.timedelta(seconds=limit + RUNNING_MARGIN_SECONDS), _threshold())
    OutboxMessage.objects.filter(pk=message_id, state=OutboxMessage.State.PENDING).update(
        republish_after=timezone.now() + hold
    )


@task_postrun.connect(dispatch_uid="controlplane.outbox.finished")
def _on_task_finished(sender=None, task=None, retval=None, state=None, **_):
    """A task from the outbox ran: its row is done (an exception is recorded; retrying is the task's job).
    A retry keeps the row pending: the retry message carries the same header."""
    message_id = _outbox_id(task)
    if message_id is None or state in ("RETRY", "REJECTED"):
        return
    error = _describe(retval) if state == "FAILURE" and isinstance(retval, BaseException) else ""
    updates = {"state": OutboxMessage.State.DONE, "done_at": timezone.now()}
    if error:
        updates["last_error"] = error
    OutboxMessage.objects.filter(pk=message_id, state=OutboxMessage.State.PENDING).update(**updates)


__all__ = ["HEADER", "outbox_defer", "outbox_enqueue", "outbox_purge_done", "outbox_republish_due"]
