"""Monitoring services (DESIGN §4 Monitoring, §5, §7): monitors and their revisions, batches, check runs (queued
through the outbox, claimed with attempt fencing, computed outside transactions), their consequences (audit,
voided decisions, alerts, automatic suspension) and the Evidently reports.

Web side: ``monitor_create``, ``monitor_update``, ``batch_upload``, ``batch_register``, ``check_run_request``,
``alert_acknowledge``. Worker side (called by ``monitoring.tasks``): ``check_run_execute``,
``check_run_report_build``, ``check_runs_reap``.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import F, Q
from django.utils import timezone

from controlplane.api.errors import Conflict, DomainError, NotFound
from controlplane.models import OutboxMessage
from controlplane.outbox import outbox_enqueue
from governance.access import Principal, require_role
from governance.audit import audit_record, canonical, changes, digest
from governance.models import Decision, Deployment, ModelVersion, Project, PromotionRequest, Role
from governance.storage import delete_stored, file_sha256, project_prefix, store_data_file
from governance.uris import check_uri

from . import engine, stattests
from . import evidently_checks as checks
from .models import (
    NOT_PASSED_STATES,
    Alert,
    Batch,
    BatchLabels,
    CheckRun,
    CheckState,
    DataPolicy,
    DatasetVersionPurge,
    Monitor,
    MonitorKind,
    MonitorRevision,
    ReportState,
)

log = logging.getLogger(__name__)

RUN_TASK = "monitoring.tasks.run_check"
REPORT_TASK = "monitoring.tasks.build_report"
WRITERS = (Role.ML_ENGINEER, Role.ADMIN)
RUNNERS = (Role.ML_ENGINEER, Role.GOVERNANCE_OFFICER, Role.ADMIN)
ACKNOWLEDGERS = (Role.ML_ENGINEER, Role.GOVERNANCE_OFFICER, Role.ADMIN)
# Errors worth another attempt: storage or database trouble. Anything else is permanent for this run.
TRANSIENT_ERRORS = (OSError, OperationalError, InterfaceError)

# Signature type -> the batch column types it accepts, and how Evidently treats the column.
ACCEPTED_TYPES = {
    "float": {"float", "integer"},
    "integer": {"integer"},
    "string": {"string"},
    "category": {"string", "integer", "boolean"},
    "boolean": {"boolean"},
    "datetime": {"datetime"},
}
CHECKED_AS = {
    "float": checks.NUMERICAL,
    "integer": checks.NUMERICAL,
    "string": checks.CATEGORICAL,
    "category": checks.CATEGORICAL,
    "boolean": checks.CATEGORICAL,
}


def _invalid(field: str, message: str, **extra) -> DomainError:
    return DomainError(f"{field}: {message}", details=[{"field": field, "message": message, **extra}])


def _system() -> Principal:
    return Principal.system()


# --- Monitor configuration ---------------------------------------------------------------------------------

DRIFT_KEYS = {"columns", "num_method", "num_threshold", "cat_method", "cat_threshold", "per_column",
              "max_drifted_columns", "fdr", "drift_share"}  # fmt: skip
QUALITY_SHARES = ("max_missing_share", "max_out_of_range_share", "max_unseen_share")
QUALITY_KEYS = {"columns", *QUALITY_SHARES, "min_rows", "max_rows", "per_column"}
MODEL_QUALITY_KEYS = {"task", "target", "prediction", "pos_label", "probas_threshold", "thresholds"}
SCHEDULE_KEYS = {"schedule", "freshness_hours"}  # every kind: when the monitor runs, and when silence alerts


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _signature_columns(version: ModelVersion) -> dict[str, str]:
    """Inputs then outputs of the signature, name -> type."""
    signature = version.signature or {}
    columns = {}
    for side in ("inputs", "outputs"):
        for column in signature.get(side) or []:
            columns.setdefault(column["name"], column["type"])
    return columns


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
        for prefix, column_type in (("num", checks.NUMERICAL), ("cat", checks.CATEGORICAL)):
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
    from celery.schedules import crontab

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
    if task not in (checks.CLASSIFICATION, checks.REGRESSION):
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
    known = checks.QUALITY_METRICS.get(task, {})
    if not isinstance(thresholds, dict):
        problems.append(("config.thresholds", "a mapping of metric to {condition: bound}"))
        thresholds = {}
    for name, spec in thresholds.items():
        path = f"config.thresholds.{name}"
        if known and name not in known:
            problems.append((path, f"one of {', '.join(known)} for {task}"))
        elif not (isinstance(spec, dict) and len(spec) == 1 and set(spec) <= set(checks.CONDITIONS)
                  and all(map(_is_number, spec.values()))):  # fmt: skip
            problems.append((path, f"one condition ({', '.join(checks.CONDITIONS)}) and its bound"))
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
    target = deployment.model_version if deployment else model_version
    model = deployment.model if deployment else model_version.model
    if model.project_id != project.pk:
        raise NotFound("No such model in this project.")
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
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

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


# --- Batches -----------------------------------------------------------------------------------------------


def signature_problems(version: ModelVersion, schema: list[dict]) -> list[dict]:
    """The ways a batch's columns miss the version's signature: missing inputs, wrong types of inputs or
    outputs. Outputs (predictions) may be absent."""
    present = {column["name"]: column["type"] for column in schema}
    problems = []
    signature = version.signature or {}
    for side in ("inputs", "outputs"):
        for column in signature.get(side) or []:
            name, expected = column["name"], column["type"]
            actual = present.get(name)
            if actual is None:
                if side == "inputs":
                    problems.append({"field": "file", "column": name, "code": "missing_column",
                                     "message": f"the column '{name}' is missing"})  # fmt: skip
            elif actual not in ACCEPTED_TYPES.get(expected, {expected}):
                message = f"the column '{name}' is {actual}, the signature says {expected}"
                problems.append({"field": "file", "column": name, "code": "wrong_type", "message": message})
    return problems


def _schema_mismatch(version: ModelVersion, problems: list[dict]) -> DomainError:
    missing = [p["column"] for p in problems if p["code"] == "missing_column"]
    wrong = [p["column"] for p in problems if p["code"] == "wrong_type"]
    parts = ([f"missing columns: {', '.join(missing)}"] if missing else []) + (
        [f"columns of the wrong type: {', '.join(wrong)}"] if wrong else []
    )
    return DomainError(
        f"The batch does not match the signature of {version.model.name} v{version.version}: {'; '.join(parts)}.",
        code="signature_mismatch",
        details=problems,
    )


def _csv_types(version: ModelVersion) -> dict:
    """Text columns of the signature stay text in a CSV (codes that look like numbers are not numbers)."""
    import pyarrow as pa

    return {name: pa.string() for name, kind in _signature_columns(version).items() if kind in ("string", "category")}


def _window(window_start, window_end) -> tuple[datetime.datetime, datetime.datetime]:
    end = window_end or timezone.now()
    start = window_start or end
    if start > end:
        raise _invalid("window_start", "the window starts before it ends")
    return start, end


def _scoring_version(*, project, deployment: Deployment | None, model_version: ModelVersion | None) -> ModelVersion:
    if deployment is None and model_version is None:
        raise _invalid("version", "name the deployment (model and environment) or the version that scored the data")
    if deployment is not None and deployment.project_id != project.pk:
        raise NotFound("No such deployment in this project.")
    version = model_version or deployment.model_version
    if version.model.project_id != project.pk:
        raise NotFound("No such model version in this project.")
    if deployment is not None and version.model_id != deployment.model_id:
        raise _invalid("version", "the version that scored the data is a version of the deployment's model")
    return version


def _batch_path(project, version: ModelVersion, sha256: str) -> str:
    return f"{project_prefix(project)}batches/{version.pk}/{sha256}.parquet"


@dataclass
class BatchResult:
    batch: Batch
    created: bool
    runs: list[CheckRun]


def batch_upload(
    *,
    actor: Principal,
    project: Project,
    file,
    deployment: Deployment | None = None,
    model_version: ModelVersion | None = None,
    sha256: str | None = None,
    window_start: datetime.datetime | None = None,
    window_end: datetime.datetime | None = None,
) -> BatchResult:
    """Store an uploaded CSV or Parquet file of production data as Parquet under the project's prefix and
    queue a check run for each active monitor that covers it. The columns must match the version's
    signature (400 naming them). The same bytes for the same version again return the existing batch."""
    require_role(actor, project, WRITERS, action="upload batches")
    version = _scoring_version(project=project, deployment=deployment, model_version=model_version)
    start, end = _window(window_start, window_end)
    actual = file_sha256(file)
    if sha256 and sha256.lower() != actual:
        raise _invalid("sha256", f"The uploaded bytes hash to {actual}, not {sha256.lower()}.")
    existing = Batch.objects.filter(model_version=version, sha256=actual).first()
    if existing is not None:
        return BatchResult(existing, False, list(existing.runs.all()))
    stored = store_data_file(path=_batch_path(project, version, actual), file=file, column_types=_csv_types(version))
    try:
        problems = signature_problems(version, stored.schema)
        if problems:
            raise _schema_mismatch(version, problems)
        if stored.row_count > settings.TOLLGATE_MAX_BATCH_ROWS:
            limit = settings.TOLLGATE_MAX_BATCH_ROWS
            raise DomainError(f"The batch has {stored.row_count} rows; the limit is {limit}.",
                              code="payload_too_large", status=413)  # fmt: skip
        result = _batch_insert(
            actor=actor, project=project, deployment=deployment, version=version, kind=Batch.Kind.UPLOADED,
            uri=stored.uri, storage_path=stored.storage_path, sha256=actual, size_bytes=stored.size_bytes,
            row_count=stored.row_count, schema=stored.schema, window=(start, end),
        )  # fmt: skip
    except Exception:
        if not Batch.objects.filter(storage_path=stored.storage_path).exists():
            delete_stored(stored.storage_path)
        raise
    if not result.created and result.batch.storage_path != stored.storage_path:
        delete_stored(stored.storage_path)  # a concurrent upload of the same bytes won
    return result


def batch_register(
    *,
    actor: Principal,
    project: Project,
    uri: str,
    sha256: str,
    deployment: Deployment | None = None,
    model_version: ModelVersion | None = None,
    window_start: datetime.datetime | None = None,
    window_end: datetime.datetime | None = None,
) -> BatchResult:
    """A batch already stored under the project's prefix (``storage://projects/<slug>/...``, Parquet). The web
    process reads nothing of it: the worker checks its columns against the signature (the run errs naming
    them) and computes the check."""
    require_role(actor, project, WRITERS, action="register batches")
    version = _scoring_version(project=project, deployment=deployment, model_version=model_version)
    start, end = _window(window_start, window_end)
    checked = check_uri(uri, project=project)
    if not checked.is_stored:
        raise _invalid("uri", "a batch is read by the workers: give a storage:// URI under this project's prefix")
    sha256 = sha256.lower()
    existing = Batch.objects.filter(model_version=version, sha256=sha256).first()
    if existing is not None:
        return BatchResult(existing, False, list(existing.runs.all()))
    return _batch_insert(
        actor=actor, project=project, deployment=deployment, version=version, kind=Batch.Kind.URI, uri=checked.uri,
        storage_path=checked.storage_path, sha256=sha256, size_bytes=None, row_count=None, schema=[],
        window=(start, end),
    )  # fmt: skip


def _batch_insert(*, actor, project, deployment, version, kind, uri, storage_path, sha256, size_bytes, row_count,
                  schema, window) -> BatchResult:  # fmt: skip
    with transaction.atomic():
        try:
            with transaction.atomic():
                batch = Batch.objects.create(
                    project=project, deployment=deployment, model_version=version, kind=kind, uri=uri,
                    storage_path=storage_path, sha256=sha256, size_bytes=size_bytes, row_count=row_count,
                    schema=schema, window_start=window[0], window_end=window[1], created_by=actor.user,
                )  # fmt: skip
        except IntegrityError:
            existing = Batch.objects.filter(model_version=version, sha256=sha256).first()
            if existing is None:
                raise
            return BatchResult(existing, False, list(existing.runs.all()))
        audit_record(
            action="batch.uploaded", actor=actor, project=project, target=batch,
            diff={"model": version.model.name, "version": version.version,
                  "environment": deployment.environment.name if deployment else None, "kind": kind, "uri": uri,
                  "sha256": sha256, "row_count": row_count, "size_bytes": size_bytes,
                  "window_start": window[0], "window_end": window[1]},
        )  # fmt: skip
        runs = []
        for monitor in monitors_covering(batch):
            revision = MonitorRevision.objects.get(monitor=monitor, revision=monitor.revision)
            if _wants_run(monitor, revision, batch):
                runs.append(_run_get_or_create(monitor, batch, actor, revision)[0])
    return BatchResult(batch, True, runs)


def monitors_covering(batch: Batch):
    """The active monitors that check a batch: those of its deployment, and those of its version."""
    scope = Q(model_version=batch.model_version_id)
    if batch.deployment_id:
        scope |= Q(deployment=batch.deployment_id)
    return Monitor.objects.filter(scope, project=batch.project_id, active=True).order_by("pk")


# --- Check runs: requesting -------------------------------------------------------------------------------


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


# --- Check runs: executing (worker side) --------------------------------------------------------------------


class RetryLater(Exception):
    """A transient error; the run is queued again and the task should retry after ``countdown`` seconds."""

    def __init__(self, cause: BaseException, countdown: float):
        super().__init__(str(cause))
        self.cause = cause
        self.countdown = countdown


def describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:4000]


def _claim(run_id: int, worker: str) -> int | None:
    """queued -> running, attempts + 1; the attempt number, or None when another attempt holds the run."""
    now = timezone.now()
    claimed = CheckRun.objects.filter(pk=run_id, state=CheckState.QUEUED).update(
        state=CheckState.RUNNING, attempts=F("attempts") + 1, claimed_at=now, claimed_by=worker[:300]
    )
    if not claimed:
        return None
    return CheckRun.objects.values_list("attempts", flat=True).get(pk=run_id)


def _read_parquet(storage_path: str, columns: list[str] | None = None):
    import pyarrow.parquet as pq

    with default_storage.open(storage_path, "rb") as handle:
        table = pq.read_table(handle, columns=columns)
    return table.to_pandas()


def _read_arrow(storage_path: str, columns: list[str]):
    import pyarrow.parquet as pq

    with default_storage.open(storage_path, "rb") as handle:
        return pq.read_table(handle, columns=columns)


def _parquet_schema(storage_path: str) -> list[dict]:
    import pyarrow.parquet as pq

    from governance.storage import schema_of

    with default_storage.open(storage_path, "rb") as handle:
        return schema_of(pq.ParquetFile(handle).schema_arrow)


def quality_config(run: CheckRun) -> dict:
    """A model_quality revision's settings, with the prediction column resolved (default: the first output)."""
    config = dict(run.monitor_revision.config)
    if not config.get("prediction"):
        outputs = (run.model_version.signature or {}).get("outputs") or []
        if not outputs:
            raise checks.CheckInputError("the signature has no output: name the prediction column")
        config["prediction"] = outputs[0]["name"]
    return config


