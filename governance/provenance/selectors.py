"""Reads of provenance, scoped to the requesting principal: datasets and their versions. Out of scope is 404."""

from django.db.models import Count, Q, QuerySet

from controlplane.exceptions import NotFound
from governance.accounts.access import Principal
from governance.accounts.models import Project
from governance.accounts.selectors import project_list
from governance.provenance.models import Dataset, DatasetVersion, LineageRun


def dataset_list(*, principal: Principal, project: Project, filters: dict | None = None) -> QuerySet:
    """The project's datasets, if the caller holds a role there (staff see every project, as in
    ``project_list``). Filters: namespace, name, classification, contains_pii, and ``q`` (a search)."""
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


def lineage_run_get(*, principal: Principal, project: Project, run_id) -> LineageRun:
    """An OpenLineage run of the project by its run id (a UUID), with its job; 404 otherwise."""
    run = LineageRun.objects.filter(project=project, project__in=principal.project_ids(), run_id=run_id)
    found = run.select_related("job").first()
    if found is None:
        raise NotFound(f"No run '{run_id}' in this project.")
    return found
