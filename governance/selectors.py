"""Selectors: reads, always scoped to the requesting principal (STYLE.md). Out of scope is 404."""

from django.db import connection
from django.db.models import Count, Exists, OuterRef, Prefetch, QuerySet

from controlplane.exceptions import DomainError, Forbidden, NotFound

from .access import Principal, require_role
from .models import (
    ApiKey,
    Dataset,
    DatasetVersion,
    LineageRun,
    Metric,
    ModelVersion,
    ModelVersionDataset,
    Project,
    PromotionRequest,
    RegisteredModel,
    Role,
    RoleBinding,
    User,
)


def project_list(*, principal: Principal) -> QuerySet[Project]:
    if principal.is_staff:
        return Project.objects.all()
    return Project.objects.filter(pk__in=principal.project_ids())


def project_get(*, principal: Principal, slug: str) -> Project:
    project = project_list(principal=principal).filter(slug=slug).first()
    if project is None:
        _refuse_key_pinned_elsewhere(principal, slug)
        raise NotFound(f"No project '{slug}'.")
    return project


def _refuse_key_pinned_elsewhere(principal: Principal, slug: str) -> None:
    """403 naming the pin when the caller's key is pinned to another project and the caller holds a role in
    ``slug``: that project's existence is no secret to them. Anyone else gets the 404 of a project that is
    not there, so nothing leaks."""
    if not principal.pinned_project_id:
        return
    binding = (
        RoleBinding.objects.active().filter(principal=principal.user, project__slug=slug).select_related("project")
    ).first()
    if binding is None:
        return
    pinned = Project.objects.filter(pk=principal.pinned_project_id).values_list("slug", flat=True).first()
    raise Forbidden(
        f"This API key is pinned to project '{pinned}', so it cannot act in '{slug}', where you hold a role. "
        f"Use a key pinned to '{slug}', or one pinned to no project.",
        code="key_pinned",
        details=[{"field": "project", "pinned_to": pinned}],
        project=binding.project,
    )


def member_list(*, principal: Principal, project: Project, filters: dict | None = None) -> QuerySet[RoleBinding]:
    """The project's role bindings: ``active`` ones, or (``state: all``) all of them, the history. Filters:
    state, principal (a username), role."""
    filters = filters or {}
    bindings = RoleBinding.objects.filter(project=project).select_related("principal", "granted_by", "revoked_by")
    if filters.get("state", "active") == "active":
        bindings = bindings.active()
    if filters.get("principal"):
        bindings = bindings.filter(principal__username=filters["principal"])
    if filters.get("role"):
        bindings = bindings.filter(role=filters["role"])
    if not principal.roles(project) and not principal.is_staff:
        return bindings.none()
    return bindings.order_by("-granted_at", "-id")


def member_get(*, principal: Principal, project: Project, binding_id: int) -> RoleBinding:
    binding = member_list(principal=principal, project=project, filters={"state": "all"}).filter(pk=binding_id).first()
    if binding is None:
        raise NotFound("No such role binding in this project.")
    return binding


def service_account_list(*, principal: Principal, project: Project) -> QuerySet[User]:
    require_role(principal, project, [Role.ADMIN, Role.AUDITOR], action="see service accounts", write=False)
    return User.objects.filter(service_project=project).prefetch_related("role_bindings").order_by("username")


def service_account_get(*, principal: Principal, project: Project, account_id: int) -> User:
    account = service_account_list(principal=principal, project=project).filter(pk=account_id).first()
    if account is None:
        raise NotFound("No such service account in this project.")
    return account


def service_account_key_list(*, principal: Principal, account: User) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(owner=account).select_related("project")


def api_key_list(*, principal: Principal) -> QuerySet[ApiKey]:
    """The caller's own keys; a caller on a pinned key sees only the keys pinned to that project."""
    keys = ApiKey.objects.filter(owner=principal.user).select_related("project")
    if principal.pinned_project_id:
        keys = keys.filter(project_id=principal.pinned_project_id)
    return keys


def api_key_get(*, principal: Principal, key_id: int) -> ApiKey:
    key = api_key_list(principal=principal).filter(pk=key_id).first()
    if key is None:
        raise NotFound("No such API key.")
    return key