def labelled_frame(run: CheckRun):
    """The batch's prediction column beside its labels at the run's batch revision: joined on the labels'
    ``key`` column, or row by row (the labels file has the batch's rows, in its order)."""
    config = quality_config(run)
    target, prediction = config["target"], config["prediction"]
    labels = BatchLabels.objects.filter(batch=run.batch_id, revision__lte=run.batch_revision).order_by("-revision")
    labels = labels.first()
    batch_columns = {c["name"] for c in run.batch.schema or []} or {c["name"] for c in _parquet_schema(
        run.batch.storage_path)}  # fmt: skip
    if labels is None:
        if target not in batch_columns:
            raise checks.CheckInputError(f"no labels have arrived for batch {run.batch_id} (no column {target!r})")
        return _read_parquet(run.batch.storage_path, [target, prediction])
    label_columns = {c["name"] for c in labels.schema}
    if target not in label_columns:
        raise checks.CheckInputError(f"the labels (revision {labels.revision}) have no column {target!r}")
    if prediction not in batch_columns:
        raise checks.CheckInputError(f"the batch has no prediction column {prediction!r}")
    if labels.key:
        current = _read_parquet(run.batch.storage_path, [labels.key, prediction])
        given = _read_parquet(labels.storage_path, [labels.key, target]).drop_duplicates(labels.key, keep="last")
        return current.merge(given, on=labels.key, how="inner")[[target, prediction]]
    current = _read_parquet(run.batch.storage_path, [prediction])
    given = _read_parquet(labels.storage_path, [target])
    if len(given) != len(current):
        raise checks.CheckInputError(f"the labels have {len(given)} rows, the batch {len(current)}; give a key column")
    current[target] = given[target].to_numpy()
    return current


