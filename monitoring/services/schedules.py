"""Scheduled runs and freshness (beat, on each monitor's own schedule): catch up on batches no run covers yet,
and say when data stopped coming."""

from __future__ import annotations

import datetime
import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, Max, OuterRef
from django.utils import timezone

from governance.audit.services import audit_record
from monitoring.models import Alert, CheckRun, CheckState, Monitor, MonitorKind, MonitorRevision

from ._common import _system
from .monitors import _monitored_version
from .runs import _run_get_or_create, _wants_run, batches_covered

log = logging.getLogger(__name__)


def monitor_scheduled(*, monitor_id: int, now: datetime.datetime | None = None) -> dict:
    """Beat, on the monitor's schedule: a run (through the outbox) of the current configuration for every
    batch it covers that has none at the batch's current revision (model_quality: only labelled batches; data
    checks: any revision counts), newest windows first, at most ``TOLLGATE_SCHEDULE_MAX_RUNS`` per tick (beyond
    a queue bound a run is created deferred, and queued when there is room: ``runs.check_runs_release``); then
    freshness: an alert when no batch arrived for ``freshness_hours`` -- once per silence."""
    now = now or timezone.now()
    monitor = Monitor.objects.select_related("project", "deployment", "model_version").filter(pk=monitor_id).first()
    if monitor is None or not monitor.active:
        log.info("monitor %s is gone or paused: nothing scheduled", monitor_id)
        return {"queued": 0, "deferred": 0, "alerted": False}
    revision = MonitorRevision.objects.get(monitor=monitor, revision=monitor.revision)
    covered = batches_covered(monitor)
    runs = CheckRun.objects.filter(monitor_revision=revision, batch=OuterRef("pk"))
    if monitor.kind == MonitorKind.MODEL_QUALITY:
        runs = runs.filter(batch_revision=OuterRef("revision"))
    unchecked = covered.filter(purged_at__isnull=True).exclude(Exists(runs)).order_by("-window_end", "-id")
    queued = deferred = 0
    for batch in unchecked[: settings.TOLLGATE_SCHEDULE_MAX_RUNS]:
        if not _wants_run(monitor, revision, batch):
            continue
        with transaction.atomic():
            run, created = _run_get_or_create(monitor, batch, None, revision)
        queued += created and run.state == CheckState.QUEUED
        deferred += created and run.state == CheckState.DEFERRED
    alerted = _freshness(monitor, revision.config, covered, now)
    if queued or deferred or alerted:
        log.info("monitor %s: %s run(s) queued by its schedule, %s deferred (queue bound)%s", monitor.pk, queued,
                 deferred, "; no data" if alerted else "")  # fmt: skip
    return {"queued": queued, "deferred": deferred, "alerted": alerted}


def _freshness(monitor: Monitor, config: dict, covered, now: datetime.datetime) -> bool:
    hours = config.get("freshness_hours")
    if not hours:
        return False
    last = covered.aggregate(last=Max("created_at"))["last"] or monitor.created_at
    if now - last <= datetime.timedelta(hours=hours):
        return False
    version = _monitored_version(monitor)
    where = monitor.deployment.environment.name if monitor.deployment_id else f"version {version.version}"
    message = (f"No batch has arrived for monitor {monitor.name} ({version.model.name}, {where}) since "
               f"{last.isoformat(timespec='seconds')}: more than {hours:g} hours.")  # fmt: skip
    try:
        with transaction.atomic():
            alert, created = Alert.objects.get_or_create(
                monitor=monitor, kind=Alert.NO_DATA, key=last.isoformat(),
                defaults={"project_id": monitor.project_id, "deployment": monitor.deployment,
                          "model_version": version, "message": message},
            )  # fmt: skip
            if created:
                audit_record(action="alert.raised", actor=_system(), project=monitor.project, target=alert,
                             diff={"monitor": monitor.name, "kind": alert.kind, "model": version.model.name,
                                   "last_batch_at": last, "freshness_hours": hours, "message": message})  # fmt: skip
    except IntegrityError:  # a concurrent tick raised it
        return False
    return created
