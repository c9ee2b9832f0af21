"""Requesting check runs ("run now", new batches and labels, schedules): one run per (monitor revision, batch,
batch revision), queued through the outbox in the caller's transaction so a rollback queues nothing.

Queue bounds (issue 13): at most ``TOLLGATE_CHECK_QUEUE_PER_PRINCIPAL`` runs queued or running that one
principal asked for (``requested_by``, across projects), and ``TOLLGATE_CHECK_QUEUE_PER_PROJECT`` in a
project (whoever asked, the schedule included). User-initiated work beyond a bound -- "run now", a new
batch's runs -- is refused whole (429 naming the bound; nothing changes, the batch is not stored). A labels
revision's runs (counted against the uploader) and scheduled runs are never refused nor dropped: beyond a
bound the run is created ``deferred`` (no outbox row) and ``check_runs_release`` queues it, oldest first,
when runs of the project end (and on the reaper's beat). The count and the create happen under per-project
and per-principal locks held to commit, so two requests cannot both take the last place."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from controlplane.exceptions import Conflict, DomainError, Gone, TooManyRequests
from controlplane.outbox import outbox_enqueue
from governance.accounts.access import Principal, require_in_project, require_role
from governance.accounts.models import Role, User
from monitoring.models import REFERENCE_KINDS, Batch, CheckRun, CheckState, Monitor, MonitorKind, MonitorRevision
from monitoring.selectors import reference_link_hint, reference_missing, reference_of

from ._common import _invalid

RUN_TASK = "monitoring.tasks.run_check"
RUNNERS = (Role.ML_ENGINEER, Role.GOVERNANCE_OFFICER, Role.ADMIN)

# What a queue bound counts: runs waiting for a worker or holding one. Running ones too, so a principal's
# unfinished work does not grow with the worker pool, and the reaper re-queueing a run changes no count.
IN_QUEUE = (CheckState.QUEUED, CheckState.RUNNING)
RETRY_AFTER_SECONDS = 30
# PostgreSQL advisory lock namespaces (pg_advisory_xact_lock(namespace, id)); nothing else takes these.
_LOCK_PROJECT_QUEUE = 0x54470001
_LOCK_PRINCIPAL_QUEUE = 0x54470002


def has_labels(monitor_config: dict, batch: Batch) -> bool:
    """Labels arrived for the batch (a revision above 1), or the batch carries the target column itself."""
    return batch.revision > 1 or any(c["name"] == monitor_config.get("target") for c in batch.schema or [])


def _wants_run(monitor: Monitor, revision: MonitorRevision, batch: Batch) -> bool:
    """Whether a run of the monitor on the batch is due. Never for a monitor in ``needs_reference`` (a kind that
    compares with reference data the batch's version does not have): it would end in ``error``."""
    if batch.purged_at is not None:
        return False
    if monitor.kind in REFERENCE_KINDS and reference_of(batch.model_version) is None:
        return False
    return monitor.kind != MonitorKind.MODEL_QUALITY or has_labels(revision.config, batch)


def _queue_lock(project_id: int, user_ids: Iterable[int] = ()) -> None:
    """Serialise counting and creating runs per project and per principal until the transaction ends.
    Always the project first, then principals by id, so transactions taking several never deadlock. SQLite
    runs one writing transaction at a time (IMMEDIATE) and needs none."""
    assert connection.in_atomic_block, "a queue lock is held to the end of a transaction"
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_PROJECT_QUEUE, project_id % 2**31])
        for user_id in sorted(set(user_ids)):
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_PRINCIPAL_QUEUE, user_id % 2**31])


def _in_queue(**scope) -> int:
    return CheckRun.objects.filter(state__in=IN_QUEUE, **scope).count()


