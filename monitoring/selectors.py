"""Reads of the monitoring app, scoped to the caller's projects (an object elsewhere is a 404); and the one rule for
"this version has reference data" (runs, monitor states and the check gate use it)."""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from controlplane.exceptions import Conflict, NotFound
from governance.accounts.access import Principal
from governance.accounts.models import Project
from governance.promotion.models import Deployment
from governance.promotion.selectors import deployment_find, environment_get
from governance.provenance.models import DatasetRole, DatasetVersion, ModelVersionDataset
from governance.registry.models import ModelVersion, RegisteredModel

from .models import Alert, Batch, CheckRun, CheckState, DatasetVersionPurge, Monitor, MonitorKind


def _scoped(queryset: QuerySet, principal: Principal, project: Project) -> QuerySet:
    return queryset.filter(project=project, project__in=principal.project_ids())


# --- Reference data (not scoped: callers hold a version they may see) ---------------------------------------------


def readable_reference_links() -> QuerySet[ModelVersionDataset]:
    """Links with the role ``reference`` to dataset versions workers can read -- stored under the project's prefix
    (uploaded, or registered by a storage:// URI) and not purged under the project's retention -- newest first.
    The one rule for "this version has reference data": runs, the monitor's state and the check gate use it."""
    return (
        ModelVersionDataset.objects.filter(role=DatasetRole.REFERENCE, dataset_version__purge__isnull=True)
        .exclude(dataset_version__storage_path="")
        .order_by("-id")
    )


def reference_of(version: ModelVersion):
    """The version's reference dataset version that workers can read, or None."""
    link = readable_reference_links().filter(model_version=version).select_related("dataset_version").first()
    return link.dataset_version if link else None


def reference_link_hint(version: ModelVersion) -> dict:
    """How to link reference data to the version: the request to send."""
    project, model = version.model.project, version.model
    return {
        "method": "POST",
        "url": f"/api/v1/projects/{project.slug}/models/{model.name}/versions/{version.version}/datasets/",
        "body": [{"dataset_version": "<the id of a dataset version uploaded to Tollgate>", "role": "reference"}],
    }


def reference_missing(version: ModelVersion, kind: str, *, linked: bool | None = None) -> str:
    """Why a ``kind`` monitor of the version cannot run, and how to link reference data. ``linked``: whether the
    version has reference links at all (workers can read none of them); looked up when not given."""
    if linked is None:
        linked = version.dataset_links.filter(role=DatasetRole.REFERENCE).exists()
    url = reference_link_hint(version)["url"]
    where = f"{version.model.name} v{version.version}"
    why = f"no reference data linked to {where}"
    if linked:
        why = (
            f"no readable reference data linked to {where}: the linked dataset version is not stored in "
            "Tollgate (registered by a URI outside the project's storage, or deleted under its retention)"
        )
    datasets = f"/api/v1/projects/{version.model.project.slug}/datasets/{{id}}/versions/"
    return (
        f"{why}. A {kind} check compares each batch with the version's reference data (the data it was "
        f"validated on): upload it as a dataset version (POST {datasets}, multipart) and link that version with "
        f"the role 'reference' (POST {url} "
        '[{"dataset_version": <its id>, "role": "reference"}]). Batches that arrive after that are checked; '
        '"run now" (POST .../check-runs/ {"monitor": <id>}) checks the latest one.'
    )


def dataset_version_purged(version: DatasetVersion) -> bool:
    """The version's file was deleted under the project's retention (its hash stays)."""
    return DatasetVersionPurge.objects.filter(dataset_version=version).exists()


# --- What a monitor or a batch names: a deployment --------------------------------------------------------------