def reference_of(version: ModelVersion):
    """The version's reference dataset version that workers can read (stored under the project's prefix, and
    not purged under the project's retention)."""
    links = (
        version.dataset_links.filter(role="reference", dataset_version__purge__isnull=True)
        .select_related("dataset_version")
        .order_by("-id")
    )
    for link in links:
        if link.dataset_version.storage_path:
            return link.dataset_version
    return None


def resolved_config(run: CheckRun, batch_schema: list[dict], reference_schema: list[dict]) -> dict:
    """The pure module's config: the revision's settings plus the columns to check and their types."""
    config = dict(run.monitor_revision.config)
    signature = _signature_columns(run.model_version)
    wanted = config.pop("columns", None)
    in_batch = {c["name"] for c in batch_schema}
    in_reference = {c["name"] for c in reference_schema}
    if wanted is None:
        wanted = [name for name in signature if name in in_batch and name in in_reference]
    columns = {}
    for name in wanted:
        checked_as = CHECKED_AS.get(signature.get(name, ""))
        if checked_as is not None:
            columns[name] = checked_as
    if not columns:
        raise checks.CheckInputError("no column of the signature can be checked (none is in both data sets)")
    return {**config, "columns": columns}


def _compute(run: CheckRun) -> tuple[bool, str, list[dict]]:
    """Read the reference and the batch, and check them. Outside any transaction: this is the heavy part."""
    if run.kind == MonitorKind.MODEL_QUALITY:
        results = checks.compute_model_quality(labelled_frame(run), quality_config(run))
        passed, verdict = checks.model_quality_verdict(results)
        return passed, verdict, [_finite(r.as_dict()) for r in results]
    reference = reference_of(run.model_version)
    if reference is None:
        raise checks.CheckInputError(
            f"{run.model_version} has no reference dataset version stored under the project's prefix "
            "(link one with the role 'reference')"
        )
    batch = run.batch
    batch_schema = batch.schema or _parquet_schema(batch.storage_path)
    if batch.kind == Batch.Kind.URI:
        problems = signature_problems(run.model_version, batch_schema)
        if problems:
            raise checks.CheckInputError(_schema_mismatch(run.model_version, problems).message)
    reference_schema = reference.schema or _parquet_schema(reference.storage_path)
    config = resolved_config(run, batch_schema, reference_schema)
    if run.kind == MonitorKind.DATA_DRIFT:
        return _compute_drift(reference, batch, config)
    names = list(config["columns"])
    current = _read_parquet(batch.storage_path, names)
    reference_frame = _read_parquet(reference.storage_path, names)
    results = checks.compute(run.kind, reference_frame, current, config)
    passed, verdict = checks.verdict(run.kind, results, config)
    return passed, verdict, [r.as_dict() for r in results]