def _queue_full(project_id: int, user: User | None, needed: int = 1) -> DomainError | None:
    """Under the queue locks: None when ``needed`` more runs fit both bounds; else the refusal naming the
    bound (429; 409 when they would not fit even an empty queue, so waiting cannot help)."""
    _queue_lock(project_id, [user.pk] if user else [])
    bounds = [("project", "TOLLGATE_CHECK_QUEUE_PER_PROJECT", {"project_id": project_id})]
    if user is not None:
        bounds.insert(0, ("principal", "TOLLGATE_CHECK_QUEUE_PER_PRINCIPAL", {"requested_by": user}))
    for bound, setting, scope in bounds:
        limit = getattr(settings, setting)
        details = [{"limit": f"per_{bound}", "setting": setting, "value": limit}]
        if needed > limit:
            return Conflict(
                f"This needs {needed} check runs at once; the limit per {bound} is {limit} ({setting}).",
                code="check_queue_too_small", details=[{**details[0], "needed": needed}],
            )  # fmt: skip
        count = _in_queue(**scope)
        if count + needed > limit:
            whose = f"{user.username} has" if bound == "principal" else "This project has"
            this = "" if needed == 1 else f" and this needs {needed} more"
            return TooManyRequests(
                f"{whose} {count} check runs queued or running{this}; the limit per {bound} is {limit} "
                f"({setting}). Try again when some have finished.",
                code="check_queue_full", retry_after=RETRY_AFTER_SECONDS,
                details=[{**details[0], "in_queue": count, "needed": needed}],
            )  # fmt: skip
    return None


def check_queue_room(*, project_id: int, actor: Principal, needed: int) -> None:
    """Refuse user-initiated work of ``needed`` new runs that would exceed a bound. Holds the queue locks to
    the end of the caller's transaction, which then creates the runs (``_run_get_or_create(defer=False)``)."""
    full = _queue_full(project_id, actor.user, needed)
    if full is not None:
        raise full


def _run_get_or_create(monitor: Monitor, batch: Batch, actor: Principal | None, revision: MonitorRevision | None = None,
                       *, defer: bool = True) -> tuple[CheckRun, bool]:  # fmt: skip
    """The run of (the monitor's current revision, batch, batch revision): existing, or created and queued.
    Data checks do not depend on labels: any batch revision's run of this monitor revision is theirs. When a
    queue bound is reached the new run is ``deferred`` (``defer``), or the caller is refused with 429."""
    revision = revision or MonitorRevision.objects.get(monitor=monitor, revision=monitor.revision)
    key = {"monitor_revision": revision, "batch": batch, "batch_revision": batch.revision}
    if monitor.kind == MonitorKind.MODEL_QUALITY:
        existing = CheckRun.objects.filter(**key).first()
    else:
        existing = CheckRun.objects.filter(monitor_revision=revision, batch=batch).order_by("-batch_revision").first()
    if existing is not None:
        return existing, False
    user = actor.user if actor else None
    full = _queue_full(batch.project_id, user)
    if full is not None and not defer:
        raise full
    try:
        with transaction.atomic():
            run = CheckRun.objects.create(
                **key, project_id=batch.project_id, monitor=monitor, model_version_id=batch.model_version_id,
                kind=monitor.kind, requested_by=user, state=CheckState.DEFERRED if full else CheckState.QUEUED,
            )  # fmt: skip
            if not full:
                outbox_enqueue(RUN_TASK, kwargs={"run_id": run.pk})
    except IntegrityError:
        return CheckRun.objects.get(**key), False
    return run, True


_releasing = threading.local()


def check_runs_release(*, project_id: int) -> int:
    """Queue the project's deferred runs, oldest first, while the bounds have room (the project's, and the
    principal's for a run someone asked for); returns how many. Called when a run of the project ends and by
    the reaper's beat; safe to call at any time, concurrently too."""
    if getattr(_releasing, "active", False):
        return 0  # in process (Celery eager) a released run ran inside the outer call, which goes on
    _releasing.active = True
    try:
        released = 0
        while batch := _release_some(project_id):  # in process the released runs ran: room again
            released += batch
        return released
    finally:
        _releasing.active = False


