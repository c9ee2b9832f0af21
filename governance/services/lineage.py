"""OpenLineage ingest (DESIGN §4, Provenance): a validated RunEvent is stored as received, once, and projected
into jobs, runs, datasets, observed dataset versions and graph edges, in one transaction with its audit event.

The project comes from the caller's pinned key, and the principal behind that key is the run's agent.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from controlplane.api.errors import Conflict, DomainError
from governance.access import Principal, require_role
from governance.audit import audit_record
from governance.lineage import dataset_key, job_key, lineage_edges_ensure, lineage_nodes_ensure, model_key
from governance.models import (
    Dataset,
    DatasetVersion,
    LineageEvent,
    LineageJob,
    LineageRun,
    LineageRunDataset,
    ModelVersion,
    Project,
    Role,
)

INGEST_ROLES = (Role.ML_ENGINEER,)
TERMINAL_STATES = ("COMPLETE", "ABORT", "FAIL")
MODEL_VERSION_FACET = "tollgate_modelVersion"
# Producers name the version facet ``version`` (the spec's key); ``datasetVersion`` is accepted too.
VERSION_FACETS = ("version", "datasetVersion")


@dataclass
class IngestResult:
    event: LineageEvent
    created: bool  # False: these exact bytes were stored before, and nothing was done
    changed: bool  # the graph, a run or a job changed (and ``lineage.ingested`` was audited)
    run: LineageRun | None = None


def lineage_ingest_project(actor: Principal) -> Project:
    """The project an ingest writes to: the one the caller's key is pinned to, where they are an ML engineer."""
    project_id = actor.pinned_project_id
    if project_id is None:
        raise DomainError(
            "OpenLineage ingest takes its project from the API key: send 'Authorization: Bearer <key>' with a "
            "key pinned to one project (a service account's key, or a user key created with a project).",
            code="project_key_required",
        )
    project = Project.objects.get(pk=project_id)
    require_role(actor, project, INGEST_ROLES, action="report lineage")
    return project