def _compute_drift(reference, batch: Batch, config: dict) -> tuple[bool, str, list[dict]]:
    """The verdict of a data_drift run, from the drift engine: the reference profile comes from the process
    cache by (reference sha256, columns); only the batch is read. ``max_drifted_columns`` > 0 replaces the
    engine's rule by a count of flagged columns."""
    drift_config = engine.DriftConfig.from_dict(config)
    profile = engine.profile_cached(
        reference.sha256, lambda: _read_table(reference.storage_path, drift_config), drift_config
    )
    result = engine.drift(profile, _read_table(batch.storage_path, drift_config), drift_config)
    allowed = int(config.get("max_drifted_columns") or 0)
    flagged = sum(c.flagged for c in result.columns)
    passed = flagged <= allowed if allowed else not result.drift_detected
    verdict = result.reason + (f"; at most {allowed} allowed" if allowed else "")
    order = list(config["columns"])  # the engine groups numerical columns first; keep the configured order
    return passed, verdict, [_finite(c.as_dict()) for c in sorted(result.columns, key=lambda c: order.index(c.column))]


def _finite(result: dict) -> dict:
    """NaN and infinities are not JSON (PostgreSQL refuses them): stored as null."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in result.items()}


def _read_table(storage_path: str, config: engine.DriftConfig):
    """The configured columns of a stored Parquet file, read by the engine (from the storage's local path; a
    remote storage's file is copied to a temporary file first)."""
    try:
        local = default_storage.path(storage_path)
    except NotImplementedError:
        with (
            default_storage.open(storage_path, "rb") as handle,
            tempfile.NamedTemporaryFile(suffix=".parquet") as copy,
        ):
            shutil.copyfileobj(handle, copy)
            copy.flush()
            return engine.read_table(copy.name, config)
    return engine.read_table(local, config)


def check_run_execute(*, run_id: int, worker: str, soft_timeout: type[BaseException] | None = None) -> str | None:
    """Claim the run, compute it outside transactions, and write its result if this attempt still holds it.
    Returns the final state (None when the run was not claimable). Raises ``RetryLater`` for transient
    errors while attempts remain (the run is queued again first)."""
    attempt = _claim(run_id, worker)
    if attempt is None:
        log.info("check run %s is gone or already claimed", run_id)
        return None
    started = time.monotonic()
    try:
        _test_delay(soft_timeout)
        run = CheckRun.objects.select_related("monitor_revision", "batch", "model_version__model").get(pk=run_id)
        passed, verdict, results = _compute(run)
    except (checks.CheckInputError, engine.DriftError) as exc:
        return _finish(run_id, attempt, state=CheckState.ERROR, error=str(exc), started=started)
    except TRANSIENT_ERRORS as exc:
        log.warning("check run %s attempt %s: transient error %r", run_id, attempt, exc)
        if attempt < settings.TOLLGATE_CHECK_MAX_ATTEMPTS and _requeue(run_id, attempt, error=describe_error(exc)):
            raise RetryLater(exc, countdown=min(2**attempt, 60)) from exc
        return _finish(run_id, attempt, state=CheckState.ERROR, error=describe_error(exc), started=started)
    except Exception as exc:
        if soft_timeout is not None and isinstance(exc, soft_timeout):
            message = f"attempt {attempt} exceeded the soft time limit of {settings.TOLLGATE_CHECK_SOFT_TIME_LIMIT}s"
            if attempt < settings.TOLLGATE_CHECK_MAX_ATTEMPTS and _requeue(run_id, attempt, error=message):
                raise RetryLater(exc, countdown=0) from exc
            return _finish(run_id, attempt, state=CheckState.TIMED_OUT, error=message, started=started)
        log.exception("check run %s attempt %s failed", run_id, attempt)
        return _finish(run_id, attempt, state=CheckState.ERROR, error=describe_error(exc), started=started)
    state = CheckState.PASSED if passed else CheckState.FAILED
    return _finish(run_id, attempt, state=state, verdict=verdict, results=results, started=started)


def _test_delay(soft_timeout) -> None:
    """Test-only (``TOLLGATE_TEST_CHECK_DELAY_SECONDS``): a check that takes this long, so a test can kill its
    worker mid-run. Like a computation stuck in native code, it does not notice the soft time limit."""
    delay = getattr(settings, "TOLLGATE_TEST_CHECK_DELAY_SECONDS", 0)
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline:
        try:
            time.sleep(max(deadline - time.monotonic(), 0))
        except Exception as exc:
            if soft_timeout is None or not isinstance(exc, soft_timeout):
                raise


def _requeue(run_id: int, attempt: int, *, error: str) -> bool:
    """running (this attempt) -> queued; False when the attempt no longer holds the run."""
    return bool(
        CheckRun.objects.filter(pk=run_id, state=CheckState.RUNNING, attempts=attempt).update(
            state=CheckState.QUEUED, queued_at=timezone.now(), claimed_by="", error=error
        )
    )


def _finish(run_id: int, attempt: int, *, state: str, verdict: str = "", results=None, error: str = "",
            started: float | None = None) -> str | None:  # fmt: skip
    """Write the outcome if (running, ``attempt``) still holds, with its consequences, in one transaction."""
    now = timezone.now()
    with transaction.atomic():
        has_verdict = state in (CheckState.PASSED, CheckState.FAILED)
        updated = CheckRun.objects.filter(pk=run_id, state=CheckState.RUNNING, attempts=attempt).update(
            state=state, finished_at=now, verdict=verdict, results=results or [], error=error,
            duration_seconds=None if started is None else round(time.monotonic() - started, 3),
            report_state=ReportState.PENDING if has_verdict else ReportState.NONE,
        )  # fmt: skip
        if not updated:
            log.warning("check run %s: attempt %s lost the run (reaped or re-queued); its result is dropped",
                        run_id, attempt)  # fmt: skip
            return None
        run = CheckRun.objects.select_related(
            "project", "monitor", "batch", "model_version__model", "monitor_revision"
        ).get(pk=run_id)
        _consequences(run)
    return state


def _consequences(run: CheckRun) -> None:
    """In the transaction that writes the outcome: audit, the report, voided decisions, alerts, suspension."""
    version = run.model_version
    diff = {"check_run": run.pk, "monitor": run.monitor.name, "kind": run.kind,
            "revision": run.monitor_revision.revision, "batch": run.batch_id, "model": version.model.name,
            "version": version.version, "state": run.state, "attempts": run.attempts, "verdict": run.verdict,
            "error": run.error}  # fmt: skip
    passed = run.state == CheckState.PASSED
    audit_record(action="check.passed" if passed else "check.failed", actor=_system(), project=run.project,
                 target=run, diff=diff)  # fmt: skip
    if run.report_state == ReportState.PENDING:
        outbox_enqueue(REPORT_TASK, kwargs={"run_id": run.pk})
    if run.state not in NOT_PASSED_STATES:
        return
    why = run.verdict or run.error or run.state
    stale = Decision.objects.filter(
        request__model_version=version, request__state=PromotionRequest.State.OPEN, voided_at__isnull=True,
        created_at__lt=run.finished_at,
    ).select_related("request__project", "reviewer")  # fmt: skip
    from governance.services.workflow import decision_void, deployment_set_state, policy_current

    for decision in stale:
        decision_void(
            decision=decision, reason=f"check run {run.pk} ({run.kind}) ended {run.state} after it: {why}"[:2000]
        )
    policy = policy_current(run.project)
    suspend_kinds = set((policy.document if policy else {}).get("suspend_on_failed_check", []))
    for deployment in Deployment.objects.filter(model_version=version).select_related("environment", "model"):
        suspend = (
            run.state == CheckState.FAILED
            and deployment.environment.kind in suspend_kinds
            and deployment.state == Deployment.State.ACTIVE
        )
        message = f"{run.kind} check of {version} in {deployment.environment.name} ended {run.state}: {why}"
        alert, created = Alert.objects.get_or_create(
            check_run=run, deployment=deployment,
            defaults={"project": run.project, "model_version": version, "kind": f"check_{run.state}",
                      "message": message[:4000], "suspended": suspend},
        )  # fmt: skip
        if not created:
            continue
        audit_record(action="alert.raised", actor=_system(), project=run.project, target=alert,
                     diff={"check_run": run.pk, "kind": alert.kind, "model": version.model.name,
                           "environment": deployment.environment.name, "message": alert.message,
                           "suspend": suspend})  # fmt: skip
        if suspend:
            deployment_set_state(
                actor=None, deployment=deployment, state=Deployment.State.SUSPENDED,
                reason=f"automatically: check run {run.pk} ({run.kind}) failed: {why}"[:2000],
            )  # fmt: skip


# --- The reaper ----------------------------------------------------------------------------------------------


def check_runs_reap(*, now: datetime.datetime | None = None) -> dict:
    """Runs still ``running`` past the hard time limit plus the margin: queued again while attempts remain
    (through the outbox), else ``timed_out``. Queued runs whose outbox message is gone are queued again."""
    now = now or timezone.now()
    limit = settings.TOLLGATE_CHECK_TIME_LIMIT + settings.TOLLGATE_CHECK_REAP_MARGIN_SECONDS
    stale = CheckRun.objects.filter(state=CheckState.RUNNING, claimed_at__lt=now - datetime.timedelta(seconds=limit))
    requeued = timed_out = orphans = 0
    for run_id, attempt in stale.values_list("pk", "attempts"):
        message = (
            f"attempt {attempt} was still running after the hard time limit of {settings.TOLLGATE_CHECK_TIME_LIMIT}s"
        )
        if attempt < settings.TOLLGATE_CHECK_MAX_ATTEMPTS:
            with transaction.atomic():
                if _requeue(run_id, attempt, error=message):
                    outbox_enqueue(RUN_TASK, kwargs={"run_id": run_id})
                    requeued += 1
        elif _finish(run_id, attempt, state=CheckState.TIMED_OUT, error=message):
            timed_out += 1
    cutoff = now - datetime.timedelta(seconds=settings.TOLLGATE_OUTBOX_REPUBLISH_SECONDS)
    for run_id in CheckRun.objects.filter(state=CheckState.QUEUED, queued_at__lt=cutoff).values_list("pk", flat=True):
        pending = OutboxMessage.objects.filter(
            task_name=RUN_TASK, state=OutboxMessage.State.PENDING, kwargs__run_id=run_id
        ).exists()
        if not pending:
            with transaction.atomic():
                if CheckRun.objects.filter(pk=run_id, state=CheckState.QUEUED).update(queued_at=now):
                    outbox_enqueue(RUN_TASK, kwargs={"run_id": run_id})
                    orphans += 1
    if requeued or timed_out or orphans:
        log.info("check runs reaped: %s re-queued, %s timed out, %s orphans re-queued", requeued, timed_out, orphans)
    return {"requeued": requeued, "timed_out": timed_out, "orphans": orphans}


# --- Reports -------------------------------------------------------------------------------------------------


def _report_paths(run: CheckRun) -> tuple[str, str]:
    base = f"{project_prefix(run.project)}reports/check-runs/{run.pk}/{uuid.uuid4().hex}"
    return f"{base}.json", f"{base}.html"


def check_run_report_build(*, run_id: int) -> str | None:
    """Build the Evidently report (JSON snapshot and HTML) of a run with a verdict and store both under the
    project's prefix. Safe to run twice: only the first build that finds the report pending records it."""
    run = (
        CheckRun.objects.select_related("project", "monitor_revision", "batch", "model_version__model")
        .filter(pk=run_id, report_state=ReportState.PENDING)
        .first()
    )
    if run is None:
        log.info("check run %s has no pending report", run_id)
        return None
    sample_rows = None
    try:
        if run.batch.purged_at is not None:
            raise checks.CheckInputError("the batch's data was deleted under the project's retention")
        if run.kind == MonitorKind.MODEL_QUALITY:
            snapshot, html = checks.report_model_quality(labelled_frame(run), quality_config(run))
        else:
            reference = reference_of(run.model_version)
            if reference is None:
                raise checks.CheckInputError("the version has no stored reference dataset version any more")
            snapshot, html, sample_rows = _data_report(run, reference)
    except TRANSIENT_ERRORS:
        raise
    except Exception as exc:
        log.exception("report of check run %s failed", run_id)
        CheckRun.objects.filter(pk=run_id, report_state=ReportState.PENDING).update(
            report_state=ReportState.FAILED, report_error=describe_error(exc)
        )
        return ReportState.FAILED
    json_path, html_path = _report_paths(run)
    json_path = default_storage.save(json_path, ContentFile(snapshot.encode("utf-8")))
    html_path = default_storage.save(html_path, ContentFile(html.encode("utf-8")))
    updated = CheckRun.objects.filter(pk=run_id, report_state=ReportState.PENDING).update(
        report_state=ReportState.READY,
        report_json_path=json_path,
        report_html_path=html_path,
        report_error="",
        report_sample_rows=sample_rows,
    )
    if not updated:  # another build recorded its report first
        delete_stored(json_path)
        delete_stored(html_path)
        return None
    return ReportState.READY


def _data_report(run: CheckRun, reference) -> tuple[str, str, int | None]:
    """A data check's report, each side sampled above ``TOLLGATE_REPORT_MAX_ROWS`` rows (and saying so); a
    drift report tests each column with the method and threshold of the engine's verdict."""
    batch_schema = run.batch.schema or _parquet_schema(run.batch.storage_path)
    reference_schema = reference.schema or _parquet_schema(reference.storage_path)
    config = resolved_config(run, batch_schema, reference_schema)
    names = list(config["columns"])
    limit = settings.TOLLGATE_REPORT_MAX_ROWS
    sample_rows, frames, notes = None, [], []
    for label, path in (("reference", reference.storage_path), ("batch", run.batch.storage_path)):
        table = _read_arrow(path, names)
        sample, sampled = engine.report_sample(table, limit)
        frames.append(sample.to_pandas())
        if sampled:
            sample_rows = limit
            notes.append(f"{label}: {limit:,} of {table.num_rows:,} rows")
    note = ""
    if notes:
        note = (f"This report was built on a uniform random sample ({'; '.join(notes)}); the check's verdict "
                "and per-column results used every row.")  # fmt: skip
    options = None
    if run.kind == MonitorKind.DATA_DRIFT:
        stattests.register_with_evidently()
        options = engine.preset_options(_drift_result(run.results))
    snapshot, html = checks.report(run.kind, frames[0], frames[1], config, drift_options=options, note=note)
    return snapshot, html, sample_rows


def _drift_result(results: list[dict]) -> engine.DriftResult:
    """The saved per-column results of a data_drift run, as the engine's result (for ``preset_options``)."""
    fields = set(engine.ColumnResult.__dataclass_fields__)
    columns = tuple(engine.ColumnResult(**{k: v for k, v in r.items() if k in fields}) for r in results)
    return engine.DriftResult(columns, any(c.flagged for c in columns), "", 0.0, False)


def check_run_report_give_up(*, run_id: int, error: str) -> None:
    CheckRun.objects.filter(pk=run_id, report_state=ReportState.PENDING).update(
        report_state=ReportState.FAILED, report_error=error[:4000]
    )


# --- Alerts --------------------------------------------------------------------------------------------------


@transaction.atomic
def alert_acknowledge(*, actor: Principal, alert: Alert, comment: str = "") -> Alert:
    require_role(actor, alert.project, ACKNOWLEDGERS, action="acknowledge alerts")
    alert = Alert.objects.select_for_update().select_related("project").get(pk=alert.pk)
    if alert.acknowledged_at is not None:
        raise Conflict("This alert is acknowledged already.", code="already_acknowledged")
    alert.acknowledged_by, alert.acknowledged_at, alert.acknowledgement = actor.user, timezone.now(), comment
    alert.save(update_fields=["acknowledged_by", "acknowledged_at", "acknowledgement"])
    audit_record(action="alert.acknowledged", actor=actor, project=alert.project, target=alert,
                 diff={"check_run": alert.check_run_id, "comment": comment})  # fmt: skip
    return alert


# --- Labels: a new batch revision that re-runs only model_quality ---------------------------------------------


@dataclass
class LabelsResult:
    labels: BatchLabels
    created: bool
    runs: list[CheckRun]


def batch_labels_upload(
    *, actor: Principal, batch: Batch, file, key: str = "", sha256: str | None = None
) -> LabelsResult:
    """Labels that arrived later for a batch (CSV or Parquet): joined on ``key`` (a column of both files), or
    row by row when no key is given (then the file has exactly the batch's rows, in its order). They make a
    new batch revision, which queues a run of each active model_quality monitor covering the batch -- and of
    nothing else (data checks do not depend on labels). The same labels again return the existing revision."""
    project = batch.project
    require_role(actor, project, WRITERS, action="upload labels")
    if batch.purged_at is not None:
        raise DomainError("The batch's data was deleted under the project's retention.", code="purged", status=410)
    actual = file_sha256(file)
    if sha256 and sha256.lower() != actual:
        raise _invalid("sha256", f"The uploaded bytes hash to {actual}, not {sha256.lower()}.")
    existing = BatchLabels.objects.filter(batch=batch, sha256=actual).first()
    if existing is not None:
        return LabelsResult(existing, False, list(batch.runs.filter(batch_revision=existing.revision)))
    path = f"{project_prefix(project)}batches/{batch.model_version_id}/labels/{batch.pk}-{actual}.parquet"
    import pyarrow as pa

    text_key = {key: pa.string()} if key else None
    stored = store_data_file(path=path, file=file, column_types=text_key)
    try:
        names = {c["name"] for c in stored.schema}
        batch_names = {c["name"] for c in batch.schema or []}
        if key and key not in names:
            raise _invalid("key", f"the labels have no column '{key}'")
        if key and batch_names and key not in batch_names:
            raise _invalid("key", f"the batch has no column '{key}' to join the labels on")
        if not names - {key}:
            raise _invalid("file", "the labels file has no column besides the key")
        if not key and batch.row_count is not None and stored.row_count != batch.row_count:
            raise _invalid("file", f"{stored.row_count} label rows for a batch of {batch.row_count}: give the rows "
                                   "in the batch's order, or a key column")  # fmt: skip
        with transaction.atomic():
            batch = Batch.objects.select_for_update().select_related("project", "model_version__model").get(pk=batch.pk)
            revision = batch.revision + 1
            labels = BatchLabels.objects.create(
                batch=batch, revision=revision, storage_path=stored.storage_path, sha256=actual,
                size_bytes=stored.size_bytes, row_count=stored.row_count, schema=stored.schema, key=key,
                created_by=actor.user,
            )  # fmt: skip
            batch.revision = revision
            batch.save(update_fields=["revision"])
            audit_record(
                action="batch.labels_added", actor=actor, project=project, target=batch,
                diff={"revision": revision, "sha256": actual, "row_count": stored.row_count, "key": key or None,
                      "columns": sorted(names)},
            )  # fmt: skip
            runs = []
            for monitor in monitors_covering(batch).filter(kind=MonitorKind.MODEL_QUALITY):
                monitor_revision = MonitorRevision.objects.get(monitor=monitor, revision=monitor.revision)
                runs.append(_run_get_or_create(monitor, batch, actor, monitor_revision)[0])
    except Exception:
        if not BatchLabels.objects.filter(storage_path=stored.storage_path).exists():
            delete_stored(stored.storage_path)
        raise
    return LabelsResult(labels, True, runs)


# --- Scheduled runs and freshness ----------------------------------------------------------------------------


def monitor_scheduled(*, monitor_id: int, now: datetime.datetime | None = None) -> dict:
    """Beat, on the monitor's schedule: a run (through the outbox) of the current configuration for every
    batch it covers that has none at the batch's current revision (model_quality: only labelled batches; data
    checks: any revision counts), newest windows first, at most ``TOLLGATE_SCHEDULE_MAX_RUNS`` per tick; then
    freshness: an alert when no batch arrived for ``freshness_hours`` -- once per silence."""
    now = now or timezone.now()
    monitor = Monitor.objects.select_related("project", "deployment", "model_version").filter(pk=monitor_id).first()
    if monitor is None or not monitor.active:
        log.info("monitor %s is gone or paused: nothing scheduled", monitor_id)
        return {"queued": 0, "alerted": False}
    revision = MonitorRevision.objects.get(monitor=monitor, revision=monitor.revision)
    covered = batches_covered(monitor)
    from django.db.models import Exists, OuterRef

    runs = CheckRun.objects.filter(monitor_revision=revision, batch=OuterRef("pk"))
    if monitor.kind == MonitorKind.MODEL_QUALITY:
        runs = runs.filter(batch_revision=OuterRef("revision"))
    unchecked = covered.filter(purged_at__isnull=True).exclude(Exists(runs)).order_by("-window_end", "-id")
    queued = 0
    for batch in unchecked[: settings.TOLLGATE_SCHEDULE_MAX_RUNS]:
        if not _wants_run(monitor, revision, batch):
            continue
        with transaction.atomic():
            queued += _run_get_or_create(monitor, batch, None, revision)[1]
    alerted = _freshness(monitor, revision.config, covered, now)
    if queued or alerted:
        log.info("monitor %s: %s run(s) queued by its schedule%s", monitor.pk, queued, "; no data" if alerted else "")
    return {"queued": queued, "alerted": alerted}


def _freshness(monitor: Monitor, config: dict, covered, now: datetime.datetime) -> bool:
    hours = config.get("freshness_hours")
    if not hours:
        return False
    from django.db.models import Max

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


# --- Raw data: the project's policy, downloads, retention ----------------------------------------------------

POLICY_EDITORS = (Role.ADMIN,)


def data_policy_of(project: Project) -> DataPolicy:
    """The project's data policy; the defaults (unsaved) until an admin changes it."""
    policy = DataPolicy.objects.filter(project=project).first()
    return policy or DataPolicy(project=project, download_roles=list(DataPolicy.DEFAULT_DOWNLOAD_ROLES))


@transaction.atomic
def data_policy_update(*, actor: Principal, project: Project, **fields) -> DataPolicy:
    """Admins set who may download raw data (roles) and how many days batches and reference data are kept
    (None: kept). Audited with the change."""
    require_role(actor, project, POLICY_EDITORS, action="change the data policy")
    roles = fields.get("download_roles")
    if roles is not None:
        unknown = sorted(set(roles) - set(Role.values))
        if unknown:
            raise _invalid("download_roles", f"unknown roles: {', '.join(unknown)}")
        fields["download_roles"] = sorted(set(roles))
    current = data_policy_of(project)
    if current.pk:
        current = DataPolicy.objects.select_for_update().get(pk=current.pk)
    keys = ("batch_retention_days", "reference_retention_days", "download_roles")
    before = {k: getattr(current, k) for k in keys}
    for name, value in fields.items():
        setattr(current, name, value)
    after = {k: getattr(current, k) for k in keys}
    if before != after or not current.pk:
        current.updated_by, current.updated_at = actor.user, timezone.now()
        current.save()
        audit_record(action="data_policy.updated", actor=actor, project=project, target=current,
                     diff=changes(before, after))  # fmt: skip
    return current


def raw_data_download_allow(*, actor: Principal, project: Project) -> None:
    """403 unless the caller holds one of the roles the project's data policy lets download raw data."""
    roles = data_policy_of(project).download_roles
    if not roles:
        from controlplane.api.errors import Forbidden

        raise Forbidden("This project's data policy lets nobody download raw data.", code="permission_denied",
                        project=project)  # fmt: skip
    require_role(actor, project, roles, action="download raw data (the project's data policy)", write=False)


def raw_data_prune(*, now: datetime.datetime | None = None) -> dict:
    """Beat, daily: delete the stored files of batches (with their labels and reports, which show the data's
    values) and of reference dataset versions older than their project's retention. Hashes, schemas, check
    runs with their results, and audit events stay; one ``raw_data.purged`` event per project says what went."""
    now = now or timezone.now()
    from governance.models import DatasetVersion

    totals = {"batches": 0, "dataset_versions": 0}
    policies = {p.project_id: p for p in DataPolicy.objects.all()}
    for project in Project.objects.all():
        policy = policies.get(project.pk) or data_policy_of(project)
        batches, versions = [], []
        if policy.batch_retention_days is not None:
            cutoff = now - datetime.timedelta(days=policy.batch_retention_days)
            for batch in Batch.objects.filter(project=project, purged_at__isnull=True, created_at__lt=cutoff):
                if _purge_batch(batch, now):
                    batches.append({"batch": batch.pk, "sha256": batch.sha256})
        if policy.reference_retention_days is not None:
            cutoff = now - datetime.timedelta(days=policy.reference_retention_days)
            expired = (
                DatasetVersion.objects.filter(dataset__project=project, model_links__role="reference",
                                              created_at__lt=cutoff, purge__isnull=True)
                .exclude(storage_path="").distinct()
            )  # fmt: skip
            for version in expired:
                delete_stored(version.storage_path)
                _, created = DatasetVersionPurge.objects.get_or_create(
                    dataset_version=version, defaults={"project": project, "storage_path": version.storage_path,
                                                       "purged_at": now},
                )  # fmt: skip
                if created:
                    versions.append({"dataset_version": version.pk, "sha256": version.sha256})
        if batches or versions:
            audit_record(action="raw_data.purged", actor=_system(), project=project, target=project,
                         diff={"batches": batches, "dataset_versions": versions,
                               "batch_retention_days": policy.batch_retention_days,
                               "reference_retention_days": policy.reference_retention_days})  # fmt: skip
            totals["batches"] += len(batches)
            totals["dataset_versions"] += len(versions)
    if any(totals.values()):
        log.info("raw data pruned: %s", totals)
    return totals


def _purge_batch(batch: Batch, now: datetime.datetime) -> bool:
    """Files first (deleting twice is harmless), then the marks: a failure in between is retried next time."""
    reports = CheckRun.objects.filter(batch=batch, report_state=ReportState.READY)
    paths = [batch.storage_path, *batch.labels.values_list("storage_path", flat=True)]
    for json_path, html_path in reports.values_list("report_json_path", "report_html_path"):
        paths += [json_path, html_path]
    for path in paths:
        if path:
            delete_stored(path)
    with transaction.atomic():
        if not Batch.objects.filter(pk=batch.pk, purged_at__isnull=True).update(purged_at=now):
            return False
        CheckRun.objects.filter(batch=batch, report_state__in=(ReportState.READY, ReportState.PENDING,
                                                               ReportState.FAILED)).update(
            report_state=ReportState.PURGED, report_json_path="", report_html_path=""
        )  # fmt: skip
    return True