def monitored_deployment(*, project: Project, model: RegisteredModel, environment: str) -> Deployment:
    """The deployment of ``model`` in the environment named in a body (a 400 naming ``environment`` when there is
    no such environment; a 409 ``not_deployed`` with the version to give instead when nothing runs there)."""
    deployment = deployment_find(
        project=project, model=model, environment=environment_get(project=project, name=environment,
                                                                  field="environment"),
    )  # fmt: skip
    if deployment is None:
        latest = model.versions.order_by("-version").values_list("version", flat=True).first()
        example = f'"version": {latest}' if latest else '"version": <n>'
        raise Conflict(
            f"Nothing of '{model.name}' is deployed in {environment} yet. To check a version before it is "
            f"deployed, give the version instead of the environment ({example}): a version's monitors and "
            "batches are checked the same way, and its check gate reads their runs when it is promoted.",
            code="not_deployed",
            details=[{"field": "environment", "environment": environment,
                      "hint": {"model": model.name, "version": latest}}],
        )  # fmt: skip
    return deployment


# --- Monitors, batches, runs, alerts ---------------------------------------------------------------------------


def monitor_list(*, principal: Principal, project: Project, filters: dict | None = None) -> QuerySet[Monitor]:
    filters = filters or {}
    monitors = _with_reference(_scoped(Monitor.objects.all(), principal, project)).select_related(
        "model", "project", "deployment__environment", "deployment__model_version__model__project",
        "model_version__model__project", "created_by",
    )  # fmt: skip
    if filters.get("kind"):
        monitors = monitors.filter(kind=filters["kind"])
    if filters.get("model"):
        monitors = monitors.filter(model__name=filters["model"])
    if filters.get("active") is not None:
        monitors = monitors.filter(active=filters["active"])
    return monitors.prefetch_related("revisions").order_by("name", "id")  # the serializers show the current one


def _with_reference(monitors: QuerySet[Monitor]) -> QuerySet[Monitor]:
    """Each monitor with ``reference_id`` / ``reference_dataset_id`` (the readable reference data of the version it
    watches -- a deployment's current one -- or None) and ``reference_linked`` (any reference link at all): its
    ``needs_reference`` state is evaluated on read, so linking (or purging) reference data shows at once."""
    version = Coalesce(OuterRef("model_version_id"), OuterRef("deployment__model_version_id"))
    readable = readable_reference_links().filter(model_version_id=version)
    return monitors.annotate(
        reference_id=Subquery(readable.values("dataset_version_id")[:1]),
        reference_dataset_id=Subquery(readable.values("dataset_version__dataset_id")[:1]),
        reference_linked=Exists(ModelVersionDataset.objects.filter(model_version_id=version,
                                                                   role=DatasetRole.REFERENCE)),
    )  # fmt: skip


def monitor_get(*, principal: Principal, project: Project, monitor_id: int) -> Monitor:
    monitor = monitor_list(principal=principal, project=project).filter(pk=monitor_id).first()
    if monitor is None:
        raise NotFound("No such monitor in this project.")
    return monitor


def batch_list(*, principal: Principal, project: Project, filters: dict | None = None) -> QuerySet[Batch]:
    filters = filters or {}
    batches = (
        _scoped(Batch.objects.all(), principal, project)
        .select_related("model_version__model", "deployment__environment", "created_by")
        .prefetch_related("labels")
    )
    if filters.get("model"):
        batches = batches.filter(model_version__model__name=filters["model"])
    if filters.get("version"):
        batches = batches.filter(model_version__version=filters["version"])
    if filters.get("environment"):
        batches = batches.filter(deployment__environment__name=filters["environment"])
    return batches.order_by("-window_end", "-id")


def batch_get(*, principal: Principal, project: Project, batch_id: int) -> Batch:
    batch = batch_list(principal=principal, project=project).filter(pk=batch_id).first()
    if batch is None:
        raise NotFound("No such batch in this project.")
    return batch


