"""Reads of the registry, scoped to the requesting principal: models and their versions. Out of scope is 404."""

from django.db import connection
from django.db.models import Count, Exists, OuterRef, Prefetch, QuerySet
from django.utils import timezone

from controlplane.exceptions import NotFound
from controlplane.prepared import Prepared
from governance.accounts.access import Principal, project_ids_of
from governance.accounts.models import Project
from governance.accounts.selectors import project_get
from governance.provenance.models import LineageRun, ModelVersionDataset
from governance.registry.models import Metric, ModelCard, ModelCardRevision, ModelVersion, RegisteredModel


def model_card_get(*, version: ModelVersion) -> ModelCard:
    """The version's card; not written yet, an empty one (unsaved), so a reader sees every field as missing."""
    card = (
        ModelCard.objects.filter(model_version=version).select_related("confirmed_by", "confirmation_voided_by").first()
    )
    if card is None:
        card = ModelCard(model_version=version, content={})
    card.model_version = version
    return card


def model_card_revision_list(*, version: ModelVersion) -> QuerySet[ModelCardRevision]:
    """Every revision of the version's card, oldest first, with its author."""
    return ModelCardRevision.objects.filter(card__model_version=version).select_related("author").order_by("revision")


def model_list(*, principal: Principal, project: Project, filters: dict | None = None) -> QuerySet:
    filters = filters or {}
    models = RegisteredModel.objects.filter(project=project, project__in=principal.project_ids()).select_related(
        "owner"
    )
    if filters.get("q"):
        models = models.filter(name__icontains=filters["q"])
    if filters.get("tag"):
        models = _with_tag(models, filters["tag"])
    if filters.get("owner"):
        models = models.filter(owner__username=filters["owner"])
    return models.annotate(version_count=Count("versions")).order_by("name", "id")


def model_get(*, principal: Principal, project: Project, name: str):
    model = _model_in.first(project=project.pk, name=name, **principal.scope())
    if model is None:
        raise NotFound(f"No model '{name}' in this project.")
    return model


_model_in = Prepared(
    lambda project, name, **scope: RegisteredModel.objects.filter(
        project_id=project, project__in=project_ids_of(**scope), name=name
    )
    .select_related("owner", "project")
    .order_by(),
    project=0, name="", user=0, at=timezone.now(), pinned=0,
)  # fmt: skip


def _with_tag(queryset: QuerySet, tag: str) -> QuerySet:
    """Rows whose JSON ``tags`` list holds ``tag``: a containment query on PostgreSQL (indexable); SQLite
    has no JSON containment, and tags are plain tokens, so the quoted token is matched in the text."""
    if connection.vendor == "postgresql":
        return queryset.filter(tags__contains=[tag])
    return queryset.filter(tags__icontains=f'"{tag}"')


def _versions(principal: Principal) -> QuerySet[ModelVersion]:
    """Versions in the projects where the caller holds a role, with what their representation reads."""
    links = ModelVersionDataset.objects.select_related("dataset_version__dataset")
    runs = LineageRun.objects.select_related("job", "agent").order_by("created_at", "id")
    return (
        ModelVersion.objects.filter(model__project__in=principal.project_ids())
        .select_related("model", "created_by", "card")
        .prefetch_related("metrics", Prefetch("dataset_links", queryset=links), Prefetch("lineage_runs", queryset=runs))
    )


def model_version_list(*, principal: Principal, model, filters: dict | None = None, children: bool = True) -> QuerySet:
    """The model's versions in the caller's scope; ``children=False``: without the prefetches of what each
    version's representation shows (``versions_with_children`` gives them to a page). Filters: tag, created_by,
    status, metric with metric_min and metric_max."""
    filters = filters or {}
    versions = _versions(principal).filter(model=model)
    if not children:
        versions = versions.prefetch_related(None)
    if filters.get("tag"):
        versions = _with_tag(versions, filters["tag"])
    if filters.get("created_by"):
        versions = versions.filter(created_by__username=filters["created_by"])
    if filters.get("status"):
        versions = versions.filter(status=filters["status"])
    if filters.get("metric"):
        bounds = {}
        if filters.get("metric_min") is not None:
            bounds["value__gte"] = filters["metric_min"]
        if filters.get("metric_max") is not None:
            bounds["value__lte"] = filters["metric_max"]
        versions = versions.filter(
            Exists(Metric.objects.filter(model_version=OuterRef("pk"), name=filters["metric"], **bounds))
        )
    return versions


