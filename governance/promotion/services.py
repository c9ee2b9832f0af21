"""The promotion workflow (DESIGN §5): environments, policies, exceptions, gate evaluation, promotion
requests, evidence-bound decisions, execution and deployments.

One function evaluates gates (``gates_evaluate``, or ``gates_evaluate_many`` for several requests at once, as
the officer's queue does); the dry-run endpoint, the request page, the queue, the CLI and the final check at
execution all call it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, Subquery, Value
from django.utils import timezone

from controlplane.exceptions import Conflict, DomainError, Forbidden
from controlplane.prepared import Prepared
from governance.accounts.access import Principal, require_in_project, require_role
from governance.accounts.models import Project, Role, RoleBinding, User
from governance.audit.chain import canonical, digest
from governance.audit.services import audit_record
from governance.promotion import policy as policies
from governance.promotion.gates import GATE_KINDS, WAIVED, GateResult
from governance.promotion.models import (
    DEFAULT_ENVIRONMENTS,
    Decision,
    Deployment,
    DeploymentHistory,
    Environment,
    EnvironmentKind,
    Policy,
    PolicyException,
    PromotionRequest,
    WaivableGate,
)
from governance.provenance.graph import lineage_agents_many
from governance.provenance.models import DatasetVersion, ModelVersionDataset
from governance.registry.models import Metric, ModelCard, ModelCardRevision, ModelVersion, RiskTier, effective_risk_tier
from governance.registry.selectors import version_dataset_links, version_metrics
from governance.registry.services import blank_card, card_content_hash

log = logging.getLogger(__name__)

EMERGENCY_REPLACED = ("metric", "check", "provenance", "model_card")


# Environments and policy --------------------------------------------------------------------------------


def project_bootstrap(*, actor: Principal, project: Project) -> None:
    """Every new project gets ``staging``, ``production`` and the default policy as version 1."""
    for name, kind in DEFAULT_ENVIRONMENTS:
        Environment.objects.create(project=project, name=name, kind=kind)
    _policy_insert(actor=actor, project=project, document=policies.DEFAULT_POLICY, source="", comment="default")


@transaction.atomic
def environment_create(
    *, actor: Principal, project: Project, name: str, kind: str, description: str = ""
) -> Environment:
    require_role(actor, project, [Role.ADMIN], action="add environments")
    if kind not in EnvironmentKind.values:
        raise DomainError(f"kind must be one of {', '.join(EnvironmentKind.values)}.", details=[{"field": "kind"}])
    try:
        with transaction.atomic():
            environment = Environment.objects.create(project=project, name=name, kind=kind, description=description)
    except IntegrityError:
        raise Conflict(f"The environment '{name}' exists.", details=[{"field": "name"}]) from None
    audit_record(action="environment.created", actor=actor, project=project, target=environment,
                 diff={"name": name, "kind": kind})  # fmt: skip
    return environment


@transaction.atomic
def environment_delete(*, actor: Principal, environment: Environment) -> None:
    project = environment.project
    require_role(actor, project, [Role.ADMIN], action="delete environments")
    if environment.is_default:
        raise Conflict(f"'{environment.name}' is a default environment; it cannot be deleted.")
    if environment.deployments.exists() or environment.promotion_requests.exists():
        raise Conflict("This environment has deployments or promotion requests; it stays for the record.")
    audit_record(action="environment.deleted", actor=actor, project=project, target=environment,
                 diff={"name": environment.name, "kind": environment.kind})  # fmt: skip
    environment.delete()


def policy_current(project: Project) -> Policy:
    return Policy.objects.filter(project=project).order_by("-version").first()


def _policy_insert(*, actor, project, document, source, comment) -> Policy:
    last = Policy.objects.select_for_update().filter(project=project).order_by("-version").first()
    policy = Policy.objects.create(
        project=project,
        version=(last.version + 1) if last else 1,
        document=document,
        source=source,
        document_hash=digest(canonical(document)),
        comment=comment,
        published_by=actor.user,
    )
    audit_record(
        action="policy.published",
        actor=actor,
        project=project,
        target=policy,
        diff={"version": policy.version, "document_hash": policy.document_hash, "comment": comment},
    )
    return policy


@transaction.atomic
def policy_publish(*, actor: Principal, project: Project, source: str | dict, comment: str = "") -> Policy:
    """Only governance officers publish; a published version is immutable and supersedes the previous one."""
    require_role(actor, project, [Role.GOVERNANCE_OFFICER], action="publish policies")
    document = policies.validate(policies.parse(source))
    text = source if isinstance(source, str) else canonical(source)
    policy = _policy_insert(actor=actor, project=project, document=document, source=text, comment=comment)
    for version in ModelVersion.objects.filter(promotion_requests__state="open", model__project=project).distinct():
        decisions_revalidate(version=version, actor=actor)
    return policy


# Exceptions ---------------------------------------------------------------------------------------------


@transaction.atomic
def exception_grant(
    *,
    actor: Principal,
    version: ModelVersion,
    environment: Environment,
    gate: str,
    name: str,
    justification: str,
    requested_by,
    expires_at: datetime,
    target: str = "",
) -> PolicyException:
    project = version.model.project
    require_role(actor, project, [Role.GOVERNANCE_OFFICER], action="grant policy exceptions")
    require_in_project(project, environment=environment, requested_by=requested_by)
    if gate not in WaivableGate.values:
        raise DomainError(
            f"Only {', '.join(WaivableGate.values)} gates can be waived; approvals, separation of duties and the "
            "risk tier are the floor.",
            details=[{"field": "gate"}],
        )
    if requested_by.pk == actor.user.pk:
        raise Forbidden("An exception is granted by a governance officer who is not its requester.",
                        code="self_grant", project=project)  # fmt: skip
    now = timezone.now()
    limit = now + timedelta(days=settings.TOLLGATE_EXCEPTION_MAX_DAYS)
    if not now < expires_at <= limit:
        raise DomainError(
            f"expires_at must be in the future and within {settings.TOLLGATE_EXCEPTION_MAX_DAYS} days.",
            details=[{"field": "expires_at"}],
        )
    if not justification.strip():
        raise DomainError("A justification is required.", details=[{"field": "justification"}])
    exception = PolicyException.objects.create(
        project=project, model_version=version, environment=environment, gate=gate, target=target, name=name,
        justification=justification, requested_by=requested_by, granted_by=actor.user, expires_at=expires_at,
    )  # fmt: skip
    audit_record(
        action="exception.granted", actor=actor, project=project, target=exception,
        diff={"model_version": version.pk, "environment": environment.name, "gate": gate, "target": target,
              "name": name, "justification": justification, "requested_by": requested_by.username,
              "expires_at": expires_at},
    )  # fmt: skip
    return exception


@transaction.atomic
def exception_revoke(*, actor: Principal, exception: PolicyException) -> PolicyException:
    require_role(actor, exception.project, [Role.GOVERNANCE_OFFICER], action="revoke policy exceptions")
    exception = PolicyException.objects.select_for_update().get(pk=exception.pk)
    if exception.revoked_at:
        raise Conflict("This exception is already revoked.")
    exception.revoked_at, exception.revoked_by = timezone.now(), actor.user
    exception.save(update_fields=["revoked_at", "revoked_by"])
    audit_record(action="exception.revoked", actor=actor, project=exception.project, target=exception,
                 diff={"name": exception.name})  # fmt: skip
    return exception


# Evidence and gate evaluation ---------------------------------------------------------------------------


def evidence_of(version: ModelVersion, *, policy: Policy, card: ModelCard | None, links, metrics) -> dict:
    """What a decision is bound to (DESIGN §5). Any change to it voids the decisions made before."""
    return {
        "artifact_sha256": version.artifact_sha256,
        "datasets": sorted([link.dataset_version_id, link.dataset_version.sha256 or "", link.role] for link in links),
        "card_hash": card.content_hash if card else "",
        "confirmed_risk_tier": card.confirmed_risk_tier if card else "",
        "policy_version": policy.version,
        "metrics": sorted([m.name, m.dataset_version_id or 0, m.subgroup, m.value] for m in metrics),
    }


def _changed(before: dict, after: dict) -> list[str]:
    return sorted(key for key in set(before) | set(after) if before.get(key) != after.get(key))


# What each row of ``separation_of_duties_excluded_many``'s one statement says about its user.
_EDITED, _REQUESTED, _NAMED = 1, 2, 3


def separation_of_duties_excluded(version: ModelVersion) -> dict[int, dict]:
    """Who may not approve this version or confirm its risk tier, and why (DESIGN §5)."""
    return separation_of_duties_excluded_many([version])[version.pk]


def separation_of_duties_excluded_many(
    versions: list[ModelVersion], *, links: list[ModelVersionDataset] | None = None
) -> dict[int, dict[int, dict]]:
    """``separation_of_duties_excluded`` of several versions, by version id, in as many queries as for one: the
    lineage walk, then ``_authors_and_requesters``. ``links``: the versions' dataset links (any role, with their
    dataset versions), where the caller loaded them."""
    agents = lineage_agents_many(versions, links=links)
    names = {v.created_by_id: v.created_by.username for v in versions if ModelVersion.created_by.is_cached(v)}
    people = {version.created_by_id for version in versions} | {a for found in agents.values() for a in found}
    edited, requested = _authors_and_requesters(versions, names=names, unnamed=people - set(names))
    reasons: dict[int, dict[int, list[str]]] = {version.pk: {} for version in versions}
    for version in versions:
        reasons[version.pk].setdefault(version.created_by_id, []).append("registered the version")
    for version_id, author in sorted(edited):
        reasons[version_id].setdefault(author, []).append("edited the model card")
    for version_id, found in agents.items():
        for agent in found:
            reasons[version_id].setdefault(agent, []).append("appears as an agent in the version's lineage")
    for version_id, requester in sorted(requested):
        reasons[version_id].setdefault(requester, []).append("requested its promotion")
    return {
        version_id: {pk: {"principal": names.get(pk, str(pk)), "reasons": r} for pk, r in why.items()}
        for version_id, why in reasons.items()
    }


def _authors_and_requesters(
    versions: list[ModelVersion], *, names: dict[int, str], unnamed: set
) -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    """Who edited each version's card and who requested its promotion (any request, even a closed one), as
    (version id, user id) pairs; ``names`` gains their usernames and those of ``unnamed``. One version (the dry
    run, a request's page, a decision, an execution): one prepared statement, plus the names of lineage agents
    not among them; several (the queue): one statement in all."""
    edited, requested = set(), set()
    if len(versions) == 1:
        version_id = versions[0].pk
        for user in _people_of_version(version=version_id):
            names[user.pk] = user.username
            if user.edited:
                edited.add((version_id, user.pk))
            if user.requested:
                requested.add((version_id, user.pk))
        if unnamed - set(names):
            names.update(User.objects.filter(pk__in=unnamed - set(names)).values_list("pk", "username"))
        return edited, requested
    version_ids = [version.pk for version in versions]
    requests = PromotionRequest.objects.filter(model_version__in=version_ids)
    parts = [requests.values_list("model_version_id", "requested_by_id", "requested_by__username", Value(_REQUESTED))]
    if unnamed:
        parts.append(User.objects.filter(pk__in=unnamed).values_list(Value(0), "pk", "username", Value(_NAMED)))
    tagged = (
        ModelCardRevision.objects.filter(card__model_version__in=version_ids)
        .values_list("card__model_version_id", "author_id", "author__username", Value(_EDITED))
        .order_by()
        .union(*[part.order_by() for part in parts], all=True)
    )
    for version_id, user_id, username, tag in tagged:
        names[user_id] = username
        if tag != _NAMED:
            (edited if tag == _EDITED else requested).add((version_id, user_id))
    return edited, requested


# The card's authors and the requesters of one version, with their names, compiled once per connection.
_people_of_version = Prepared(
    lambda version: (
        User.objects.filter(
            Q(pk__in=ModelCardRevision.objects.filter(card__model_version_id=version).values("author_id"))
            | Q(pk__in=PromotionRequest.objects.filter(model_version_id=version).values("requested_by_id"))
        )
        .annotate(
            edited=Exists(ModelCardRevision.objects.filter(card__model_version_id=version, author=OuterRef("pk"))),
            requested=Exists(PromotionRequest.objects.filter(model_version_id=version, requested_by=OuterRef("pk"))),
        )
        .only("username")
        .order_by()
    ),
    version=0,
)


def separation_of_duties_check(*, actor: Principal, version: ModelVersion, doing: str) -> None:
    """Refuse (403, audited) a service account, or anyone ``separation_of_duties_excluded`` names, who would
    ``doing`` (an approval, a rejection, a risk tier's confirmation) on this version."""
    project = version.model.project
    if actor.user.is_service_account:
        raise Forbidden(f"Service accounts never {doing}.", code="separation_of_duties", project=project)
    excluded = separation_of_duties_excluded(version)
    if actor.user.pk in excluded:
        why = " and ".join(excluded[actor.user.pk]["reasons"])
        raise Forbidden(f"Separation of duties: you {why}, so you may not {doing}.",
                        code="separation_of_duties", project=project)  # fmt: skip


def _tier_confirmation(card: ModelCard | None, excluded: dict[int, dict]) -> tuple[bool, str]:
    """Whether the card's confirmed tier counts, and if not, why: a later edit voided it, or separation of
    duties now excludes the officer who confirmed it (they requested its promotion since, say)."""
    if card is None:
        return False, ""
    if not card.confirmed_risk_tier:
        voided = card.confirmation_void_reason
        return False, f"the confirmation was voided: {voided}" if voided else ""
    confirmer = excluded.get(card.confirmed_by_id)
    if confirmer is not None:
        why = " and ".join(confirmer["reasons"])
        return False, f"{confirmer['principal']}'s confirmation does not count: they {why}"
    return True, ""


@dataclass
class GateContext:
    version: ModelVersion
    environment: Environment
    policy: Policy
    card: ModelCard | None
    tier: str
    tier_confirmed: bool
    confirmation_note: str
    request: PromotionRequest | None
    emergency: bool
    links: list
    metrics: list
    decisions: list[Decision]
    excluded_reasons: dict[int, dict]
    officer_roles: dict[int, set]
    # The active exceptions of (version, environment): read after the gates ran, and only where one that an
    # exception can waive failed (empty otherwise; no gate reads them).
    exceptions: list[PolicyException] = field(default_factory=list)
    now: datetime = field(default_factory=timezone.now)
    prefetched: dict[str, Any] = field(default_factory=dict)  # by gate kind: what its ``prefetch`` loaded

    @property
    def excluded(self) -> set[int]:
        return set(self.excluded_reasons)


@dataclass
class Evaluation:
    version: ModelVersion
    environment: Environment
    policy_version: int
    tier: str
    emergency: bool
    results: list[GateResult]
    evidence: dict
    evidence_digest: str
    tier_confirmed: bool = False
    confirmation_note: str = ""
    evaluated_at: datetime | None = None

    @property
    def passed(self) -> bool:
        return all(result.ok for result in self.results)

    @property
    def failing(self) -> list[GateResult]:
        return [result for result in self.results if not result.ok]

    def as_dict(self) -> dict:
        return {
            "model": self.version.model.name,
            "version": self.version.version,
            "environment": self.environment.name,
            "environment_kind": self.environment.kind,
            "policy_version": self.policy_version,
            "risk_tier": self.tier,
            "emergency": self.emergency,
            "passed": self.passed,
            "gates": [result.as_dict() for result in self.results],
            "evidence_digest": self.evidence_digest,
        }


def _policies_current(project_ids: set[int]) -> dict[int, Policy]:
    """``policy_current`` of several projects, by project id: one query."""
    latest = Policy.objects.filter(project=OuterRef("project")).order_by("-version").values("pk")[:1]
    return {p.project_id: p for p in Policy.objects.filter(project_id__in=project_ids, pk=Subquery(latest))}


def _by(rows, key) -> dict:
    grouped: dict = {}
    for row in rows:
        grouped.setdefault(key(row), []).append(row)
    return grouped


def _loaded_cards(versions: list[ModelVersion]) -> dict[int, ModelCard | None]:
    """The cards that came with the versions (``select_related("card")``), by version id: None for a version
    loaded without one."""
    cached = ModelVersion.card.related
    return {version.pk: cached.get_cached_value(version) for version in versions if cached.is_cached(version)}


def _loaded_rows(versions: list[ModelVersion], name: str) -> dict[int, list] | None:
    """The rows of ``name`` prefetched with every one of the versions, by version id; None unless all have them."""
    found = {}
    for version in versions:
        rows = getattr(version, "_prefetched_objects_cache", {}).get(name)
        if rows is None:
            return None
        found[version.pk] = list(rows)
    return found


def _loaded_links(versions: list[ModelVersion]) -> dict[int, list] | None:
    """``_loaded_rows`` of the dataset links, where each came with its dataset version and dataset."""
    found = _loaded_rows(versions, "dataset_links")
    if found is None:
        return None
    for link in (link for links in found.values() for link in links):
        loaded = ModelVersionDataset.dataset_version.is_cached(link)
        if not (loaded and DatasetVersion.dataset.is_cached(link.dataset_version)):
            return None
    return found


# A version's dataset links (with their dataset versions and datasets) and metrics, as the gates read them.
def _links_of(version: int | None = None, versions: list[int] | None = None):
    found = ModelVersionDataset.objects.select_related("dataset_version__dataset")
    return found.filter(model_version_id=version) if versions is None else found.filter(model_version__in=versions)


def _metrics_of(version: int | None = None, versions: list[int] | None = None):
    found = Metric.objects.all()
    return found.filter(model_version_id=version) if versions is None else found.filter(model_version__in=versions)


# For one version -- the dry run, a request's page, a decision, an execution -- the registry's prepared reads
# (the same querysets as ``build(version=...)``).
_PREPARED = {_links_of: version_dataset_links, _metrics_of: version_metrics}


def _of_versions(build, version_ids: list[int]) -> list:
    """``build``'s rows of these versions: of one, by its prepared query; of several (the queue), by one query."""
    if len(version_ids) == 1:
        return _PREPARED[build](version=version_ids[0])
    return list(build(versions=version_ids))


GateSubject = tuple[ModelVersion, Environment, "PromotionRequest | None"]


def _contexts(subjects: list[GateSubject]) -> list[GateContext]:
    """The context of each (version, environment, request), all loaded together: the queries do not grow with
    the number of subjects. Versions come with ``model`` loaded. What the caller loaded with them is used, not
    read again: the policy in force with the environment (``with_policy_in_force``), the card, metrics and
    dataset links with the version. Exceptions are read later, only where a gate that they waive fails
    (``_waive``)."""
    now = timezone.now()
    versions = list({version.pk: version for version, _, _ in subjects}.values())
    version_ids = [version.pk for version in versions]
    project_ids = {version.model.project_id for version in versions}
    policies = {
        environment.project_id: policy
        for _, environment, _ in subjects
        if (policy := environment.policy_in_force) is not None
    }
    if project_ids - set(policies):
        policies.update(_policies_current(project_ids - set(policies)))
    cards = _loaded_cards(versions)
    if len(cards) < len(versions):
        cards.update(
            (card.model_version_id, card)
            for card in ModelCard.objects.filter(model_version__in=[pk for pk in version_ids if pk not in cards])
        )
    links = _loaded_links(versions)
    if links is None:
        links = _by(_of_versions(_links_of, version_ids), lambda link: link.model_version_id)
    metrics = _loaded_rows(versions, "metrics")
    if metrics is None:
        metrics = _by(_of_versions(_metrics_of, version_ids), lambda metric: metric.model_version_id)
    requests = [request.pk for _, _, request in subjects if request is not None]
    decisions = _by(
        Decision.objects.filter(request__in=requests, voided_at__isnull=True).select_related("reviewer"),
        lambda decision: decision.request_id,
    ) if requests else {}  # fmt: skip
    reviewers = {decision.reviewer_id for found in decisions.values() for decision in found}
    officer_roles: dict[tuple[int, int], set] = {}
    for project_id, user_id, role in (
        RoleBinding.objects.active()
        .filter(project__in=project_ids, principal__in=reviewers, principal__service_project__isnull=True)
        .values_list("project_id", "principal_id", "role")
        if reviewers
        else ()
    ):
        officer_roles.setdefault((project_id, user_id), set()).add(role)
    excluded = separation_of_duties_excluded_many(
        versions, links=[link for version_links in links.values() for link in version_links]
    )
    contexts = []
    for version, environment, request in subjects:
        project_id = version.model.project_id
        policy, card = policies[project_id], cards.get(version.pk)
        version_links, version_metrics = links.get(version.pk, []), metrics.get(version.pk, [])
        valid = []
        if request is not None:
            evidence = evidence_of(version, policy=policy, card=card, links=version_links, metrics=version_metrics)
            current = digest(canonical(evidence))
            valid = [d for d in decisions.get(request.pk, []) if d.evidence_digest == current]
        reviewer_roles = {d.reviewer_id: officer_roles.get((project_id, d.reviewer_id), set()) for d in valid}
        confirmed, note = _tier_confirmation(card, excluded[version.pk])
        contexts.append(GateContext(
            version=version, environment=environment, policy=policy, card=card,
            tier=effective_risk_tier(card.confirmed_risk_tier if confirmed else ""), tier_confirmed=confirmed,
            confirmation_note=note,
            request=request, emergency=bool(request and request.emergency), links=version_links,
            metrics=version_metrics, decisions=valid, excluded_reasons=excluded[version.pk],
            officer_roles={user: roles for user, roles in reviewer_roles.items() if roles}, now=now,
        ))  # fmt: skip
    return contexts


def gates_evaluate(
    *, version: ModelVersion, environment: Environment, request: PromotionRequest | None = None
) -> Evaluation:
    """Evaluate every gate the policy in force (with its floor) sets for this version and environment."""
    return gates_evaluate_many([(version, environment, request)])[0]


def gates_evaluate_many(subjects: list[GateSubject]) -> list[Evaluation]:
    """``gates_evaluate`` of each (version, environment, request), in order, evaluated together: each gate kind
    loads what it reads for all of them at once (``Gate.prefetch``), so the officer's queue costs as many queries
    for fifty requests as for one."""
    for version, environment, request in subjects:
        require_in_project(version.model.project, environment=environment, request=request)
    contexts = _contexts(subjects)
    plans = []
    for ctx in contexts:
        specs = policies.gate_specs(ctx.policy.document, environment_kind=ctx.environment.kind, tier=ctx.tier)
        plans.append([GATE_KINDS[spec["kind"]](spec) for spec in specs])
    for gate_class in {type(gate) for plan in plans for gate in plan}:
        gate_class.prefetch(contexts)
    outcomes = [_outcomes(ctx, plan) for ctx, plan in zip(contexts, plans, strict=True)]
    _waive(contexts, plans, outcomes)
    return [_evaluation(ctx, results) for ctx, results in zip(contexts, outcomes, strict=True)]


def _outcomes(ctx: GateContext, gates: list) -> list[GateResult]:
    """Each gate's result before exceptions: an emergency request's replaced gates are waived."""
    results = []
    for gate in gates:
        if ctx.emergency and gate.kind in EMERGENCY_REPLACED:
            results.append(GateResult(gate.kind, WAIVED, "replaced by two governance officers' approvals "
                                      "(emergency request)", {"emergency": True}, gate.spec))  # fmt: skip
        else:
            results.append(gate.evaluate(ctx))
    return results


def _waivable(gate, result: GateResult) -> bool:
    return not result.ok and not gate.floor


def _waive(contexts: list[GateContext], plans: list[list], outcomes: list[list[GateResult]]) -> None:
    """Apply the active exceptions to the gates that fail and that they can waive (never a floor gate). They are
    read, in one query, only for the contexts that have such a gate: a version that passes needs none."""
    failing = [
        index
        for index, (plan, results) in enumerate(zip(plans, outcomes, strict=True))
        if any(_waivable(gate, result) for gate, result in zip(plan, results, strict=True))
    ]
    if not failing:
        return
    exceptions = _by(
        PolicyException.objects.filter(
            model_version__in={contexts[index].version.pk for index in failing}, revoked_at__isnull=True,
            expires_at__gt=contexts[0].now,
        ).select_related("granted_by"),
        lambda exception: (exception.model_version_id, exception.environment_id),
    )  # fmt: skip
    for index in failing:
        ctx, results = contexts[index], outcomes[index]
        ctx.exceptions = exceptions.get((ctx.version.pk, ctx.environment.pk), [])
        for position, (gate, result) in enumerate(zip(plans[index], results, strict=True)):
            if not _waivable(gate, result):
                continue
            waiver = next((e for e in ctx.exceptions if e.gate == gate.kind and e.target in ("", gate.target)), None)
            if waiver is not None:
                results[position] = GateResult(
                    gate.kind, WAIVED,
                    f"waived by the exception '{waiver.name}' granted by {waiver.granted_by.username} until "
                    f"{waiver.expires_at:%Y-%m-%d %H:%M} UTC (was: {result.reason})",
                    {**result.evidence, "exception": waiver.pk}, gate.spec,
                )  # fmt: skip


def _evaluation(ctx: GateContext, results: list[GateResult]) -> Evaluation:
    evidence = evidence_of(ctx.version, policy=ctx.policy, card=ctx.card, links=ctx.links, metrics=ctx.metrics)
    return Evaluation(
        version=ctx.version, environment=ctx.environment, policy_version=ctx.policy.version, tier=ctx.tier,
        emergency=ctx.emergency, results=results, evidence=evidence, evidence_digest=digest(canonical(evidence)),
        tier_confirmed=ctx.tier_confirmed, confirmation_note=ctx.confirmation_note, evaluated_at=ctx.now,
    )  # fmt: skip


def decisions_revalidate(*, version: ModelVersion, actor: Principal | None = None) -> list[Decision]:
    """Void every valid decision on an open request of ``version`` whose evidence changed; says why."""
    project = version.model.project
    policy = policy_current(project)
    card = ModelCard.objects.filter(model_version=version).first()
    links = list(version.dataset_links.select_related("dataset_version"))
    evidence = evidence_of(version, policy=policy, card=card, links=links, metrics=list(version.metrics.all()))
    current = digest(canonical(evidence))
    stale = Decision.objects.filter(
        request__model_version=version, request__state=PromotionRequest.State.OPEN, voided_at__isnull=True
    ).exclude(evidence_digest=current)
    voided = []
    for decision in stale.select_related("request", "reviewer"):
        changed = _changed(decision.evidence, evidence)
        decision_void(decision=decision, reason=f"the evidence changed: {', '.join(changed)}", actor=actor)
        voided.append(decision)
    return voided


def decision_void(*, decision: Decision, reason: str, actor: Principal | None = None) -> None:
    """Void one decision (the evidence changed, or a failing check run of the version finished after it)."""
    with transaction.atomic():
        updated = Decision.objects.filter(pk=decision.pk, voided_at__isnull=True).update(
            voided_at=timezone.now(), void_reason=reason
        )
        if updated:
            audit_record(
                action="promotion.voided", actor=actor or Principal.system(), project=decision.request.project,
                target=decision.request,
                diff={"decision": decision.pk, "reviewer": decision.reviewer.username, "outcome": decision.outcome,
                      "reason": reason},
            )  # fmt: skip


# Promotion requests ----------------------------------------------------------------------------------------


@transaction.atomic
def promotion_request_create(
    *, actor: Principal, version: ModelVersion, environment: Environment, comment: str = "", emergency: bool = False
) -> PromotionRequest:
    project = version.model.project
    require_role(actor, project, [Role.ML_ENGINEER], action="request promotions")
    require_in_project(project, environment=environment)
    if version.status == ModelVersion.Status.ARCHIVED:
        raise Conflict("This version is archived; it cannot be promoted.")
    if emergency:
        in_history = DeploymentHistory.objects.filter(
            deployment__model=version.model, deployment__environment=environment, model_version=version
        ).exists()
        if not in_history:
            raise DomainError(
                "An emergency request is only for a version that already ran in this deployment (a rollback).",
                code="not_in_history", details=[{"field": "emergency"}],
            )  # fmt: skip
    try:
        with transaction.atomic():
            request = PromotionRequest.objects.create(
                project=project, model_version=version, environment=environment, requested_by=actor.user,
                comment=comment, emergency=emergency,
            )  # fmt: skip
    except IntegrityError:
        raise Conflict(f"An open request exists for {version} in {environment.name}.", code="request_exists") from None
    audit_record(
        action="promotion.requested", actor=actor, project=project, target=request,
        diff={"model": version.model.name, "version": version.version, "environment": environment.name,
              "comment": comment, "emergency": emergency},
    )  # fmt: skip
    if emergency:
        audit_record(action="promotion.emergency_requested", actor=actor, project=project, target=request,
                     diff={"model": version.model.name, "version": version.version, "environment": environment.name,
                           "comment": comment})  # fmt: skip
    return request


def _locked_open_request(request: PromotionRequest) -> PromotionRequest:
    request = (
        PromotionRequest.objects.select_for_update()
        .select_related("project", "environment", "model_version__model__project", "requested_by")
        .get(pk=request.pk)
    )
    if request.state != PromotionRequest.State.OPEN:
        raise Conflict(f"This request is {request.state}.", code="request_closed")
    return request


def decision_check(*, actor: Principal, request: PromotionRequest, outcome: str) -> None:
    """Refuse, as ``decision_record`` does, a caller who may not approve or reject ``request`` now: not a
    governance officer, the request closed, excluded by separation of duties, or already decided. The console
    asks it to say why a button is disabled."""
    verb = "approve" if outcome == Decision.Outcome.APPROVE else "reject"
    require_role(actor, request.project, [Role.GOVERNANCE_OFFICER], action=f"{verb} promotions")
    if request.state != PromotionRequest.State.OPEN:
        raise Conflict(f"This request is {request.state}.", code="request_closed")
    separation_of_duties_check(actor=actor, version=request.model_version, doing=f"{verb} it")
    if request.decisions.filter(reviewer=actor.user, voided_at__isnull=True).exists():
        raise Conflict("You already decided on this request.", code="already_decided")


@transaction.atomic
def decision_record(*, actor: Principal, request: PromotionRequest, outcome: str, comment: str = "") -> Decision:
    """An officer approves or rejects, bound to the evidence they saw. A valid reject is final."""
    project = request.project
    verb = "approve" if outcome == Decision.Outcome.APPROVE else "reject"
    require_role(actor, project, [Role.GOVERNANCE_OFFICER], action=f"{verb} promotions")
    request = _locked_open_request(request)
    version = request.model_version
    decision_check(actor=actor, request=request, outcome=outcome)
    evaluation = gates_evaluate(version=version, environment=request.environment, request=request)
    decision = Decision.objects.create(
        request=request, reviewer=actor.user, outcome=outcome, comment=comment,
        evidence_digest=evaluation.evidence_digest, evidence=evaluation.evidence,
        check_runs=[r.evidence.get("check_run") for r in evaluation.results if r.evidence.get("check_run")],
    )  # fmt: skip
    audit_record(
        action=f"promotion.{'approved' if verb == 'approve' else 'rejected'}", actor=actor, project=project,
        target=request, diff={"decision": decision.pk, "comment": comment, "evidence_digest": decision.evidence_digest},
    )  # fmt: skip
    if outcome == Decision.Outcome.REJECT:
        request.state, request.closed_at, request.closed_by = (
            PromotionRequest.State.REJECTED,
            timezone.now(),
            actor.user,
        )
        request.save(update_fields=["state", "closed_at", "closed_by"])
    return decision


@transaction.atomic
def promotion_request_withdraw(*, actor: Principal, request: PromotionRequest) -> PromotionRequest:
    if request.requested_by_id != actor.user.pk:
        raise Forbidden("Only the requester withdraws a request.", project=request.project)
    require_role(actor, request.project, [Role.ML_ENGINEER], action="withdraw promotion requests")
    request = _locked_open_request(request)
    request.state, request.closed_at, request.closed_by = PromotionRequest.State.WITHDRAWN, timezone.now(), actor.user
    request.save(update_fields=["state", "closed_at", "closed_by"])
    audit_record(action="promotion.withdrawn", actor=actor, project=request.project, target=request,
                 diff={"state": "withdrawn"})  # fmt: skip
    return request


class _Blocked(Exception):
    def __init__(self, evaluation: Evaluation):
        self.evaluation = evaluation


def execution_check(*, actor: Principal, request: PromotionRequest) -> None:
    """The requester executes their own request (while an ML engineer or governance officer of the project);
    any governance officer of the project executes anyone's. 403 (audited) otherwise, naming that rule."""
    project = request.project
    if actor.read_only:
        raise Forbidden("This API key is read-only; it may not execute promotions.", code="read_only_key",
                        project=project)  # fmt: skip
    if actor.has_role(project, [Role.GOVERNANCE_OFFICER]):
        return
    if request.requested_by_id == actor.user.pk and actor.has_role(project, [Role.ML_ENGINEER]):
        return
    raise Forbidden(
        f"Only its requester ({request.requested_by.username}, while an ml_engineer or governance_officer of "
        "the project) or a project's governance_officer may execute this promotion.",
        code="permission_denied", project=project,
    )  # fmt: skip


def promotion_execute(*, actor: Principal, request: PromotionRequest) -> Deployment:
    """Run the version in the environment if every gate passes now; else 409 listing every failing gate.

    Concurrent executions for one deployment end with one winner and 409s for the others."""
    project = request.project
    execution_check(actor=actor, request=request)
    # What the caller's execution starts from: if another execution changes the deployment before this one
    # holds the lock, this one answers 409 instead of silently replacing what the other just deployed.
    seen = (
        Deployment.objects.filter(model=request.model_version.model, environment=request.environment)
        .values_list("model_version_id", "updated_at")
        .first()
    )
    decisions_revalidate(version=request.model_version, actor=actor)
    try:
        return _execute(actor=actor, request=request, seen=seen)
    except _Blocked as blocked:
        evaluation = blocked.evaluation
        with transaction.atomic():
            audit_record(action="gate.evaluated", actor=actor, project=project, target=request,
                         diff={**evaluation.as_dict(), "executed": False})  # fmt: skip
        raise Conflict(
            f"Blocked: {len(evaluation.failing)} gate(s) do not pass.",
            code="gate_failed",
            details=[
                {"gate": r.kind, "status": r.status, "reason": r.reason, "spec": r.spec} for r in evaluation.failing
            ],
        ) from None
    except (DatabaseError, IntegrityError) as exc:
        if not _is_lock_conflict(exc):
            raise
        raise Conflict(
            "Another promotion of this deployment is executing right now; check the deployment and retry.",
            code="concurrent_execution",
        ) from None


def _is_lock_conflict(exc: Exception) -> bool:
    if isinstance(exc, IntegrityError):
        return True
    cause = getattr(exc, "__cause__", None)
    return type(cause).__name__ in {"LockNotAvailable", "SerializationFailure", "DeadlockDetected"}


@transaction.atomic
def _execute(*, actor: Principal, request: PromotionRequest, seen: tuple | None) -> Deployment:
    request = _locked_open_request(request)
    version, environment, project = request.model_version, request.environment, request.project
    deployment = (
        Deployment.objects.select_for_update(nowait=True).filter(model=version.model, environment=environment).first()
    )
    current = (deployment.model_version_id, deployment.updated_at) if deployment else None
    if current != seen:
        raise Conflict(
            "The deployment changed while this promotion was executing; check it and retry.",
            code="concurrent_execution",
        )
    if deployment is not None and deployment.model_version_id == version.pk:
        raise Conflict(f"{version} already runs in {environment.name}.", code="already_deployed")
    evaluation = gates_evaluate(version=version, environment=environment, request=request)
    if not evaluation.passed:
        raise _Blocked(evaluation)
    now = timezone.now()
    approvers = sorted(
        {d.reviewer.username for d in request.decisions.filter(voided_at__isnull=True, outcome="approve")}
    )
    previous = deployment.model_version_id if deployment else None
    if deployment is None:
        deployment = Deployment.objects.create(
            project=project, model=version.model, environment=environment, model_version=version, updated_at=now
        )
    else:
        DeploymentHistory.objects.filter(deployment=deployment, to_at__isnull=True).update(to_at=now)
        deployment.model_version, deployment.updated_at = version, now
        deployment.state, deployment.state_reason = Deployment.State.ACTIVE, ""
        deployment.save(update_fields=["model_version", "updated_at", "state", "state_reason"])
    DeploymentHistory.objects.create(
        deployment=deployment, model_version=version, request=request, approvers=approvers,
        policy_version=evaluation.policy_version, emergency=request.emergency, executed_by=actor.user, from_at=now,
    )  # fmt: skip
    request.state, request.closed_at, request.closed_by = PromotionRequest.State.EXECUTED, now, actor.user
    request.save(update_fields=["state", "closed_at", "closed_by"])
    audit_record(action="gate.evaluated", actor=actor, project=project, target=request,
                 diff={**evaluation.as_dict(), "executed": True})  # fmt: skip
    audit_record(
        action="deployment.promoted", actor=actor, project=project, target=deployment,
        diff={"model": version.model.name, "environment": environment.name, "from_version_id": previous,
              "to_version": version.version, "artifact_sha256": version.artifact_sha256, "approvers": approvers,
              "policy_version": evaluation.policy_version, "emergency": request.emergency, "request": request.pk},
    )  # fmt: skip
    return deployment


# Deployments -------------------------------------------------------------------------------------------


@transaction.atomic
def deployment_set_state(*, actor: Principal, deployment: Deployment, state: str, reason: str = "") -> Deployment:
    """Suspend or resume (governance officers, audited). ``actor`` None: the system, e.g. a failing monitor."""
    project = deployment.project
    verb = "suspend" if state == Deployment.State.SUSPENDED else "resume"
    if actor is not None:
        require_role(actor, project, [Role.GOVERNANCE_OFFICER], action=f"{verb} deployments")
    deployment = Deployment.objects.select_for_update().select_related("model", "environment").get(pk=deployment.pk)
    if deployment.state == state:
        raise Conflict(f"This deployment is already {state}.")
    deployment.state, deployment.state_reason, deployment.updated_at = state, reason, timezone.now()
    deployment.save(update_fields=["state", "state_reason", "updated_at"])
    audit_record(
        action=f"deployment.{'suspended' if verb == 'suspend' else 'resumed'}", actor=actor or Principal.system(),
        project=project, target=deployment,
        diff={"model": deployment.model.name, "environment": deployment.environment.name, "reason": reason},
    )  # fmt: skip
    return deployment


@dataclass(frozen=True)
class CheckConsequence:
    """What a finished check run meant for one deployment of its version."""

    deployment: Deployment
    policy_suspends: bool  # the run failed and the policy suspends an active deployment in this environment kind
    suspended: bool  # ... and it was suspended (not on a window below the reliable size)


def promotion_on_check_finished(
    *,
    version: ModelVersion,
    failed: bool,
    finished_at: datetime,
    void_reason: str,
    suspend_reason: str,
    below_reliable_size: bool = False,
) -> list[CheckConsequence]:
    """What a check run of ``version`` that did not pass means for promotion; monitoring calls this in the
    transaction that writes the run's outcome. Decisions on the version's open requests made before the run
    finished are voided (``void_reason``): their evidence is stale. On a failed run, each active deployment of
    the version in an environment kind the policy's ``suspend_on_failed_check`` names is suspended
    (``suspend_reason``), unless the run's window was below the size at which its methods are reliable: that
    cannot tell drift from noise, so it alerts but never suspends. Returns one entry per deployment."""
    stale = Decision.objects.filter(
        request__model_version=version, request__state=PromotionRequest.State.OPEN, voided_at__isnull=True,
        created_at__lt=finished_at,
    ).select_related("request__project", "reviewer")  # fmt: skip
    for decision in stale:
        decision_void(decision=decision, reason=void_reason[:2000])
    policy = policy_current(version.model.project)
    suspend_kinds = set((policy.document if policy else {}).get("suspend_on_failed_check", []))
    consequences = []
    for deployment in Deployment.objects.filter(model_version=version).select_related("environment", "model"):
        policy_suspends = (
            failed and deployment.environment.kind in suspend_kinds and deployment.state == Deployment.State.ACTIVE
        )
        suspend = policy_suspends and not below_reliable_size
        if suspend:
            deployment = deployment_set_state(
                actor=None, deployment=deployment, state=Deployment.State.SUSPENDED, reason=suspend_reason[:2000]
            )
        consequences.append(CheckConsequence(deployment=deployment, policy_suspends=policy_suspends, suspended=suspend))
    return consequences


def deployment_verify(*, deployment: Deployment | None, artifact_sha256: str) -> dict:
    """The enforcement point: may an artifact with this hash run in this deployment?"""
    if deployment is None:
        return {"allowed": False, "reason": "nothing is approved to run in this environment"}
    version = deployment.model_version
    if deployment.state == Deployment.State.SUSPENDED:
        return {"allowed": False, "reason": f"the deployment is suspended: {deployment.state_reason or 'no reason'}"}
    if artifact_sha256 != version.artifact_sha256:
        return {"allowed": False, "reason": f"this artifact is not the approved one (version {version.version})"}
    return {"allowed": True, "reason": f"version {version.version} is approved and active"}


@transaction.atomic
def model_card_confirm_risk_tier(
    *, actor: Principal, version: ModelVersion, risk_tier: str | None, comment: str, revision: int | None = None
) -> ModelCard:
    """A governance officer confirms the tier that gates use (by default, the proposed one), with a comment,
    bound to the card's current revision (``revision``: the one they reviewed; 409 if the card moved on).
    Separation of duties as for approvals: nobody who built, described or asked to promote the version."""
    project = version.model.project
    require_role(actor, project, [Role.GOVERNANCE_OFFICER], action="confirm risk tiers")
    card = ModelCard.objects.select_for_update().filter(model_version=version).first()
    separation_of_duties_check(actor=actor, version=version, doing="confirm its risk tier")
    if not (comment or "").strip():
        raise DomainError("A comment is required to confirm a risk tier.", details=[{"field": "comment"}])
    current = card.revision if card else 0
    if revision is not None and revision != current:
        raise Conflict(
            f"The card is at revision {current}, not {revision}; review it again before confirming.",
            code="card_changed", details=[{"field": "revision"}],
        )  # fmt: skip
    proposed = (card.content.get("proposed_risk_tier") if card else "") or ""
    tier = risk_tier or proposed
    if not tier:
        raise DomainError(
            "No risk tier is proposed on the card; name the tier to confirm.", details=[{"field": "risk_tier"}]
        )
    if tier not in RiskTier.values:
        raise DomainError(f"risk_tier must be one of {', '.join(RiskTier.values)}.", details=[{"field": "risk_tier"}])
    if card is None:
        card = ModelCard.objects.create(
            model_version=version, content=blank_card(), content_hash=card_content_hash(blank_card())
        )
    before = card.confirmed_risk_tier
    card.confirmed_risk_tier, card.confirmed_revision, card.confirmed_by = tier, card.revision, actor.user
    card.confirmed_at, card.confirmation_comment = timezone.now(), comment
    card.confirmation_voided_at, card.confirmation_voided_by = None, None
    card.confirmation_voided_revision, card.confirmation_void_reason = None, ""
    card.save()
    audit_record(
        action="model_card.risk_tier_confirmed",
        actor=actor,
        project=project,
        target=version,
        diff={"confirmed_risk_tier": {"from": before, "to": tier}, "proposed": proposed, "comment": comment,
              "revision": card.revision},
    )  # fmt: skip
    decisions_revalidate(version=version, actor=actor)
    return card
