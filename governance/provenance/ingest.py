"""OpenLineage ingest (DESIGN §4, Provenance): a validated RunEvent is stored as received, once, and projected
into jobs, runs, datasets, observed dataset versions and graph edges, in one transaction with its audit event.

The project comes from the caller's pinned key, and the principal behind that key is the run's agent.

A run is linked to the model version it produced in one of two ways (``LineageRun.model_version_link``):

- ``facet``: the run facet ``tollgate_modelVersion`` (``{"model": name, "version": number}``) names it; a
  version that is not registered in the project is a 400.
- ``artifact``: the run is COMPLETE and an output dataset is the version's artifact -- its namespace and name
  (or its name alone) make the version's ``artifact_uri`` character for character, and, when the output carries
  the dataset facet ``tollgate_artifact`` (``{"sha256": ...}``), the version's ``artifact_sha256`` is that
  hash. The run is linked only when exactly one version of the key's project matches; otherwise it is stored
  unlinked and the answer says why. This is checked at ingest (any event of a completed, unlinked run) and
  again when a version is registered (``lineage_runs_link_artifact``), both under one advisory lock per
  project, so a registration and a run's completion that race still meet.

A link, once made, stays: a later version with the same artifact URI does not move or remove it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from controlplane.exceptions import Conflict, DomainError
from governance.accounts.access import Principal, require_role
from governance.accounts.models import Project, Role
from governance.audit.services import audit_record
from governance.provenance.graph import (
    artifact_datasets,
    artifact_uris,
    dataset_key,
    job_key,
    lineage_edges_ensure,
    lineage_nodes_ensure,
    model_key,
)
from governance.provenance.models import (
    Dataset,
    DatasetVersion,
    LineageEvent,
    LineageJob,
    LineageRun,
    LineageRunDataset,
    model_versions,
)

if TYPE_CHECKING:  # annotations only: the registry sits above provenance
    from governance.registry.models import ModelVersion

INGEST_ROLES = (Role.ML_ENGINEER,)
TERMINAL_STATES = ("COMPLETE", "ABORT", "FAIL")
MODEL_VERSION_FACET = "tollgate_modelVersion"  # run facet: {"model": name, "version": number}
ARTIFACT_FACET = "tollgate_artifact"  # dataset facet of an output that is a model artifact: {"sha256": hex}
# PostgreSQL advisory lock namespace (pg_advisory_xact_lock(namespace, project id)) serialising artifact links;
# monitoring.services.runs takes 0x54470001 and 0x54470002.
_LOCK_ARTIFACT_LINK = 0x54470003
# Producers name the version facet ``version`` (the spec's key); ``datasetVersion`` is accepted too.
VERSION_FACETS = ("version", "datasetVersion")


@dataclass
class ArtifactOutput:
    """An output of a run that names a location: the URIs its identity makes, the sha256 its
    ``tollgate_artifact`` facet gives (or None), and the project's versions with one of those artifact URIs."""

    namespace: str
    name: str
    uris: list[str]
    sha256: str | None
    versions: list[ModelVersion] = field(default_factory=list)

    @property
    def matching(self) -> list[ModelVersion]:
        return [v for v in self.versions if self.sha256 is None or v.artifact_sha256 == self.sha256]

    def as_dict(self) -> dict:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "artifactUris": self.uris,
            "sha256": self.sha256,
            "versions": [_version_ref(v) for v in self.versions],
        }


@dataclass
class RunLink:
    """Whether a run is linked to a model version, how, and if not, why (``reason``, ``message``)."""

    linked: bool
    message: str
    by: str | None = None  # LineageRun.Link
    version: ModelVersion | None = None
    reason: str | None = None
    outputs: list[ArtifactOutput] = field(default_factory=list)
    newly: bool = False  # linked by this call

    def as_dict(self) -> dict:
        return {
            "linked": self.linked,
            "by": self.by,
            "model": self.version.model.name if self.version else None,
            "version": self.version.version if self.version else None,
            "reason": self.reason,
            "message": self.message,
            "outputs": [output.as_dict() for output in self.outputs],
        }


