"""Batches of production data and their late labels (DESIGN §4, §6). A batch is checked against the version's
signature before it is kept, and each new batch or labels revision queues the runs of the monitors covering
it, in the transaction that records it."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import pyarrow as pa
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from controlplane.exceptions import DomainError, Gone, PayloadTooLarge
from governance.accounts.access import Principal, require_in_project, require_role
from governance.accounts.models import Project
from governance.audit.services import audit_record
from governance.promotion.models import Deployment
from governance.provenance.storage import delete_stored, file_sha256, project_prefix, store_data_file
from governance.provenance.uris import check_uri
from governance.registry.models import ModelVersion
from monitoring.models import Batch, BatchLabels, CheckRun, Monitor, MonitorKind, MonitorRevision

from ._common import WRITERS, _invalid, _signature_columns
from .runs import _run_get_or_create, _wants_run, check_queue_room

# Signature type -> the batch column types it accepts.


ACCEPTED_TYPES = {
    "float": {"float", "integer"},
    "integer": {"integer"},
    "string": {"string"},
    "category": {"string", "integer", "boolean"},
    "boolean": {"boolean"},
    "datetime": {"datetime"},
}


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
    return {name: pa.string() for name, kind in _signature_columns(version).items() if kind in ("string", "category")}


WINDOW = (
    "a batch's window is the time span its rows come from (when they were scored): give window_start and "
    "window_end both, or neither (then the window is the moment of the upload)"
)


def _window(window_start, window_end) -> tuple[datetime.datetime, datetime.datetime]:
    if (window_start is None) != (window_end is None):
        given, missing = ("window_start", "window_end") if window_end is None else ("window_end", "window_start")
        raise _invalid(missing, f"{WINDOW}; only {given} was given")
    if window_start is None:
        now = timezone.now()
        return now, now
    if window_start > window_end:
        raise _invalid("window_start", "the window must start before it ends")
    return window_start, window_end


def _scoring_version(*, project, deployment: Deployment | None, model_version: ModelVersion | None) -> ModelVersion:
    if deployment is None and model_version is None:
        raise _invalid("version", "name the deployment (model and environment) or the version that scored the data")
    require_in_project(project, deployment=deployment, model_version=model_version)
    version = model_version or deployment.model_version
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
    signature (400 naming them). The same bytes for the same version again return the existing batch.
    The runs count against the uploader's queue bounds: when they do not all fit, the upload is refused
    whole (429 naming the bound) and nothing is stored. A file without rows is refused (400 ``empty_batch``)."""
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
        if stored.row_count == 0:  # before the signature: a header-only CSV's columns have no type to compare
            raise DomainError(
                "The batch has no rows (a CSV with only its header, or an empty Parquet file): there is nothing to "
                "check. Send the rows the model scored in the window.",
                code="empty_batch", details=[{"field": "file", "message": "no rows"}],
            )  # fmt: skip
        problems = signature_problems(version, stored.schema)
        if problems:
            raise _schema_mismatch(version, problems)
        if stored.row_count > settings.TOLLGATE_MAX_BATCH_ROWS:
            limit = settings.TOLLGATE_MAX_BATCH_ROWS
            raise PayloadTooLarge(f"The batch has {stored.row_count} rows; the limit is {limit}.")
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
        wanted = []
        for monitor in monitors_covering(batch):
            revision = MonitorRevision.objects.get(monitor=monitor, revision=monitor.revision)
            if _wants_run(monitor, revision, batch):
                wanted.append((monitor, revision))
        if wanted:
            check_queue_room(project_id=project.pk, actor=actor, needed=len(wanted))
        runs = [_run_get_or_create(monitor, batch, actor, revision, defer=False)[0] for monitor, revision in wanted]
    return BatchResult(batch, True, runs)


def monitors_covering(batch: Batch):
    """The active monitors that check a batch: those of its deployment, and those of its version."""
    scope = Q(model_version=batch.model_version_id)
    if batch.deployment_id:
        scope |= Q(deployment=batch.deployment_id)
    return Monitor.objects.filter(scope, project=batch.project_id, active=True).order_by("pk")


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
    nothing else (data checks do not depend on labels); deferred beyond a queue bound. The same labels again
    return the existing revision."""
    project = batch.project
    require_role(actor, project, WRITERS, action="upload labels")
    if batch.purged_at is not None:
        raise Gone("The batch's data was deleted under the project's retention.", code="purged")
    actual = file_sha256(file)
    if sha256 and sha256.lower() != actual:
        raise _invalid("sha256", f"The uploaded bytes hash to {actual}, not {sha256.lower()}.")
    existing = BatchLabels.objects.filter(batch=batch, sha256=actual).first()
    if existing is not None:
        return LabelsResult(existing, False, list(batch.runs.filter(batch_revision=existing.revision)))
    path = f"{project_prefix(project)}batches/{batch.model_version_id}/labels/{batch.pk}-{actual}.parquet"
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
