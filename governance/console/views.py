"""The web console for governance officers, ML engineers and auditors (DESIGN §1, §8; issue 17).

Pages read through the API's selectors (``governance.console.queries`` composes them) and every form calls the
service its API twin calls, which checks the rule and audits the change; the access log records each request.
A project outside the caller's scope answers the same 404 page as a missing one; a refused action answers a
403 page that says why (and the refusal audit middleware records it, as for the API).
"""

import difflib
import functools
import json
import math

import yaml
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from controlplane.api.errors import REFUSAL_ATTRIBUTE
from controlplane.api.throttling import AnonThrottle
from controlplane.exceptions import DomainError, Forbidden, NotFound
from governance.accounts.access import Principal
from governance.accounts.models import Role
from governance.accounts.selectors import project_list, user_by_username
from governance.console import queries
from governance.console.forms import (
    CommentForm,
    ConfirmTierForm,
    ExceptionGrantForm,
    PolicyPublishForm,
    PromotionRequestForm,
    first_error,
)
from governance.promotion import services as promotion
from governance.promotion.models import Decision, PolicyException
from governance.registry.models import MODEL_CARD_FIELDS, RiskTier

# Rendering and errors -----------------------------------------------------------------------------------------


def _principal(request) -> Principal:
    return Principal.from_request(request)


def _page(request, template: str, context: dict, *, status: int = 200, project=None):
    principal = _principal(request)
    projects = list(project_list(principal=principal).order_by("slug")) if request.user.is_authenticated else []
    roles = sorted(principal.roles(project)) if project is not None else []
    is_officer = any(principal.has_role(p, [Role.GOVERNANCE_OFFICER]) for p in projects)
    return render(request, template, {
        "nav_projects": projects, "project": project, "roles": roles, "is_officer": is_officer, **context,
    }, status=status)  # fmt: skip


def _error_page(request, status: int, title: str, message: str):
    return _page(request, "console/error.html", {"status": status, "title": title, "message": message}, status=status)


def console_page(view):
    """Logged in; a domain error becomes its page: 404 (the same for out of scope and missing), 403 with the
    reason (noted for the refusal audit, as the API's handler does), any other refusal as a message on the
    page the form came from."""

    @login_required
    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except NotFound as missing:
            return _error_page(request, 404, "Not found", missing.message)
        except Forbidden as refused:
            setattr(request, REFUSAL_ATTRIBUTE, (refused.message, refused.project))
            return _error_page(request, 403, "Not allowed", refused.message)
        except DomainError as refused:
            if request.method != "POST":
                raise
            messages.error(request, _with_details(refused))
            return _back(request)

    return wrapper


def _with_details(error: DomainError) -> str:
    """The message, and for a blocked execution each failing gate and why (the API's 409 details)."""
    gates = [f"{d['gate']}: {d['reason']}" for d in error.details if isinstance(d, dict) and "gate" in d]
    return f"{error.message} {'; '.join(gates)}" if gates else error.message


def _back(request, fallback: str | None = None):
    """After a form: to the page it came from (``next``, a path of this site), else ``fallback`` or home."""
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}) or not target.startswith("/"):
        target = fallback or reverse("console:home")
    return redirect(target)


@login_required
def root(request):
    return redirect("console:home")


@console_page
def not_found(request, rest=""):
    return _error_page(request, 404, "Not found", "There is no such page in the console.")


class LoginThrottle(AnonThrottle):
    """Login attempts per client address, at the API's anonymous rate and by its mechanism (the cache,
    failing open), counted apart from anonymous API calls."""

    scope = "console_login"


