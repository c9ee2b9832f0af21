"""Reads of promotion, inside a project the caller holds a role in (the views resolve it with
``project_get``): environments, policies, exceptions, promotion requests (and the governance officer's queue
across projects), deployments and their history. Missing or another project's is 404."""

from datetime import datetime

from django.db.models import Q, QuerySet
from django.utils import timezone

from controlplane.exceptions import DomainError, NotFound
from controlplane.prepared import Prepared
from governance.accounts.access import Principal, project_ids_of
from governance.accounts.models import Project
from governance.accounts.selectors import project_get
from governance.promotion.models import (
    Deployment,
    DeploymentHistory,
    Environment,
    Policy,
    PolicyException,
    PromotionRequest,
)
from governance.promotion.services import gates_evaluate_many
from governance.registry.models import RegisteredModel
from governance.registry.selectors import model_get


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


def environment_list(*, project: Project) -> QuerySet[Environment]:
    return Environment.objects.filter(project=project).order_by("name")


def environment_get(*, project: Project, name: str, field: str | None = None, with_policy: bool = False) -> Environment:
    """The project's environment ``name``: 404, or where the name came in a body or a query string
    (``field``), a 400 naming that field. ``with_policy``: with the policy in force loaded in the same query
    (``Environment.policy_in_force``), which gate evaluation then uses instead of reading it again."""
    if with_policy:
        environment = _environment_with_policy.first(project=project.pk, name=name)
    else:  # unique by (project, name): no ORDER BY
        environment = next(iter(Environment.objects.filter(project=project, name=name).order_by()[:1]), None)
    if environment is None:
        if field:
            raise DomainError(f"No environment '{name}' in this project.", details=[{"field": field}])
        raise NotFound("No such environment.")
    return environment


# The dry run's environment, compiled once per connection (controlplane.prepared). Unique by (project, name).
_environment_with_policy = Prepared(
    lambda project, name: Environment.objects.filter(project_id=project, name=name).with_policy_in_force().order_by(),
    project=0, name="",
)  # fmt: skip


def policy_list(*, project: Project) -> QuerySet[Policy]:
    """Every published version, newest first."""
    return Policy.objects.filter(project=project).select_related("published_by").order_by("-version")


def policy_get(*, project: Project, version: str) -> Policy:
    """A version by number, or ``current``: the newest."""
    policies = policy_list(project=project)
    policy = (
        policies.first()
        if version == "current"
        else policies.filter(version=int(version) if version.isdigit() else -1).first()
    )
    if policy is None:
        raise NotFound("No such policy version.")
    return policy


def exception_list(*, project: Project) -> QuerySet[PolicyException]:
    return PolicyException.objects.filter(project=project).select_related(
        "model_version__model", "environment", "requested_by", "granted_by"
    )


def exception_get(*, project: Project, exception_id: int) -> PolicyException:
    exception = PolicyException.objects.filter(project=project, pk=exception_id).first()
    if exception is None:
        raise NotFound("No such exception.")
    return exception


def _requests(queryset: QuerySet[PromotionRequest]) -> QuerySet[PromotionRequest]:
    return queryset.select_related(
        "project", "model_version__model", "environment", "requested_by", "closed_by"
    ).prefetch_related("decisions__reviewer")


def promotion_request_list(*, project: Project, filters: dict | None = None) -> QuerySet[PromotionRequest]:
    """The project's requests, newest first, with their decisions. Filters: state, environment, model."""
    filters = filters or {}
    requests = PromotionRequest.objects.filter(project=project)
    if filters.get("state"):
        requests = requests.filter(state=filters["state"])
    if filters.get("environment"):
        requests = requests.filter(environment__name=filters["environment"])
    if filters.get("model"):
        requests = requests.filter(model_version__model__name=filters["model"])
    return _requests(requests).order_by("-created_at", "-id")


def promotion_request_get(*, project: Project, request_id: int) -> PromotionRequest:
    found = _requests(PromotionRequest.objects.filter(project=project, pk=request_id)).first()
    if found is None:
        raise NotFound("No such promotion request in this project.")
    return found