@dataclass
class IngestResult:
    event: LineageEvent
    created: bool  # False: these exact bytes were stored before, and nothing was done
    changed: bool  # the graph, a run or a job changed (and ``lineage.ingested`` was audited)
    run: LineageRun | None = None
    link: RunLink | None = None  # the run's model version link, as it stands after this event


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
        model_versions()
        .filter(model__project=project, model__name=facet["model"], version=facet["version"])
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


def _version_ref(version: ModelVersion) -> dict:
    return {"model": version.model.name, "version": version.version, "artifactUri": version.artifact_uri,
            "artifactSha256": version.artifact_sha256}  # fmt: skip


def _named(versions) -> str:
    return ", ".join(f"{v.model.name} v{v.version}" for v in versions)


FACET_HOW = (
    f"name the version with the run facet {MODEL_VERSION_FACET} "
    '({"model": "<model name>", "version": <version number>})'
)


def artifact_link_lock(project_id: int) -> None:
    """Serialise matching runs to versions by artifact in a project until the transaction ends: an ingest
    completing a run and a registration of its artifact's version then never miss each other. Taken before
    the audit chain's head in every transaction that takes both (a registration takes it first thing). SQLite
    runs one writing transaction at a time (IMMEDIATE) and needs none."""
    assert connection.in_atomic_block, "the artifact link lock is held to the end of a transaction"
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_ARTIFACT_LINK, project_id % 2**31])


def _artifact_sha256(record_facets: dict) -> str | None:
    facet = (record_facets.get("facets") or {}).get(ARTIFACT_FACET)
    if isinstance(facet, dict) and facet.get("_deleted") is not True and isinstance(facet.get("sha256"), str):
        return facet["sha256"]
    return None


def _artifact_outputs(run: LineageRun) -> list[ArtifactOutput]:
    """The run's outputs (as reported by all its events so far) that name a location."""
    rows = LineageRunDataset.objects.filter(run=run, direction=LineageRunDataset.Direction.OUTPUT)
    outputs = []
    for row in rows.select_related("dataset").order_by("id"):
        uris = artifact_uris(row.dataset.namespace, row.dataset.name)
        if uris:
            outputs.append(
                ArtifactOutput(
                    namespace=row.dataset.namespace,
                    name=row.dataset.name,
                    uris=uris,
                    sha256=_artifact_sha256(row.facets),
                )
            )
    return outputs


def _with_versions(project: Project, outputs: list[ArtifactOutput]) -> None:
    uris = {uri for output in outputs for uri in output.uris}
    versions = list(
        model_versions()
        .filter(model__project=project, artifact_uri__in=uris)
        .select_related("model")
        .order_by("model__name", "version")
    )
    for output in outputs:
        output.versions = [v for v in versions if v.artifact_uri in output.uris]