class LoginView(auth_views.LoginView):
    template_name = "console/login.html"
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        throttle = LoginThrottle()
        if not throttle.allow_request(request, self):
            wait = math.ceil(throttle.wait() or 1)
            response = render(request, "console/login.html", {
                "form": self.get_form(), "throttled": wait, "next": request.POST.get("next", ""),
            }, status=429)  # fmt: skip
            response["Retry-After"] = str(wait)
            return response
        return super().post(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["session_expired"] = self.request.GET.get("expired") == "1"
        return context


# Home and queue -----------------------------------------------------------------------------------------------


ROLE_HELP = {
    Role.ML_ENGINEER: "Request a version's promotion on its page, follow its gates and execute your own request "
    "once every gate passes. Versions, cards, data and monitors come through the API or the CLI.",
    Role.GOVERNANCE_OFFICER: "Work the approval queue: review a version's evidence, confirm its risk tier, approve "
    "or reject with a comment, execute; publish the project's policy and grant time-boxed exceptions.",
    Role.AUDITOR: "Read everything -- gates, decisions, check runs, lineage, policies -- and change nothing.",
    Role.ADMIN: "Manage members, keys, environments and webhooks (through the API for now). Being admin gives no "
    "right to approve or publish policy.",
}


@console_page
def home(request):
    principal = _principal(request)
    summaries = queries.project_summaries(principal)
    queue = queries.queue_rows(principal) if any("governance_officer" in s.roles for s in summaries) else None
    held = {role for summary in summaries for role in summary.roles}
    role_help = [(role, what) for role, what in ROLE_HELP.items() if role in held]
    return _page(request, "console/home.html", {"summaries": summaries, "queue": queue, "role_help": role_help})


@console_page
def queue(request):
    principal = _principal(request)
    choices = queries.queue_choices(principal)
    chosen = {name: request.GET.get(name, "") for name in ("project", "environment", "tier")}
    for name, allowed in (("project", choices["projects"]), ("environment", choices["environments"]),
                          ("tier", choices["tiers"])):  # fmt: skip
        if chosen[name] and chosen[name] not in allowed:
            chosen[name] = ""
    rows = queries.queue_rows(principal, **chosen)
    context = {"rows": rows, "choices": choices, "chosen": chosen, "filtered": any(chosen.values())}
    if request.headers.get("HX-Request"):
        return render(request, "console/_queue_table.html", context)
    return _page(request, "console/queue.html", context)


# Models and versions -------------------------------------------------------------------------------------------


@console_page
def models(request, project):
    principal = _principal(request)
    project = queries.project_for(principal, project)
    rows = queries.models_with_deployments(principal, project)
    return _page(request, "console/models.html", {"rows": rows}, project=project)


@console_page
def model(request, project, model):
    principal = _principal(request)
    project = queries.project_for(principal, project)
    detail = queries.model_detail(principal, project, model)
    return _page(request, "console/model.html", detail, project=project)


def _card_rows(card) -> list[tuple[str, str]]:
    content = card.content if card else {}
    rows = []
    for name in MODEL_CARD_FIELDS:
        value = content.get(name, "")
        if isinstance(value, dict | list):
            value = json.dumps(value, indent=1, sort_keys=True)
        rows.append((name.replace("_", " "), value))
    return rows


def _lineage_columns(upstream, version) -> dict:
    """The small lineage drawing: datasets read, runs (with their agents), what the runs wrote, the version."""
    read, wrote = {}, {}
    for row in upstream.io:
        target = read if row.direction == "input" else wrote
        target.setdefault((row.dataset_id, row.dataset_version_id), row)
    linked = [link for link in upstream.links]
    return {
        "links": linked,
        "inputs": list(read.values()),
        "runs": sorted(upstream.runs.values(), key=lambda run: (run.started_at or run.created_at, run.pk)),
        "outputs": list(wrote.values()),
    }


def _evidence_items(evidence: dict) -> list[tuple[str, str]]:
    items = []
    for key, value in evidence.items():
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        items.append((key.replace("_", " "), text if len(text) <= 300 else text[:300] + "…"))
    return items


def _gate_rows(environments) -> list:
    for row in environments:
        row.gates = [
            {"kind": r.kind, "status": r.status, "reason": r.reason, "evidence": _evidence_items(r.evidence)}
            for r in row.evaluation.results
        ]
        row.failing = row.evaluation.failing
    return environments


@console_page
def version(request, project, model, version):
    principal = _principal(request)
    project = queries.project_for(principal, project)
    page = queries.version_page(principal, project, model, version)
    can_change = queries.may_change_anything(principal, project)
    context = {
        "page": page,
        "version": page.version,
        "model": page.model,
        "card_rows": _card_rows(page.card),
        "lineage": _lineage_columns(page.upstream, page.version),
        "environments": _gate_rows(page.environments),
        "can_change": can_change,
        "tiers": RiskTier.values,
        "proposed_tier": (page.card.content.get("proposed_risk_tier") if page.card else "") or "",
        "charts": queries.drift_series(principal, project, page.version),
        "here": request.path,
    }
    return _page(request, "console/version.html", context, project=project)


def _version_url(version) -> str:
    return reverse("console:version", args=[version.model.project.slug, version.model.name, version.version])


@require_POST
@console_page
def version_request(request, project, model, version):
    """An ML engineer asks for a promotion (``promotion_request_create``, as the API's POST does)."""
    principal = _principal(request)
    project = queries.project_for(principal, project)
    page_version = queries.version_page_version(principal, project, model, version)
    form = PromotionRequestForm(request.POST)
    if not form.is_valid():
        messages.error(request, first_error(form))
        return redirect(_version_url(page_version))
    environment = queries.environment_named(project, form.cleaned_data["environment"])
    promotion.promotion_request_create(
        actor=principal, version=page_version, environment=environment, comment=form.cleaned_data["comment"]
    )
    messages.success(request, f"Promotion to {environment.name} requested.")
    return redirect(_version_url(page_version) + f"#env-{environment.name}")


@require_POST
@console_page
def version_confirm_tier(request, project, model, version):
    """A governance officer confirms the risk tier, with a required comment, bound to the revision seen."""
    principal = _principal(request)
    project = queries.project_for(principal, project)
    page_version = queries.version_page_version(principal, project, model, version)
    form = ConfirmTierForm(request.POST)
    if not form.is_valid():
        messages.error(request, first_error(form))
        return redirect(_version_url(page_version) + "#card")
    data = form.cleaned_data
    card = promotion.model_card_confirm_risk_tier(
        actor=principal, version=page_version, risk_tier=data["risk_tier"], comment=data["comment"],
        revision=data["revision"],
    )  # fmt: skip
    messages.success(request, f"Risk tier confirmed as {card.confirmed_risk_tier} (card revision {card.revision}).")
    return redirect(_version_url(page_version) + "#card")


def _request_action(action):
    @require_POST
    @console_page
    @functools.wraps(action)
    def view(request, project, pk):
        principal = _principal(request)
        project = queries.project_for(principal, project)
        promotion_request = queries.open_request(principal, project, pk)
        form = CommentForm(request.POST)
        comment = form.cleaned_data["comment"] if form.is_valid() else ""
        note = action(principal, promotion_request, comment)
        messages.success(request, note)
        url = _version_url(promotion_request.model_version) + f"#env-{promotion_request.environment.name}"
        return redirect(url)

    return view


@_request_action
def request_approve(principal, promotion_request, comment):
    promotion.decision_record(actor=principal, request=promotion_request, outcome=Decision.Outcome.APPROVE,
                              comment=comment)  # fmt: skip
    return f"You approved request {promotion_request.pk}."


@_request_action
def request_reject(principal, promotion_request, comment):
    promotion.decision_record(actor=principal, request=promotion_request, outcome=Decision.Outcome.REJECT,
                              comment=comment)  # fmt: skip
    return f"You rejected request {promotion_request.pk}; it is closed."


@_request_action
def request_withdraw(principal, promotion_request, comment):
    promotion.promotion_request_withdraw(actor=principal, request=promotion_request)
    return f"Request {promotion_request.pk} withdrawn."


@_request_action
def request_execute(principal, promotion_request, comment):
    deployment = promotion.promotion_execute(actor=principal, request=promotion_request)
    return (
        f"Executed: {promotion_request.model_version.model.name} version {promotion_request.model_version.version}"
        f" now runs in {deployment.environment.name}."
    )


# Policy -------------------------------------------------------------------------------------------------------


def _policy_text(policy) -> list[str]:
    return json.dumps(policy.document, indent=2, sort_keys=True).splitlines()


@console_page
def policy(request, project):
    principal = _principal(request)
    project = queries.project_for(principal, project)
    versions = queries.policy_versions(project)
    current = versions[0] if versions else None
    numbers = [p.version for p in versions]

    def chosen(name, default):
        value = request.GET.get(name, "")
        return int(value) if value.isdigit() and int(value) in numbers else default

    right = chosen("to", current.version if current else None)
    left = chosen("from", next((n for n in numbers if right is not None and n < right), right))
    by_number = {p.version: p for p in versions}
    diff = ""
    if left is not None and right is not None and left != right:
        diff = mark_safe(  # noqa: S308 - HtmlDiff escapes every line it shows
            difflib.HtmlDiff(wrapcolumn=60).make_table(
                _policy_text(by_number[left]), _policy_text(by_number[right]),
                fromdesc=f"version {left}", todesc=f"version {right}", context=left != right, numlines=3,
            )
        )  # fmt: skip
    can_change = queries.may_change_anything(principal, project)
    now = timezone.now()
    exceptions = queries.project_exceptions(project)
    context = {
        "versions": versions, "current": current, "left": left, "right": right, "diff": diff,
        "exceptions": [(e, e.is_active(now)) for e in exceptions], "can_change": can_change,
        "publish_refusal": queries.role_refusal(principal, project, [Role.GOVERNANCE_OFFICER], "publish policies"),
        "grant_refusal": queries.role_refusal(principal, project, [Role.GOVERNANCE_OFFICER],
                                              "grant policy exceptions"),
        "current_yaml": yaml.safe_dump(current.document, sort_keys=False) if current else "",
        "shown_yaml": yaml.safe_dump(by_number[right].document, sort_keys=False) if right is not None else "",
        "gates": [c for c, _ in PolicyException._meta.get_field("gate").choices],
        "environments": project.environments.order_by("name"),
        "default_expiry": (now + timezone.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M"),
    }  # fmt: skip
    return _page(request, "console/policy.html", context, project=project)


@require_POST
@console_page
def policy_publish(request, project):
    principal = _principal(request)
    project = queries.project_for(principal, project)
    form = PolicyPublishForm(request.POST)
    if not form.is_valid():
        messages.error(request, first_error(form))
        return redirect("console:policy", project=project.slug)
    published = promotion.policy_publish(
        actor=principal, project=project, source=form.cleaned_data["source"], comment=form.cleaned_data["comment"]
    )
    messages.success(request, f"Policy version {published.version} published.")
    return redirect("console:policy", project=project.slug)


@require_POST
@console_page
def exception_grant(request, project):
    principal = _principal(request)
    project = queries.project_for(principal, project)
    form = ExceptionGrantForm(request.POST)
    if not form.is_valid():
        messages.error(request, first_error(form))
        return redirect(reverse("console:policy", args=[project.slug]) + "#exceptions")
    data = form.cleaned_data
    expires_at = data["expires_at"]  # aware: the form reads it in the current time zone, UTC
    granted = promotion.exception_grant(
        actor=principal,
        version=queries.version_page_version(principal, project, data["model"], data["version"]),
        environment=queries.environment_named(project, data["environment"]),
        gate=data["gate"], target=data["target"], name=data["name"], justification=data["justification"],
        requested_by=user_by_username(data["requested_by"], field="requested_by"), expires_at=expires_at,
    )  # fmt: skip
    messages.success(request, f"Exception '{granted.name}' granted until {granted.expires_at:%Y-%m-%d %H:%M} UTC.")
    return redirect(reverse("console:policy", args=[project.slug]) + "#exceptions")


@require_POST
@console_page
def exception_revoke(request, project, pk):
    principal = _principal(request)
    project = queries.project_for(principal, project)
    found = queries.exception_get(project, pk)
    promotion.exception_revoke(actor=principal, exception=found)
    messages.success(request, f"Exception '{found.name}' revoked.")
    return redirect(reverse("console:policy", args=[project.slug]) + "#exceptions")
