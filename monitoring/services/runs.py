"""Requesting check runs ("run now", new batches and labels, schedules): one run per (monitor revision, batch,
batch revision), queued through the outbox in the caller's transaction so a rollback queues nothing."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import Q

from controlplane.api.errors import Conflict, DomainError
from controlplane.outbox import outbox_enqueue
from governance.access import Principal, require_in_project, require_role
from governance.models import Role
from monitoring.models import Batch, CheckRun, Monitor, MonitorKind, MonitorRevision

from ._common import _invalid

RUN_TASK = "monitoring.tasks.run_check"
RUNNERS = (Role.ML_ENGINEER, Role.GOVERNANCE_OFFICER, Role.ADMIN)


def has_labels(monitor_config: dict, batch: Batch) -> bool:
    """Labels arrived for the batch (a revision above 1), or the batch carries the target column itself."""
    return batch.revision > 1 or any(c["name"] == monitor_config.get("target") for c in batch.schema or [])


def _wants_run(monitor: Monitor, revision: MonitorRevision, batch: Batch) -> bool:
    if batch.purged_at is not None:
        return False
    return monitor.kind != MonitorKind.MODEL_QUALITY or has_labels(revision.config, batch)


def _run_get_or_create(monitor: Monitor, batch: Batch, actor: Principal | None,
                       revision: MonitorRevision | None = None) -> tuple[CheckRun, bool]:  # fmt: skip
    """The run of (the monitor's current revision, batch, batch revision): existing, or created and queued.
    Data checks do not depend on labels: any batch revision's run of this monitor revision is theirs."""
    revision = revision or MonitorRevision.objects.get(monitor=monitor, revision=monitor.revision)
    key = {"monitor_revision": revision, "batch": batch, "batch_revision": batch.revision}
    if monitor.kind == MonitorKind.MODEL_QUALITY:
        existing = CheckRun.objects.filter(**key).first()
    else:
        existing = CheckRun.objects.filter(monitor_revision=revision, batch=batch).order_by("-batch_revision").first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            run = CheckRun.objects.create(
                **key, project_id=batch.project_id, monitor=monitor, model_version_id=batch.model_version_id,
                kind=monitor.kind, requested_by=actor.user if actor else None,
            )  # fmt: skip
            outbox_enqueue(RUN_TASK, kwargs={"run_id": run.pk})
    except IntegrityError:
        return CheckRun.objects.get(**key), False
    return run, True


@transaction.atomic
def check_run_request(*, actor: Principal, monitor: Monitor, batch: Batch | None = None) -> tuple[CheckRun, bool]:
    """ "Run now": the run of the monitor's current configuration on ``batch`` (default: the latest batch
    it covers). An existing run is returned as it is, unless the configuration changed since."""
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
        raise DomainError("The batch's data was deleted under the project's retention.", code="purged", status=410)
    revision = MonitorRevision.objects.get(monitor=monitor, revision=monitor.revision)
    if not _wants_run(monitor, revision, batch):
        raise Conflict("No labels have arrived for this batch yet (POST .../batches/{id}/labels/).", code="no_labels")
    return _run_get_or_create(monitor, batch, actor, revision)


def batches_covered(monitor: Monitor):
    """The batches a monitor checks: its version's, or its deployment's."""
    return Batch.objects.filter(project=monitor.project_id).filter(
        Q(model_version=monitor.model_version_id) if monitor.model_version_id else Q(deployment=monitor.deployment_id)
    )