@transaction.atomic
def _release_some(project_id: int) -> int:
    deferred = CheckRun.objects.filter(project_id=project_id, state=CheckState.DEFERRED)
    users = list(deferred.exclude(requested_by=None).order_by().values_list("requested_by", flat=True).distinct())
    _queue_lock(project_id, users)
    room = settings.TOLLGATE_CHECK_QUEUE_PER_PROJECT - _in_queue(project_id=project_id)
    if room <= 0:
        return 0
    busy = dict(
        CheckRun.objects.filter(state__in=IN_QUEUE, requested_by__in=users)
        .order_by().values_list("requested_by").annotate(n=Count("id"))
    )  # fmt: skip
    principal_room = {user: settings.TOLLGATE_CHECK_QUEUE_PER_PRINCIPAL - busy.get(user, 0) for user in users}
    full = [user for user, left in principal_room.items() if left <= 0]
    released, now = 0, timezone.now()
    candidates = deferred.exclude(requested_by__in=full).order_by("created_at", "id")
    for run_id, user in candidates.values_list("pk", "requested_by").iterator():
        if room <= 0:
            break
        if user is not None and principal_room.get(user, 0) <= 0:
            continue  # that principal's queue is full (or they deferred it after the lock: next time)
        if CheckRun.objects.filter(pk=run_id, state=CheckState.DEFERRED).update(state=CheckState.QUEUED, queued_at=now):
            outbox_enqueue(RUN_TASK, kwargs={"run_id": run_id})
            room, released = room - 1, released + 1
            if user is not None:
                principal_room[user] -= 1
    return released


@transaction.atomic
def check_run_request(*, actor: Principal, monitor: Monitor, batch: Batch | None = None) -> tuple[CheckRun, bool]:
    """ "Run now": the run of the monitor's current configuration on ``batch`` (default: the latest batch
    it covers). An existing run is returned as it is, unless the configuration changed since. A new run
    beyond a queue bound is refused (429 naming the bound)."""
    require_role(actor, monitor.project, RUNNERS, action="run checks")
    require_in_project(monitor.project, batch=batch)
    monitor = Monitor.objects.select_for_update().get(pk=monitor.pk)
    if not monitor.active:
        raise Conflict("This monitor is paused; activate it first.", code="monitor_inactive")
    covered = batches_covered(monitor)
    if batch is None:
        batch = covered.order_by("-window_end", "-id").first()
        if batch is None:
            raise Conflict("No batch has arrived for this monitor yet.", code="no_batch")
    elif not covered.filter(pk=batch.pk).exists():
        raise _invalid("batch", "this monitor does not cover that batch (another deployment or version)")
    batch = Batch.objects.get(pk=batch.pk)
    if batch.purged_at is not None:
        raise Gone("The batch's data was deleted under the project's retention.", code="purged")
    revision = MonitorRevision.objects.get(monitor=monitor, revision=monitor.revision)
    if monitor.kind in REFERENCE_KINDS and reference_of(batch.model_version) is None:
        version, why = batch.model_version, reference_missing(batch.model_version, monitor.kind)
        raise Conflict(
            f"This monitor needs reference data: {why}", code="needs_reference",
            details=[{"monitor": monitor.pk, "link_reference": reference_link_hint(version)}],
        )  # fmt: skip
    if not _wants_run(monitor, revision, batch):
        raise Conflict("No labels have arrived for this batch yet (POST .../batches/{id}/labels/).", code="no_labels")
    return _run_get_or_create(monitor, batch, actor, revision, defer=False)


def batches_covered(monitor: Monitor):
    """The batches a monitor checks: its version's, or its deployment's."""
    return Batch.objects.filter(project=monitor.project_id).filter(
        Q(model_version=monitor.model_version_id) if monitor.model_version_id else Q(deployment=monitor.deployment_id)
    )
