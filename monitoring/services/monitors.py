"""Monitors and their configuration (DESIGN §4 Monitoring). A changed configuration is a new revision, so
every run keeps the settings it ran with; the monitor's beat entry follows its configuration in the same
transaction."""

from __future__ import annotations

import json
import math
from typing import Any

from celery.schedules import crontab
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from controlplane.changes import changes
from controlplane.exceptions import Conflict, DomainError
from governance.accounts.access import Principal, require_in_project, require_role
from governance.accounts.models import Project
from governance.audit.chain import canonical, digest
from governance.audit.services import audit_record
from governance.promotion.models import Deployment
from governance.registry.models import ModelVersion
from monitoring.checks import definitions, engine
from monitoring.models import Monitor, MonitorKind, MonitorRevision

from ._common import CHECKED_AS, WRITERS, _invalid, _signature_columns

# --- Monitor configuration ---------------------------------------------------------------------------------

DRIFT_KEYS = {"columns", "num_method", "num_threshold", "cat_method", "cat_threshold", "per_column",
              "max_drifted_columns", "fdr", "drift_share"}  # fmt: skip
QUALITY_SHARES = ("max_missing_share", "max_out_of_range_share", "max_unseen_share")
QUALITY_KEYS = {"columns", *QUALITY_SHARES, "min_rows", "max_rows", "per_column"}
MODEL_QUALITY_KEYS = {"task", "target", "prediction", "pos_label", "probas_threshold", "thresholds"}
SCHEDULE_KEYS = {"schedule", "freshness_hours"}  # every kind: when the monitor runs, and when silence alerts


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def monitor_config_validate(kind: str, config: Any, *, version: ModelVersion | None) -> dict:
    """The configuration, checked key by key; a DomainError lists every problem with its path."""
    problems: list[tuple[str, str]] = []
    if not isinstance(config, dict):
        raise _invalid("config", "a mapping")
    allowed = {MonitorKind.DATA_DRIFT: DRIFT_KEYS, MonitorKind.DATA_QUALITY: QUALITY_KEYS,
               MonitorKind.MODEL_QUALITY: MODEL_QUALITY_KEYS}.get(kind, set()) | SCHEDULE_KEYS  # fmt: skip
    problems += [(f"config.{key}", "unknown key") for key in sorted(set(config) - allowed)]
    problems += _schedule_problems(config)
    signature = _signature_columns(version) if version is not None else {}
    if kind == MonitorKind.MODEL_QUALITY:
        problems += _model_quality_problems(config, version)
        if problems:
            raise DomainError(
                "The monitor's configuration is not valid.",
                code="invalid_config",
                details=[{"field": path, "message": message} for path, message in problems],
            )
        return config
    columns = config.get("columns")
    if columns is not None:
        if not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns):
            problems.append(("config.columns", "a non-empty list of column names"))
        elif signature:
            unknown = [c for c in columns if c not in signature]
            if unknown:
                problems.append(("config.columns", f"not in the model's signature: {', '.join(unknown)}"))
    per_column = config.get("per_column", {})
    if not isinstance(per_column, dict) or not all(isinstance(v, dict) for v in per_column.values()):
        problems.append(("config.per_column", "a mapping of column name to its settings"))
        per_column = {}
    if kind == MonitorKind.DATA_DRIFT:
        for prefix, column_type in (("num", definitions.NUMERICAL), ("cat", definitions.CATEGORICAL)):
            spec = {"method": config.get(f"{prefix}_method"), "threshold": config.get(f"{prefix}_threshold")}
            problems += _method_problems(spec, f"config.{prefix}_", column_type)
        for column, own in per_column.items():
            unknown = sorted(set(own) - {"method", "threshold"})
            problems += [(f"config.per_column.{column}.{key}", "unknown key") for key in unknown]
            column_type = CHECKED_AS.get(signature.get(column, ""), None)
            problems += _method_problems(own, f"config.per_column.{column}.", column_type)
        limit = config.get("max_drifted_columns", 0)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            problems.append(("config.max_drifted_columns", "a whole number, 0 or more"))
        fdr = config.get("fdr", 0.05)
        if fdr is not None and not (_is_number(fdr) and 0 < fdr < 1):
            problems.append(("config.fdr", "a false discovery rate between 0 and 1, or null (no correction)"))
        share = config.get("drift_share")
        if share is not None and not (_is_number(share) and 0 < share <= 1):
            problems.append(("config.drift_share", "a share above 0, at most 1"))
    else:
        for key in QUALITY_SHARES:
            if key in config and not (_is_number(config[key]) and 0 <= config[key] <= 1):
                problems.append((f"config.{key}", "a share from 0 to 1"))
        for key in ("min_rows", "max_rows"):
            value = config.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                problems.append((f"config.{key}", "a whole number, 0 or more"))
        for column, own in per_column.items():
            path = f"config.per_column.{column}"
            problems += [(f"{path}.{key}", "unknown key") for key in sorted(set(own) - {*QUALITY_SHARES, "range"})]
            for key in QUALITY_SHARES:
                if key in own and not (_is_number(own[key]) and 0 <= own[key] <= 1):
                    problems.append((f"{path}.{key}", "a share from 0 to 1"))
            bounds = own.get("range")
            if bounds is not None and not (
                isinstance(bounds, list)
                and len(bounds) == 2
                and all(map(_is_number, bounds))
                and bounds[0] <= bounds[1]
            ):
                problems.append((f"{path}.range", "[low, high], two numbers, low <= high"))
    if signature:
        problems += [
            (f"config.per_column.{c}", "not in the model's signature") for c in per_column if c not in signature
        ]
    if problems:
        raise DomainError(
            "The monitor's configuration is not valid.",
            code="invalid_config",
            details=[{"field": path, "message": message} for path, message in problems],
        )
    return config