def _run_link(project: Project, run: LineageRun, *, write: bool) -> RunLink:
    """The run's link to a model version. ``write``: link it now when it is COMPLETE, unlinked, and exactly
    one version of the project matches its outputs (under ``artifact_link_lock``)."""
    if run.model_version_id is not None:
        version = run.model_version
        if run.model_version_link == LineageRun.Link.FACET:
            return RunLink(linked=True, by=LineageRun.Link.FACET, version=version,
                           message=f"Run {run.run_id} is linked to {_named([version])} by its run facet "
                           f"{MODEL_VERSION_FACET}.")  # fmt: skip
        outputs = _artifact_outputs(run)
        _with_versions(project, outputs)
        return RunLink(linked=True, by=LineageRun.Link.ARTIFACT, version=version,
                       outputs=[o for o in outputs if version in o.matching],
                       message=f"Run {run.run_id} is linked to {_named([version])}: an output of the completed run is "
                       f"its artifact {version.artifact_uri}.")  # fmt: skip
    if run.state != LineageRun.State.COMPLETE:
        state = run.state or "reported without an eventType"
        return RunLink(linked=False, reason="run_not_complete",
                       message=f"Run {run.run_id} is {state} and names no model version, so it is stored unlinked for "
                       "now: an output is matched to a version's artifact when the run is COMPLETE (a run that "
                       f"fails or is aborted never is). To link it by name, {FACET_HOW}.")  # fmt: skip
    outputs = _artifact_outputs(run)
    if not outputs:
        return RunLink(linked=False, reason="no_outputs",
                       message=f"Run {run.run_id} names no model version and none of its outputs names a location, so "
                       "it is stored unlinked. To link it, report the model artifact as an output whose namespace and "
                       "name make the version's artifact_uri (s3://bucket + path/model.onnx), or "
                       f"{FACET_HOW}.")  # fmt: skip
    if write:
        artifact_link_lock(project.pk)
    _with_versions(project, outputs)
    matched = list(dict.fromkeys(v for o in outputs for v in o.matching))
    if len(matched) == 1:
        version = matched[0]
        hits = [o for o in outputs if version in o.matching]
        if not write:  # only between a registration and the run's next event, which links it
            return RunLink(linked=False, reason="link_pending", outputs=hits,
                           message=f"An output of run {run.run_id} is the artifact of {_named([version])}; the run's "
                           "next event links it.")  # fmt: skip
        run.model_version, run.model_version_link = version, LineageRun.Link.ARTIFACT
        run.updated_at = timezone.now()
        run.save(update_fields=["model_version", "model_version_link", "updated_at"])
        return RunLink(linked=True, by=LineageRun.Link.ARTIFACT, version=version, outputs=hits, newly=True,
                       message=f"Run {run.run_id} is linked to {_named([version])}: an output of the completed run is "
                       f"its artifact {version.artifact_uri}.")  # fmt: skip
    uris = ", ".join(dict.fromkeys(uri for o in outputs for uri in o.uris))
    if matched:
        hint = "" if any(o.sha256 for o in outputs) else (
            f" or give the artifact's sha256 in the output's dataset facet {ARTIFACT_FACET} ({{\"sha256\": ...}})"
        )  # fmt: skip
        return RunLink(linked=False, reason="several_versions", outputs=[o for o in outputs if o.matching],
                       message=f"{len(matched)} model versions in project '{project.slug}' match the outputs of run "
                       f"{run.run_id}: {_named(matched)}. A run is linked only when exactly one version does, so it "
                       f"is stored unlinked: {FACET_HOW}{hint}.")  # fmt: skip
    differing = [o for o in outputs if o.versions]
    if differing:
        found = "; ".join(
            f"{o.namespace}/{o.name} has sha256 {o.sha256}, but "
            + ", ".join(f"{_named([v])} has {v.artifact_sha256}" for v in o.versions)
            for o in differing
        )
        return RunLink(linked=False, reason="sha256_differs", outputs=differing,
                       message=f"The {ARTIFACT_FACET} facet of run {run.run_id}'s output gives another sha256 than the "
                       f"version with that artifact URI: {found}. The run is stored unlinked; it is linked when a "
                       "version with that artifact URI and sha256 is registered in this project.")  # fmt: skip
    return RunLink(linked=False, reason="no_matching_version", outputs=outputs,
                   message=f"No model version in project '{project.slug}' has the artifact URI {uris} (an output "
                   f"of run {run.run_id}). The run is stored unlinked; it is linked when a version with that "
                   f"artifact_uri is registered in this project, or {FACET_HOW}.")  # fmt: skip


def lineage_run_link_get(project: Project, run_id) -> RunLink:
    """The link of a stored run, as the answer to a replayed event reports it (nothing is written)."""
    run = LineageRun.objects.select_related("model_version__model").get(project=project, run_id=run_id)
    return _run_link(project, run, write=False)


def _graph_run_link(project: Project, run: LineageRun) -> None:
    """The edge job → model version of a run linked after its events were projected."""
    job_node = job_key(run.job.namespace, run.job.name)
    model_node = model_key(run.model_version.model.name, run.model_version.version)
    ids, _ = lineage_nodes_ensure(
        project, {job_node: ("job", run.job), model_node: ("model_version", run.model_version)}
    )
    lineage_edges_ensure(project, {(ids[job_node], ids[model_node])})


