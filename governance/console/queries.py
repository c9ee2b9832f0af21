"""Reads the console needs that no selector offers as one call. Each composes existing selectors and the
services' own checks; none holds a rule of its own (the lead may move these into the concerns' selectors).

The ``*_refusal`` functions answer "would the service refuse this caller, and with which message?" by calling
the very checks the service calls (``require_role``, ``separation_of_duties_check``, the execute rule), so a
disabled button says what the API would say. They never write: a refusal found here is not audited; the
service audits it when the action is really attempted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from controlplane.exceptions import DomainError, NotFound
from governance.accounts.access import Principal, require_role
from governance.accounts.models import Project, Role
from governance.accounts.selectors import project_get, project_list
from governance.promotion import selectors as promotion_selectors
from governance.promotion import services as promotion
from governance.promotion.gates.base import FAILED, PASSED, PENDING, WAIVED
from governance.promotion.models import (
    Decision,
    Deployment,
    DeploymentHistory,
    Environment,
    Policy,
    PolicyException,
    PromotionRequest,
)
from governance.promotion.selectors import promotion_request_queue
from governance.provenance.graph import lineage_upstream
from governance.registry.models import ModelVersion, RiskTier
from governance.registry.selectors import model_get, model_list, model_version_get, model_version_list
from monitoring.selectors import alert_list, check_run_list, monitor_list, monitor_series

UNCONFIRMED = "unconfirmed — counts as high"
WRITING_ROLES = (Role.ML_ENGINEER, Role.GOVERNANCE_OFFICER, Role.ADMIN)


# Who may try what (the services' own checks, run without writing) --------------------------------------------


def _refusal(check) -> str:
    """The message of the DomainError ``check()`` raises, or "" when it raises none."""
    try:
        check()
    except DomainError as refused:
        return refused.message
    return ""


def may_change_anything(principal: Principal, project: Project) -> bool:
    """Whether to show forms at all: an auditor (read-only by role) sees none, only what is."""
    return principal.has_role(project, WRITING_ROLES)


def decision_refusal(principal: Principal, request: PromotionRequest, outcome: str) -> str:
    """Why ``promotion.decision_record`` would refuse this caller's approve or reject, or "" (the same checks,
    in the same order, with the same words)."""
    return _refusal(lambda: promotion.decision_check(actor=principal, request=request, outcome=outcome))


def confirm_tier_refusal(principal: Principal, version: ModelVersion) -> str:
    """Why ``model_card_confirm_risk_tier`` would refuse this caller, or ""."""

    def check():
        require_role(principal, version.model.project, [Role.GOVERNANCE_OFFICER], action="confirm risk tiers")
        promotion.separation_of_duties_check(actor=principal, version=version, doing="confirm its risk tier")

    return _refusal(check)


def execute_refusal(principal: Principal, request: PromotionRequest) -> str:
    """Why ``promotion_execute`` would refuse this caller (who may execute, not whether the gates pass)."""
    return _refusal(lambda: promotion.execution_check(actor=principal, request=request))


def role_refusal(principal: Principal, project: Project, roles, action: str) -> str:
    return _refusal(lambda: require_role(principal, project, roles, action=action))


# Home ---------------------------------------------------------------------------------------------------------


@dataclass
class ProjectSummary:
    project: Project
    roles: list[str]
    open_requests: int
    active_alerts: int
    suspended_deployments: int


def project_summaries(principal: Principal) -> list[ProjectSummary]:
    summaries = []
    for project in project_list(principal=principal).order_by("slug"):
        summaries.append(
            ProjectSummary(
                project=project,
                roles=sorted(principal.roles(project)),
                open_requests=PromotionRequest.objects.filter(project=project, state="open").count(),
                active_alerts=alert_list(principal=principal, project=project, filters={"acknowledged": False}).count(),
                suspended_deployments=Deployment.objects.filter(
                    project=project, state=Deployment.State.SUSPENDED
                ).count(),
            )
        )
    return summaries


def project_for(principal: Principal, slug: str) -> Project:
    """The URL's project, 404 outside the caller's scope -- the API's ``project_get``."""
    return project_get(principal=principal, slug=slug)