def event_sha256(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def dataset_version_label(dataset: dict) -> str | None:
    facets = dataset.get("facets") or {}
    for name in VERSION_FACETS:
        facet = facets.get(name)
        if isinstance(facet, dict) and not facet.get("_deleted") and facet.get("datasetVersion"):
            return facet["datasetVersion"]
    return None


def _merge_facets(current: dict, incoming: dict | None) -> dict:
    """The latest value of each facet; one sent with ``_deleted: true`` is removed."""
    merged = dict(current)
    for name, facet in (incoming or {}).items():
        if isinstance(facet, dict) and facet.get("_deleted") is True:
            merged.pop(name, None)
        else:
            merged[name] = facet
    return merged


def _locked(model, lookup: dict, defaults: dict):
    """Get (locked) or create a row; safe when two events create it at once."""
    found = model.objects.select_for_update().filter(**lookup).first()
    if found is not None:
        return found, False
    try:
        with transaction.atomic():
            return model.objects.create(**lookup, **defaults), True
    except IntegrityError:
        return model.objects.select_for_update().get(**lookup), False


def _model_version_of(project: Project, run_facets: dict) -> ModelVersion | None:
    facet = run_facets.get(MODEL_VERSION_FACET)
    if not facet:
        return None
    found = (
        ModelVersion.objects.filter(model__project=project, model__name=facet["model"], version=facet["version"])
        .select_related("model")
        .first()
    )
    if found is None:
        raise DomainError(
            f"The run names model version {facet['model']} v{facet['version']}, which is not registered in this "
            "project; register it before reporting the run that produced it.",
            code="unknown_model_version",
            details=[{"field": f"run.facets.{MODEL_VERSION_FACET}", "message": "unknown model version"}],
        )
    return found


def _next_state(current: str, event_type: str | None) -> str:
    """A run's state follows its events, except that a late START or RUNNING never reopens a finished run
    and OTHER (extra metadata) changes nothing."""
    if not event_type or event_type == "OTHER":
        return current or (event_type or "")
    if current in TERMINAL_STATES and event_type not in TERMINAL_STATES:
        return current
    return event_type


def _run_upsert(*, actor, project, job, event, model_version, now) -> tuple[LineageRun, bool]:
    run_body = event["run"]
    event_type, event_time = event.get("eventType"), event["eventTime"]
    run, created = _locked(
        LineageRun,
        {"project": project, "run_id": run_body["runId"]},
        {"job": job, "agent": actor.user, "created_at": now, "updated_at": now},
    )
    if run.job_id != job.pk:
        raise Conflict(
            f"Run {run.run_id} belongs to the job {run.job.namespace}/{run.job.name}; a run cannot move to another.",
            code="run_job_mismatch",
            details=[{"field": "job"}],
        )
    if model_version is not None and run.model_version_id not in (None, model_version.pk):
        raise Conflict(
            f"Run {run.run_id} already produced another model version.",
            code="run_model_version_mismatch",
            details=[{"field": f"run.facets.{MODEL_VERSION_FACET}"}],
        )
    before = (run.state, run.facets, run.parent_run_id, run.model_version_id, run.started_at, run.ended_at)
    run.state = _next_state(run.state, event_type)
    run.facets = _merge_facets(run.facets, run_body.get("facets"))
    parent = run.facets.get("parent")
    run.parent_run_id = parent["run"]["runId"] if isinstance(parent, dict) and parent.get("run") else None
    if model_version is not None:
        run.model_version = model_version
    if event_type == "START":
        run.started_at = min(run.started_at, event_time) if run.started_at else event_time
    if event_type in TERMINAL_STATES and run.state == event_type:
        run.ended_at = event_time
    run.last_event_at = max(run.last_event_at, event_time) if run.last_event_at else event_time
    after = (run.state, run.facets, run.parent_run_id, run.model_version_id, run.started_at, run.ended_at)
    run.updated_at = now
    run.save()
    return run, created or before != after


def _schema_columns(facets: dict) -> list[dict]:
    schema = facets.get("schema")
    if not isinstance(schema, dict) or schema.get("_deleted"):
        return []
    return [{"name": field["name"], "type": field.get("type") or ""} for field in schema.get("fields") or []]


def _dataset_io(*, actor, project, run, body: dict, direction: str, now) -> tuple[Dataset, DatasetVersion | None, bool]:
    """The dataset (created on first sight, owned by the reporting principal), its observed version when the
    event names one (a registered version with that label is used, never overwritten), and the run's record."""
    changed = False
    dataset = Dataset.objects.filter(project=project, namespace=body["namespace"], name=body["name"]).first()
    if dataset is None:
        try:
            with transaction.atomic():
                dataset = Dataset.objects.create(
                    project=project, namespace=body["namespace"], name=body["name"], owner=actor.user, created_at=now
                )
                changed = True
        except IntegrityError:
            dataset = Dataset.objects.get(project=project, namespace=body["namespace"], name=body["name"])
    facets = body.get("facets") or {}
    version, label = None, dataset_version_label(body)
    if label is not None:
        version = DatasetVersion.objects.filter(dataset=dataset, version=label).first()
        if version is None:
            try:
                with transaction.atomic():
                    version = DatasetVersion.objects.create(
                        dataset=dataset,
                        version=label,
                        kind=DatasetVersion.Kind.OBSERVED,
                        sha256=None,
                        schema=_schema_columns(facets),
                        created_by=actor.user,
                        created_at=now,
                    )
                    changed = True
            except IntegrityError:
                version = DatasetVersion.objects.get(dataset=dataset, version=label)
    extra = "inputFacets" if direction == LineageRunDataset.Direction.INPUT else "outputFacets"
    record, created = _locked(
        LineageRunDataset, {"run": run, "dataset": dataset, "direction": direction}, {"dataset_version": version}
    )
    before = (record.dataset_version_id, record.facets)
    if version is not None:
        record.dataset_version = version
    record.facets = {
        "facets": _merge_facets(record.facets.get("facets", {}), facets),
        extra: _merge_facets(record.facets.get(extra, {}), body.get(extra)),
    }
    if created or before != (record.dataset_version_id, record.facets):
        record.save()
        changed = True
    return dataset, version, changed


def _label(dataset: Dataset, version: DatasetVersion | None) -> str:
    return f"{dataset.namespace}/{dataset.name}" + (f"@{version.version}" if version else "")


def _already_stored(project: Project, sha256: str, body: str, identity: dict) -> LineageEvent | None:
    """The stored event this one is (the same bytes, or the same JSON in other bytes), or None when none has
    its identity (run, eventType, eventTime). Another event with that identity is a 409 naming it: an event
    is stored once and never replaced (a producer that retries must send the same event)."""
    existing = LineageEvent.objects.filter(project=project, sha256=sha256).first()
    if existing is not None:
        return existing
    existing = LineageEvent.objects.filter(project=project, **identity).first()
    if existing is None or json.loads(existing.body) == json.loads(body):
        return existing
    event_type = existing.event_type or "(none)"
    raise Conflict(
        f"Run {existing.run_id} already has an event with eventType {event_type} at eventTime "
        f"{existing.event_time.isoformat()}, with other content (sha256 {existing.sha256}, received "
        f"{existing.received_at.isoformat()}); a stored event is never replaced.",
        code="lineage_event_conflict",
        details=[
            {
                "sha256": existing.sha256,
                "runId": str(existing.run_id),
                "eventType": existing.event_type,
                "eventTime": existing.event_time.isoformat(),
                "received_at": existing.received_at.isoformat(),
            }
        ],
    )


@transaction.atomic
def lineage_event_ingest(*, actor: Principal, project: Project, body: str, event: dict) -> IngestResult:
    """Store one validated RunEvent (``body``: its text exactly as received) and project it. The same event
    again (the same bytes, or the same JSON) returns the stored one and changes nothing; another event with
    the same run, eventType and eventTime is a 409 naming the stored one (the database's identity constraint
    backs this against concurrent ingests); an event the project cannot accept changes nothing."""
    require_role(actor, project, INGEST_ROLES, action="report lineage")
    sha256 = event_sha256(body)
    identity = {"run_id": event["run"]["runId"], "event_type": event.get("eventType") or "",
                "event_time": event["eventTime"]}  # fmt: skip
    existing = _already_stored(project, sha256, body, identity)
    if existing is not None:
        return IngestResult(event=existing, created=False, changed=False)
    now = timezone.now()
    model_version = _model_version_of(project, event["run"].get("facets") or {})
    try:
        with transaction.atomic():
            stored = LineageEvent.objects.create(
                project=project, sha256=sha256, body=body, **identity, received_by=actor.user, received_at=now
            )
    except IntegrityError:  # stored concurrently: the same event, or a conflicting one (409)
        existing = _already_stored(project, sha256, body, identity)
        if existing is None:
            raise
        return IngestResult(event=existing, created=False, changed=False)

    job_body = event["job"]
    job, job_created = _locked(
        LineageJob,
        {"project": project, "namespace": job_body["namespace"], "name": job_body["name"]},
        {"created_at": now, "updated_at": now},
    )
    facets = _merge_facets(job.facets, job_body.get("facets"))
    job_changed = job_created or facets != job.facets
    if facets != job.facets:
        job.facets, job.updated_at = facets, now
        job.save(update_fields=["facets", "updated_at"])
    run, run_changed = _run_upsert(
        actor=actor, project=project, job=job, event=event, model_version=model_version, now=now
    )

    seen: dict[str, list] = {"input": [], "output": []}
    io_changed = False
    for direction, key in (
        (LineageRunDataset.Direction.INPUT, "inputs"),
        (LineageRunDataset.Direction.OUTPUT, "outputs"),
    ):
        for body_of_dataset in event.get(key) or []:
            dataset, version, changed = _dataset_io(
                actor=actor, project=project, run=run, body=body_of_dataset, direction=direction, now=now
            )
            seen[direction].append((dataset, version))
            io_changed |= changed

    job_node = job_key(job.namespace, job.name)
    wanted = {job_node: ("job", job)}
    for dataset, _ in seen["input"] + seen["output"]:
        wanted[dataset_key(dataset.namespace, dataset.name)] = ("dataset", dataset)
    if run.model_version is not None:
        version = run.model_version
        wanted[model_key(version.model.name, version.version)] = ("model_version", version)
    ids, nodes_created = lineage_nodes_ensure(project, wanted)
    edges = {(ids[dataset_key(d.namespace, d.name)], ids[job_node]) for d, _ in seen["input"]}
    edges |= {(ids[job_node], ids[dataset_key(d.namespace, d.name)]) for d, _ in seen["output"]}
    if run.model_version is not None:
        edges.add((ids[job_node], ids[model_key(run.model_version.model.name, run.model_version.version)]))
    edges_created = lineage_edges_ensure(project, edges)

    changed = job_changed or run_changed or io_changed or nodes_created or edges_created
    if changed:
        audit_record(
            action="lineage.ingested",
            actor=actor,
            project=project,
            target=run,
            diff={
                "event_sha256": sha256,
                "event_type": event.get("eventType") or "",
                "run_id": str(run.run_id),
                "job": f"{job.namespace}/{job.name}",
                "state": run.state,
                "inputs": [_label(d, v) for d, v in seen["input"]],
                "outputs": [_label(d, v) for d, v in seen["output"]],
                "model_version": (
                    f"{run.model_version.model.name} v{run.model_version.version}" if run.model_version else None
                ),
            },
        )
    return IngestResult(event=stored, created=True, changed=changed, run=run)