def _schedule_problems(config: dict) -> list:
    problems = []
    schedule = config.get("schedule")
    if schedule is not None:
        if not isinstance(schedule, dict) or len(schedule) != 1 or not set(schedule) <= {"every_minutes", "crontab"}:
            problems.append(("config.schedule", '{"every_minutes": N} or {"crontab": "m h dom mon dow"}'))
        elif "every_minutes" in schedule:
            every = schedule["every_minutes"]
            if not isinstance(every, int) or isinstance(every, bool) or not 1 <= every <= 7 * 24 * 60:
                problems.append(("config.schedule.every_minutes", "a whole number of minutes, 1 to 10080"))
        else:
            try:
                _crontab_fields(schedule["crontab"])
            except (ValueError, TypeError, AttributeError):
                problems.append(("config.schedule.crontab", 'five crontab fields, e.g. "0 * * * *" (UTC)'))
    hours = config.get("freshness_hours")
    if hours is not None:
        if not (_is_number(hours) and 0 < hours <= 24 * 366):
            problems.append(("config.freshness_hours", "a number of hours above 0"))
        elif schedule is None:
            problems.append(("config.freshness_hours", "needs a schedule: freshness is evaluated when it runs"))
    return problems


def _crontab_fields(text: str) -> dict:
    minute, hour, day_of_month, month_of_year, day_of_week = text.split()
    fields = {"minute": minute, "hour": hour, "day_of_month": day_of_month, "month_of_year": month_of_year,
              "day_of_week": day_of_week}  # fmt: skip
    crontab(**fields)  # parses every field; ValueError when one is not valid
    return fields


def _model_quality_problems(config: dict, version: ModelVersion | None) -> list:
    """task, target (a column of the labels), prediction (an output of the signature; default its first),
    pos_label, probas_threshold, thresholds ``{metric: {condition: bound}}``."""
    problems = []
    task = config.get("task")
    if task not in (definitions.CLASSIFICATION, definitions.REGRESSION):
        problems.append(("config.task", "classification or regression"))
    if not isinstance(config.get("target"), str) or not config.get("target"):
        problems.append(("config.target", "the name of the label column (in the labels or the batch)"))
    outputs = [c["name"] for c in ((version.signature or {}).get("outputs") or [])] if version else []
    prediction = config.get("prediction")
    if prediction is not None and (not isinstance(prediction, str) or (outputs and prediction not in outputs)):
        problems.append(("config.prediction", f"one of the signature's outputs: {', '.join(outputs) or 'none'}"))
    if prediction is None and version is not None and not outputs:
        problems.append(("config.prediction", "the signature has no output: name the prediction column"))
    threshold = config.get("probas_threshold")
    if threshold is not None and not (_is_number(threshold) and 0 < threshold < 1):
        problems.append(("config.probas_threshold", "a probability between 0 and 1"))
    if "pos_label" in config and not isinstance(config["pos_label"], str | int | bool):
        problems.append(("config.pos_label", "a label value (text, number or boolean)"))
    thresholds = config.get("thresholds", {})
    known = definitions.QUALITY_METRICS.get(task, {})
    if not isinstance(thresholds, dict):
        problems.append(("config.thresholds", "a mapping of metric to {condition: bound}"))
        thresholds = {}
    for name, spec in thresholds.items():
        path = f"config.thresholds.{name}"
        if known and name not in known:
            problems.append((path, f"one of {', '.join(known)} for {task}"))
        elif not (isinstance(spec, dict) and len(spec) == 1 and set(spec) <= set(definitions.CONDITIONS)
                  and all(map(_is_number, spec.values()))):  # fmt: skip
            problems.append((path, f"one condition ({', '.join(definitions.CONDITIONS)}) and its bound"))
    return problems


def _method_problems(spec: dict, path: str, column_type: str | None) -> list:
    """``<path>method`` and ``<path>threshold`` of ``spec``: a method the drift engine computes for the column
    type (Evidently's names; its report tests the column the same way)."""
    method, threshold = spec.get("method"), spec.get("threshold")
    problems = []
    if method is not None:
        known = sorted(name for name, m in engine.METHODS.items() if column_type is None or column_type in m.kinds)
        if method not in known:
            problems.append((f"{path}method", f"one of {', '.join(known)}"))
    if threshold is not None and not (_is_number(threshold) and threshold > 0):
        problems.append((f"{path}threshold", "a positive number"))
    return problems


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
        crontab, _ = CrontabSchedule.objects.get_or_create(**_crontab_fields(schedule["crontab"]), timezone="UTC")
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