# The queue ----------------------------------------------------------------------------------------------------


@dataclass
class QueueRow:
    request: PromotionRequest
    tier_label: str
    tier_note: str
    counts: dict
    failing_kinds: list[str]
    ready: bool


def queue_rows(principal: Principal, *, project: str = "", environment: str = "", tier: str = "") -> list[QueueRow]:
    """The officer's queue (``promotion_request_queue``, open requests, oldest first) with the API's gate
    summary; filtered by project slug, environment name and effective tier (``unconfirmed``: not confirmed)."""
    requests = promotion_request_queue(principal=principal, filters={"state": PromotionRequest.State.OPEN})
    if project:
        requests = requests.filter(project__slug=project)
    if environment:
        requests = requests.filter(environment__name=environment)
    rows = []
    for request in requests:
        evaluation = request.evaluation
        confirmed = evaluation.tier if evaluation.tier_confirmed else ""
        if tier == "unconfirmed" and confirmed:
            continue
        if tier and tier != "unconfirmed" and confirmed != tier:
            continue
        counts = dict.fromkeys((PASSED, FAILED, PENDING, WAIVED), 0)
        for result in evaluation.results:
            counts[result.status] += 1
        rows.append(QueueRow(
            request=request, tier_label=confirmed or UNCONFIRMED, tier_note=evaluation.confirmation_note,
            counts=counts, failing_kinds=list(dict.fromkeys(r.kind for r in evaluation.failing)),
            ready=evaluation.passed,
        ))  # fmt: skip
    return rows


def queue_choices(principal: Principal) -> dict:
    projects = list(project_list(principal=principal).order_by("slug").values_list("slug", flat=True))
    environments = sorted(
        set(Environment.objects.filter(project__in=principal.project_ids()).values_list("name", flat=True))
    )
    return {"projects": projects, "environments": environments, "tiers": [*RiskTier.values, "unconfirmed"]}


# Models -------------------------------------------------------------------------------------------------------


def deployments_of(project: Project, *, model=None):
    return promotion_selectors.deployment_list(project=project, filters={"model": model.name} if model else None)


def models_with_deployments(principal: Principal, project: Project) -> list[dict]:
    where = {}
    for deployment in deployments_of(project):
        where.setdefault(deployment.model_id, []).append(deployment)
    return [{"model": m, "deployments": where.get(m.pk, [])} for m in model_list(principal=principal, project=project)]


def model_detail(principal: Principal, project: Project, name: str) -> dict:
    model = model_get(principal=principal, project=project, name=name)
    where: dict[int, list] = {}
    for deployment in deployments_of(project, model=model):
        where.setdefault(deployment.model_version_id, []).append(deployment)
    versions = [
        {"version": v, "deployments": where.get(v.pk, [])}
        for v in model_version_list(principal=principal, model=model).order_by("-version")
    ]
    return {"model": model, "versions": versions}


# A version ----------------------------------------------------------------------------------------------------


@dataclass
class EnvironmentGates:
    environment: Environment
    evaluation: object
    request: PromotionRequest | None
    approve_refusal: str = ""
    reject_refusal: str = ""
    execute_refusal: str = ""
    deployment: Deployment | None = None  # this version's deployment in the environment, if it runs there


@dataclass
class VersionPage:
    project: Project
    model: object
    version: ModelVersion
    card: object
    revisions: list
    environments: list[EnvironmentGates]
    requests: list[PromotionRequest]
    runs: list
    exceptions: list
    history: list
    upstream: object
    request_refusal: str
    confirm_refusal: str
    excluded: dict = field(default_factory=dict)