def user_list(*, principal: Principal) -> QuerySet[User]:
    if not principal.is_staff:
        return User.objects.none()
    return User.objects.filter(service_project__isnull=True).order_by("username")


def user_by_username(username: str, *, field: str = "principal") -> User:
    user = User.objects.filter(username=username).first()
    if user is None:
        raise DomainError(f"No user '{username}'.", details=[{"field": field, "message": "unknown user"}])
    return user


# Registry -------------------------------------------------------------------------------------------------


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


# Provenance: datasets and their versions ------------------------------------------------------------------


def dataset_list(*, principal: Principal, project: Project, filters: dict | None = None) -> QuerySet:
    """The project's datasets, if the caller holds a role there (staff see every project, as in
    ``project_list``). Filters: namespace, name, classification, contains_pii, and ``q`` (a search)."""
    from django.db.models import Q

    filters = filters or {}
    datasets = Dataset.objects.filter(project=project, project__in=project_list(principal=principal))
    for field in ("namespace", "name", "classification", "contains_pii"):
        if filters.get(field) not in (None, ""):
            datasets = datasets.filter(**{field: filters[field]})
    if filters.get("q"):
        q = filters["q"]
        datasets = datasets.filter(Q(name__icontains=q) | Q(namespace__icontains=q) | Q(description__icontains=q))
    return (
        datasets.select_related("owner", "project")
        .annotate(version_count=Count("versions"))
        .order_by("namespace", "name", "id")
    )


def dataset_get(*, principal: Principal, project: Project, dataset_id: int):
    dataset = dataset_list(principal=principal, project=project).filter(pk=dataset_id).first()
    if dataset is None:
        raise NotFound("No such dataset in this project.")
    return dataset


def dataset_version_list(*, principal: Principal, dataset, filters: dict | None = None) -> QuerySet:
    """A dataset's versions, newest first. Filters: version (label), sha256, kind."""
    filters = filters or {}
    versions = DatasetVersion.objects.filter(
        dataset=dataset, dataset__project__in=project_list(principal=principal)
    ).select_related("created_by", "dataset__project")
    if filters.get("version"):
        versions = versions.filter(version=filters["version"])
    if filters.get("sha256"):
        versions = versions.filter(sha256=filters["sha256"].lower())
    if filters.get("kind"):
        versions = versions.filter(kind=filters["kind"])
    return versions.order_by("-created_at", "-id")


def dataset_version_get(*, principal: Principal, dataset, version_id: int):
    version = dataset_version_list(principal=principal, dataset=dataset).filter(pk=version_id).first()
    if version is None:
        raise NotFound("No such version of this dataset.")
    return version


# Promotion: the officer's queue ---------------------------------------------------------------------------


class PromotionRequestQueue(QuerySet):
    """Promotion requests that come with their gates evaluated: whatever rows a fetch loads (a page, one row)
    are evaluated together by ``gates_evaluate_many`` -- the same evaluation as the request's page, made when
    the rows are read, nothing stored -- and each carries it as ``evaluation``. Counting does not evaluate;
    ``values()`` and ``iterator()`` give rows without it."""

    def _fetch_all(self):
        fresh = self._result_cache is None
        super()._fetch_all()
        rows = self._result_cache
        if fresh and rows and isinstance(rows[0], PromotionRequest):
            from .services.workflow import gates_evaluate_many

            subjects = [(row.model_version, row.environment, row) for row in rows]
            for row, evaluation in zip(rows, gates_evaluate_many(subjects), strict=True):
                row.evaluation = evaluation


def promotion_request_queue(*, principal: Principal, filters: dict | None = None) -> PromotionRequestQueue:
    """Promotion requests across every project where the caller holds a role, oldest first, each with its risk
    tier and gates evaluated (see ``PromotionRequestQueue``) so an officer can triage without opening each one.
    The API's ``promotion-requests/`` and the console's queue read it. Filters: ``state``."""
    filters = filters or {}
    requests = PromotionRequestQueue(model=PromotionRequest).filter(project__in=principal.project_ids())
    if filters.get("state"):
        requests = requests.filter(state=filters["state"])
    return (
        requests.select_related(
            "project", "model_version__model__project", "environment",
            "requested_by", "closed_by",
        )
        .prefetch_related("decisions__reviewer")
        .order_by("created_at", "id")
    )  # fmt: skip