def model_version_at(
    *, principal: Principal, project: str, model: str, version: int, representation: bool = True
) -> ModelVersion:
    """The version at ``projects/{project}/models/{model}/versions/{version}/``, with its model and project, in
    one query: the path every version endpoint resolves. On a miss the step-by-step lookups run, so the error
    says which part is missing (or that a pinned key points elsewhere). ``representation=False`` leaves out
    the metrics, links and runs that only the version's own representation shows (the gates read their own)."""
    found = _version_at.first(project=project, model=model, version=version, **principal.scope())
    if found is None:
        in_project = project_get(principal=principal, slug=project)
        return model_version_get(
            principal=principal, model=model_get(principal=principal, project=in_project, name=model), version=version
        )
    if representation:
        _with_representation(found)
    return found


# The lookups of every request on a version's path, compiled once (controlplane.prepared).
_version_at = Prepared(
    lambda project, model, version, **scope: ModelVersion.objects.filter(
        model__project__in=project_ids_of(**scope), model__project__slug=project, model__name=model, version=version
    )
    .select_related("model__project", "model__owner", "created_by", "card")
    .order_by(),
    project="", model="", version=0, user=0, at=timezone.now(), pinned=0,
)  # fmt: skip
# A version's metrics and its dataset links (with their dataset versions and datasets), one version's each: the
# representation's and the gates' reads.
version_metrics = Prepared(lambda version: Metric.objects.filter(model_version_id=version), version=0)
version_dataset_links = Prepared(
    lambda version: ModelVersionDataset.objects.filter(model_version_id=version).select_related(
        "dataset_version__dataset"
    ),
    version=0,
)
_version_runs = Prepared(
    lambda version: (
        LineageRun.objects.filter(model_version_id=version).select_related("job", "agent").order_by("created_at", "id")
    ),
    version=0,
)


def _with_representation(version: ModelVersion) -> None:
    """What the version's representation shows besides its row, by three prepared queries."""
    pk = version.pk
    version_children_set(
        version, metrics=version_metrics(version=pk), dataset_links=version_dataset_links(version=pk),
        lineage_runs=_version_runs(version=pk),
    )  # fmt: skip


def versions_with_children(versions: list[ModelVersion]) -> list[ModelVersion]:
    """Give each of ``versions`` (a page of a list) its metrics, dataset links and lineage runs: a query each
    for the whole page, as ``_versions``' prefetches would, at half their CPU. For a list queried without them
    (``model_version_list(..., children=False)``)."""
    ids = [version.pk for version in versions]
    found = {
        "metrics": Metric.objects.filter(model_version_id__in=ids),
        "dataset_links": ModelVersionDataset.objects.filter(model_version_id__in=ids).select_related(
            "dataset_version__dataset"
        ),
        "lineage_runs": LineageRun.objects.filter(model_version_id__in=ids)
        .select_related("job", "agent")
        .order_by("created_at", "id"),
    }
    by_version = {name: {} for name in found}
    for name, rows in found.items():
        for row in rows:
            by_version[name].setdefault(row.model_version_id, []).append(row)
    for version in versions:
        version_children_set(version, **{name: rows.get(version.pk, []) for name, rows in by_version.items()})
    return versions


def version_children_set(version: ModelVersion, *, metrics: list, dataset_links: list, lineage_runs: list) -> None:
    """Give ``version`` its metrics, dataset links and lineage runs -- in the order their models' orderings
    give -- as ``_versions``' prefetches leave them: querysets that are already evaluated (and that filter like
    the related managers), so that ``ModelVersionSerializer`` reads no more."""
    cache = version.__dict__.setdefault("_prefetched_objects_cache", {})
    for name, rows in (("metrics", metrics), ("dataset_links", dataset_links), ("lineage_runs", lineage_runs)):
        for row in rows:
            row.model_version = version
        found = getattr(version, name).all()
        found._result_cache, found._prefetch_done = rows, True
        cache[name] = found


def model_version_get(*, principal: Principal, model, version: int):
    found = model_version_list(principal=principal, model=model).filter(version=version).first()
    if found is None:
        raise NotFound(f"No version {version} of '{model.name}'.")
    found.model = model
    return found