def version_page(principal: Principal, project: Project, model_name: str, number: int) -> VersionPage:
    model = model_get(principal=principal, project=project, name=model_name)
    version = model_version_get(principal=principal, model=model, version=number)
    card = getattr(version, "card", None)  # a version without a card has none (RelatedObjectDoesNotExist)
    revisions = list(card.revisions.select_related("author").order_by("-revision")) if card else []
    requests = list(
        PromotionRequest.objects.filter(model_version=version)
        .select_related("project", "environment", "requested_by", "closed_by", "model_version__model__project")
        .prefetch_related("decisions__reviewer")
        .order_by("-created_at", "-id")
    )
    open_by_env = {r.environment_id: r for r in requests if r.state == PromotionRequest.State.OPEN}
    environments = Environment.objects.filter(project=project).order_by("kind", "name")
    subjects = [(version, env, open_by_env.get(env.pk)) for env in environments]
    running = {d.environment_id: d for d in deployments_of(project, model=model).filter(model_version=version)}
    gates = []
    for (_, env, request), evaluation in zip(subjects, promotion.gates_evaluate_many(subjects), strict=True):
        row = EnvironmentGates(environment=env, evaluation=evaluation, request=request, deployment=running.get(env.pk))
        if request is not None:
            row.approve_refusal = decision_refusal(principal, request, Decision.Outcome.APPROVE)
            row.reject_refusal = decision_refusal(principal, request, Decision.Outcome.REJECT)
            row.execute_refusal = execute_refusal(principal, request)
        gates.append(row)
    runs = list(
        check_run_list(principal=principal, project=project, filters={"model": model.name, "version": number})[:50]
    )
    exceptions = list(
        PolicyException.objects.filter(model_version=version)
        .select_related("environment", "requested_by", "granted_by", "revoked_by")
        .order_by("-granted_at")
    )
    history = list(
        DeploymentHistory.objects.filter(model_version=version)
        .select_related("deployment__environment", "deployment__model", "executed_by", "request")
        .order_by("-from_at")
    )
    return VersionPage(
        project=project, model=model, version=version, card=card, revisions=revisions, environments=gates,
        requests=requests, runs=runs, exceptions=exceptions, history=history, upstream=lineage_upstream(version),
        request_refusal=role_refusal(principal, project, [Role.ML_ENGINEER], "request promotions"),
        confirm_refusal=confirm_tier_refusal(principal, version),
        excluded=promotion.separation_of_duties_excluded(version),
    )  # fmt: skip


def drift_series(principal: Principal, project: Project, version: ModelVersion) -> list[dict]:
    """For each data-drift monitor that checked this version: ``monitor_series`` (each column's drift score
    per batch, oldest first) in the shape the console's chart draws."""
    monitors = monitor_list(principal=principal, project=project, filters={"kind": "data_drift"}).filter(
        runs__model_version=version
    )
    charts = []
    for monitor in monitors.distinct():
        series = monitor_series(monitor=monitor, limit=60)
        if not series["batches"]:
            continue
        x = [batch["window_end"].strftime("%Y-%m-%d %H:%M") for batch in series["batches"]]
        charts.append({
            "monitor": monitor.name, "element_id": f"chart-{monitor.pk}",
            "traces": [{"name": column, "x": x, "y": scores} for column, scores in sorted(series["columns"].items())],
        })  # fmt: skip
    return charts


def version_page_version(principal: Principal, project: Project, model_name: str, number: int) -> ModelVersion:
    """The version a form acts on: 404 as for the page."""
    return model_version_get(principal=principal, model=model_get(principal=principal, project=project,
                                                                  name=model_name), version=number)  # fmt: skip


def exception_get(project: Project, pk: int) -> PolicyException:
    return promotion_selectors.exception_get(project=project, exception_id=pk)


def open_request(principal: Principal, project: Project, request_id: int) -> PromotionRequest:
    """A promotion request of the project (404 otherwise), as the API's request views load it."""
    found = (
        PromotionRequest.objects.filter(project=project, project__in=principal.project_ids(), pk=request_id)
        .select_related("project", "model_version__model__project", "environment", "requested_by")
        .first()
    )
    if found is None:
        raise NotFound("No such promotion request in this project.")
    return found


def environment_named(project: Project, name: str) -> Environment:
    return promotion_selectors.environment_get(project=project, name=name, field="environment")


# Policy -------------------------------------------------------------------------------------------------------


def policy_versions(project: Project) -> list[Policy]:
    return list(promotion_selectors.policy_list(project=project))


def project_exceptions(project: Project) -> list[PolicyException]:
    return list(
        PolicyException.objects.filter(project=project)
        .select_related("model_version__model", "environment", "requested_by", "granted_by", "revoked_by")
        .order_by("-granted_at", "-id")
    )
