"""Reads of the registry, scoped to the requesting principal: models and their versions. Out of scope is 404."""

from django.db import connection
from django.db.models import Count, Exists, OuterRef, Prefetch, QuerySet

from controlplane.exceptions import NotFound
from governance.accounts.access import Principal
from governance.accounts.models import Project
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
    model = (
        RegisteredModel.objects.filter(project=project, project__in=principal.project_ids(), name=name)
        .select_related("owner", "project")
        .first()
    )
    if model is None:
        raise NotFound(f"No model '{name}' in this project.")
    return model


def _with_tag(queryset: QuerySet, tag: str) -> QuerySet:
    """Rows whose JSON ``tags`` list holds ``tag``: a containment query on PostgreSQL (indexable); SQLite
    has no JSON containment, and tags are plain tokens, so the quoted token is matched in the text."""
    if connection.vendor == "postgresql":
        return queryset.filter(tags__contains=[tag])
    return queryset.filter(tags__icontains=f'"{tag}"')


def model_version_list(*, principal: Principal, model, filters: dict | None = None) -> QuerySet:
    filters = filters or {}
    versions = ModelVersion.objects.filter(model=model, model__project__in=principal.project_ids())
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
    links = ModelVersionDataset.objects.select_related("dataset_version__dataset")
    runs = LineageRun.objects.select_related("job", "agent").order_by("created_at", "id")
    return versions.select_related("model", "created_by", "card").prefetch_related(
        "metrics", Prefetch("dataset_links", queryset=links), Prefetch("lineage_runs", queryset=runs)
    )


def model_version_get(*, principal: Principal, model, version: int):
    found = model_version_list(principal=principal, model=model).filter(version=version).first()
    if found is None:
        raise NotFound(f"No version {version} of '{model.name}'.")
    found.model = model
    return found