def check_run_list(*, principal: Principal, project: Project, filters: dict | None = None) -> QuerySet[CheckRun]:
    filters = filters or {}
    runs = _scoped(CheckRun.objects.all(), principal, project).select_related(
        "monitor", "monitor_revision", "batch", "model_version__model"
    )
    for field, lookup in (("state", "state"), ("kind", "kind"), ("monitor", "monitor_id"), ("batch", "batch_id"),
                          ("model", "model_version__model__name"), ("version", "model_version__version")):  # fmt: skip
        if filters.get(field) not in (None, ""):
            runs = runs.filter(**{lookup: filters[field]})
    return runs.order_by("-created_at", "-id")


def check_run_get(*, principal: Principal, project: Project, run_id: int) -> CheckRun:
    run = check_run_list(principal=principal, project=project).filter(pk=run_id).first()
    if run is None:
        raise NotFound("No such check run in this project.")
    return run


def alert_list(*, principal: Principal, project: Project, filters: dict | None = None) -> QuerySet[Alert]:
    filters = filters or {}
    alerts = _scoped(Alert.objects.all(), principal, project).select_related(
        "check_run", "monitor", "deployment__environment", "model_version__model", "acknowledged_by"
    )
    if filters.get("acknowledged") is not None:
        alerts = alerts.filter(acknowledged_at__isnull=not filters["acknowledged"])
    if filters.get("model"):
        alerts = alerts.filter(model_version__model__name=filters["model"])
    if filters.get("environment"):
        alerts = alerts.filter(deployment__environment__name=filters["environment"])
    if filters.get("monitor") is not None:  # a check's alert names its monitor through the run
        alerts = alerts.filter(Q(monitor_id=filters["monitor"]) | Q(check_run__monitor_id=filters["monitor"]))
    return alerts.order_by("-raised_at", "-id")


def alert_get(*, principal: Principal, project: Project, alert_id: int) -> Alert:
    alert = alert_list(principal=principal, project=project).filter(pk=alert_id).first()
    if alert is None:
        raise NotFound("No such alert in this project.")
    return alert


def monitor_series(*, monitor: Monitor, since=None, until=None, limit: int = 500) -> dict:
    """Per batch (oldest window first): the latest run with a verdict of this monitor (any revision) at the
    batch's latest checked revision, as chart-ready arrays aligned with ``batches``: ``columns`` (data_drift:
    each column's drift score), ``metrics`` (data_quality: ``column.measure``; model_quality: each metric).
    One query, whatever the number of batches. ``limit``: the newest batches kept."""
    runs = CheckRun.objects.filter(monitor=monitor, state__in=(CheckState.PASSED, CheckState.FAILED))
    if since is not None:
        runs = runs.filter(batch__window_end__gte=since)
    if until is not None:
        runs = runs.filter(batch__window_end__lte=until)
    rows = runs.order_by("-batch__window_end", "-batch_id", "-batch_revision", "-finished_at", "-id").values_list(
        "batch_id", "batch__window_start", "batch__window_end", "batch_revision", "id", "state", "results"
    )
    latest, seen = [], set()
    for row in rows.iterator(chunk_size=500):
        if row[0] in seen:
            continue
        seen.add(row[0])
        latest.append(row)
        if len(latest) >= limit:
            break
    latest.reverse()
    drift = monitor.kind == MonitorKind.DATA_DRIFT
    batches, columns, metrics = [], {}, {}
    for i, (batch_id, start, end, revision, run_id, state, results) in enumerate(latest):
        batches.append({"batch": batch_id, "window_start": start, "window_end": end, "revision": revision,
                        "check_run": run_id, "state": state})  # fmt: skip
        for result in results or []:
            if drift:
                name, target = result["column"], columns
            elif result["column"] in ("*", result["method"]):
                name, target = result["method"], metrics
            else:
                name, target = f"{result['column']}.{result['method']}", metrics
            target.setdefault(name, [None] * len(latest))[i] = result.get("score")
    return {"monitor": monitor.pk, "kind": monitor.kind, "batches": batches, "columns": columns, "metrics": metrics}