def lineage_runs_link_artifact(*, actor: Principal, version: ModelVersion) -> list[RunLink]:
    """After ``version`` is registered: link every completed, unlinked run of its project that wrote its
    artifact and matches no other version (the rule ingest applies), each audited as ``lineage.run_linked``.
    Several runs may link to one version (a retried job); a run links to one version only. The caller took
    ``artifact_link_lock`` before its first audit event."""
    project = version.model.project
    artifact_link_lock(project.pk)
    datasets = artifact_datasets(project, version.artifact_uri)
    if not datasets:
        return []
    wrote = LineageRunDataset.objects.filter(
        dataset__in=datasets, direction=LineageRunDataset.Direction.OUTPUT,
        run__model_version__isnull=True, run__state=LineageRun.State.COMPLETE,
    ).values("run_id")  # fmt: skip
    # A run whose row another transaction holds is being ingested; that ingest matches it after this commits.
    runs = LineageRun.objects.select_for_update(skip_locked=True, of=("self",)).filter(
        pk__in=wrote, model_version__isnull=True
    )
    linked = []
    for run in runs.select_related("job").order_by("id"):
        link = _run_link(project, run, write=True)
        if not link.newly:
            continue
        _graph_run_link(project, run)
        audit_record(
            action="lineage.run_linked",
            actor=actor,
            project=project,
            target=run,
            diff={
                "run_id": str(run.run_id),
                "job": f"{run.job.namespace}/{run.job.name}",
                "model_version": _named([link.version]),
                "by": link.by,
                "artifact_uri": link.version.artifact_uri,
                "outputs": [f"{o.namespace}/{o.name}" for o in link.outputs],
            },
        )
        linked.append(link)
    return linked


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
        how = "its run facet" if run.model_version_link == LineageRun.Link.FACET else "its output artifact"
        raise Conflict(
            f"Run {run.run_id} is linked to {_named([run.model_version])} (by {how}); the event's "
            f"{MODEL_VERSION_FACET} names {_named([model_version])}. A run produces one model version.",
            code="run_model_version_mismatch",
            details=[{"field": f"run.facets.{MODEL_VERSION_FACET}"}],
        )
    before = (run.state, run.facets, run.parent_run_id, run.model_version_id, run.model_version_link,
              run.started_at, run.ended_at)  # fmt: skip
    run.state = _next_state(run.state, event_type)
    run.facets = _merge_facets(run.facets, run_body.get("facets"))
    parent = run.facets.get("parent")
    run.parent_run_id = parent["run"]["runId"] if isinstance(parent, dict) and parent.get("run") else None
    if model_version is not None:  # naming the version is the explicit link, whatever matched before
        run.model_version, run.model_version_link = model_version, LineageRun.Link.FACET
    if event_type == "START":
        run.started_at = min(run.started_at, event_time) if run.started_at else event_time
    if event_type in TERMINAL_STATES and run.state == event_type:
        run.ended_at = event_time
    run.last_event_at = max(run.last_event_at, event_time) if run.last_event_at else event_time
    after = (run.state, run.facets, run.parent_run_id, run.model_version_id, run.model_version_link,
             run.started_at, run.ended_at)  # fmt: skip
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
        return IngestResult(event=existing, created=False, changed=False,
                            link=lineage_run_link_get(project, existing.run_id))  # fmt: skip
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
        return IngestResult(event=existing, created=False, changed=False,
                            link=lineage_run_link_get(project, existing.run_id))  # fmt: skip

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
    link = _run_link(project, run, write=True)
    run_changed |= link.newly

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
                "model_version": _named([run.model_version]) if run.model_version else None,
                "model_version_link": run.model_version_link or None,
            },
        )
    return IngestResult(event=stored, created=True, changed=changed, run=run, link=link)