def _deployments(project: Project) -> QuerySet[Deployment]:
    return Deployment.objects.filter(project=project).select_related("model", "environment", "model_version")


def deployment_list(*, project: Project, filters: dict | None = None) -> QuerySet[Deployment]:
    """What runs where in the project. Filters: environment, model."""
    filters = filters or {}
    deployments = _deployments(project)
    if filters.get("environment"):
        deployments = deployments.filter(environment__name=filters["environment"])
    if filters.get("model"):
        deployments = deployments.filter(model__name=filters["model"])
    return deployments.order_by("model__name", "environment__name")


def deployment_find(*, project: Project, model: RegisteredModel, environment: Environment) -> Deployment | None:
    """The deployment of ``model`` in ``environment``, or None when nothing is deployed there."""
    return _deployments(project).filter(model=model, environment=environment).first()


def deployment_at(*, principal: Principal, project: str, model: str, environment: str) -> Deployment | None:
    """What is deployed at ``projects/{project}/deployments/{model}/{environment}/``, with its project, model,
    environment and version, in one query: the enforcement point's path, asked before every rollout. None when
    nothing is deployed there; a missing project, model or environment raises as its own lookup does."""
    found = _deployment_at.first(project=project, model=model, environment=environment, **principal.scope())
    if found is None:
        in_project = project_get(principal=principal, slug=project)
        where = environment_get(project=in_project, name=environment, field="environment")
        return deployment_find(
            project=in_project, model=model_get(principal=principal, project=in_project, name=model), environment=where
        )
    return found


# The enforcement point's lookups, compiled once per connection (controlplane.prepared); rows are read every time.
# Unique by (model, environment): no ORDER BY.
_deployment_at = Prepared(
    lambda project, model, environment, **scope: Deployment.objects.filter(
        project__in=project_ids_of(**scope), project__slug=project, model__name=model, environment__name=environment
    )
    .select_related("project", "model", "environment", "model_version")
    .order_by(),
    project="", model="", environment="", user=0, at=timezone.now(), pinned=0,
)  # fmt: skip
_deployment_history = Prepared(
    lambda deployment: DeploymentHistory.objects.filter(deployment_id=deployment).select_related(
        "model_version", "executed_by"
    ),
    deployment=0,
)


def deployment_history_of(deployment: Deployment) -> list[DeploymentHistory]:
    """A deployment's history, newest first, with each row's version and executor (and the deployment itself)."""
    rows = _deployment_history(deployment=deployment.pk)
    for row in rows:
        row.deployment = deployment
    return rows


def deployment_get(*, project: Project, deployment_id: int) -> Deployment:
    return _deployments(project).get(pk=deployment_id)


def deployments_at(*, project: Project, at: datetime, environment: str | None = None) -> QuerySet[DeploymentHistory]:
    """What ran where at ``at``, approved by whom, under which policy version: one query."""
    rows = DeploymentHistory.objects.filter(deployment__project=project, from_at__lte=at).filter(
        Q(to_at__isnull=True) | Q(to_at__gt=at)
    )
    if environment:
        rows = rows.filter(deployment__environment__name=environment)
    return rows.select_related("deployment__model", "deployment__environment", "model_version", "executed_by")


def deployment_history_list(*, project: Project, filters: dict | None = None) -> QuerySet[DeploymentHistory]:
    """Every deployment of the project over time, newest first; ``at``: what ran where at that moment.
    Filters: at, environment, model."""
    filters = filters or {}
    if filters.get("at") is not None:
        rows = deployments_at(project=project, at=filters["at"], environment=filters.get("environment"))
    else:
        rows = DeploymentHistory.objects.filter(deployment__project=project).select_related(
            "deployment__model", "deployment__environment", "model_version", "executed_by"
        )
        if filters.get("environment"):
            rows = rows.filter(deployment__environment__name=filters["environment"])
    if filters.get("model"):
        rows = rows.filter(deployment__model__name=filters["model"])
    return rows.order_by("-from_at", "-id")
