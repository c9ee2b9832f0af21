"""Monitors and their configuration (DESIGN §4 Monitoring). A changed configuration is a new revision, so
every run keeps the settings it ran with; the monitor's beat entry follows its configuration in the same
transaction."""

from __future__ import annotations

import json

from django.db import IntegrityError, transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from controlplane.changes import changes
from controlplane.exceptions import Conflict
from governance.accounts.access import Principal, require_in_project, require_role
from governance.accounts.models import Project
from governance.audit.chain import canonical, digest
from governance.audit.services import audit_record
from governance.promotion.models import Deployment
from governance.registry.models import ModelVersion
from monitoring.models import Monitor, MonitorKind, MonitorRevision

from ._common import WRITERS, _invalid
from .monitor_configs import crontab_fields, monitor_config_validate


def _config_hash(config: dict) -> str:
    return digest(canonical(config))


# --- Monitors ----------------------------------------------------------------------------------------------


def _monitored_version(monitor: Monitor) -> ModelVersion:
    return monitor.deployment.model_version if monitor.deployment_id else monitor.model_version


@transaction.atomic
def monitor_create(
    *,
    actor: Principal,
    project: Project,
    name: str,
    kind: str,
    config: dict,
    deployment: Deployment | None = None,
    model_version: ModelVersion | None = None,
) -> Monitor:
    """A monitor of a deployment (whatever version it runs) or of one model version, with revision 1."""
    require_role(actor, project, WRITERS, action="create monitors")
    if kind not in MonitorKind.values:
        raise _invalid("kind", f"one of {', '.join(MonitorKind.values)}")
    if (deployment is None) == (model_version is None):
        raise _invalid("environment", "a monitor watches a deployment (model and environment) or a version")
    require_in_project(project, deployment=deployment, model_version=model_version)
    target = deployment.model_version if deployment else model_version
    model = deployment.model if deployment else model_version.model
    config = monitor_config_validate(kind, config, version=target)
    if Monitor.objects.filter(project=project, name=name).exists():
        raise Conflict(f"A monitor named '{name}' exists in this project.", details=[{"field": "name"}])
    try:
        with transaction.atomic():
            monitor = Monitor.objects.create(
                project=project, model=model, deployment=deployment, model_version=model_version, name=name,
                kind=kind, created_by=actor.user,
            )  # fmt: skip
    except IntegrityError:
        raise Conflict(f"A monitor named '{name}' exists in this project.") from None
    MonitorRevision.objects.create(
        monitor=monitor, revision=1, config=config, config_hash=_config_hash(config), created_by=actor.user
    )
    _schedule_sync(monitor, config)
    audit_record(
        action="monitor.created", actor=actor, project=project, target=monitor,
        diff={"name": name, "kind": kind, "model": model.name,
              "environment": deployment.environment.name if deployment else None,
              "version": model_version.version if model_version else None, "revision": 1, "config": config},
    )  # fmt: skip
    return monitor


@transaction.atomic
def monitor_update(
    *, actor: Principal, monitor: Monitor, config: dict | None = None, active: bool | None = None
) -> Monitor:
    """A changed configuration becomes a new revision (runs keep the revision they ran with); the same
    configuration again changes nothing."""
    require_role(actor, monitor.project, WRITERS, action="edit monitors")
    monitor = (
        Monitor.objects.select_for_update(of=("self",))
        .select_related("project", "deployment__model_version", "model_version")
        .get(pk=monitor.pk)
    )
    current = monitor.revisions.get(revision=monitor.revision)
    before = {"revision": monitor.revision, "active": monitor.active, "config": current.config}
    update_fields = []
    if config is not None:
        config = monitor_config_validate(monitor.kind, config, version=_monitored_version(monitor))
        if _config_hash(config) != current.config_hash:
            monitor.revision += 1
            MonitorRevision.objects.create(
                monitor=monitor, revision=monitor.revision, config=config, config_hash=_config_hash(config),
                created_by=actor.user,
            )  # fmt: skip
            update_fields.append("revision")
    if active is not None and active != monitor.active:
        monitor.active = active
        update_fields.append("active")
    if update_fields:
        monitor.updated_at = timezone.now()
        monitor.save(update_fields=[*update_fields, "updated_at"])
        after = {"revision": monitor.revision, "active": monitor.active,
                 "config": current.config if config is None else config}  # fmt: skip
        audit_record(action="monitor.updated", actor=actor, project=monitor.project, target=monitor,
                     diff=changes(before, after))  # fmt: skip
        _schedule_sync(monitor, after["config"])
    return monitor


# --- Schedules (django-celery-beat rows owned by the monitor) -------------------------------------------------

SCHEDULED_TASK = "monitoring.tasks.monitor_scheduled"


def schedule_task_name(monitor_id: int) -> str:
    return f"tollgate:monitor:{monitor_id}"


def _schedule_sync(monitor: Monitor, config: dict) -> None:
    """The monitor's beat entry follows its configuration: created, changed, paused with it, or deleted. In
    the transaction that changes the monitor. Beat's database scheduler notices the change itself."""
    name = schedule_task_name(monitor.pk)
    schedule = config.get("schedule")
    if not schedule:
        PeriodicTask.objects.filter(name=name).delete()
        return
    if "every_minutes" in schedule:
        interval, _ = IntervalSchedule.objects.get_or_create(every=schedule["every_minutes"],
                                                             period=IntervalSchedule.MINUTES)  # fmt: skip
        when = {"interval": interval, "crontab": None}
    else:
        crontab, _ = CrontabSchedule.objects.get_or_create(**crontab_fields(schedule["crontab"]), timezone="UTC")
        when = {"crontab": crontab, "interval": None}
    PeriodicTask.objects.update_or_create(
        name=name,
        defaults={
            "task": SCHEDULED_TASK, "kwargs": json.dumps({"monitor_id": monitor.pk}), "enabled": monitor.active,
            "description": f"Monitor {monitor.name} of project {monitor.project_id}: managed by Tollgate from the "
                           "monitor's configuration (edits here are overwritten).",
            **when,
        },
    )  # fmt: skip
