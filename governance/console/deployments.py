"""The console's deployment pages (issue 18): what runs where, its history, the enforcement point's current
answer, and its monitoring -- drift and quality charts, alerts to acknowledge, "run a check now", suspend and
resume for governance officers.

Reads go through the API's selectors (``governance.promotion.selectors``, ``monitoring.selectors``); every form
calls the service its API twin calls (``deployment_set_state``, ``alert_acknowledge``, ``check_run_request``),
which checks the role and audits the change. A project outside the caller's scope is the console's 404 page.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from django import forms
from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from controlplane.exceptions import DomainError, Forbidden, NotFound
from governance.accounts.access import Principal
from governance.accounts.models import Project, Role
from governance.console import queries
from governance.console.forms import first_error
from governance.console.views import _page, _principal, console_page
from governance.promotion import selectors as promotion_selectors
from governance.promotion import services as promotion
from governance.promotion.models import Deployment
from governance.registry.selectors import model_get
from monitoring import selectors as monitoring_selectors
from monitoring.api.serializers import MonitorSerializer
from monitoring.models import MonitorKind
from monitoring.services.alerts import ACKNOWLEDGERS, alert_acknowledge
from monitoring.services.runs import RUNNERS, check_run_request

CHART_BATCHES = 60
RECENT_RUNS = 30

# Forms --------------------------------------------------------------------------------------------------------


class ReasonForm(forms.Form):
    """Suspend and resume: the console asks for a reason (the audit event keeps it)."""

    reason = forms.CharField(max_length=5000, widget=forms.Textarea(attrs={"rows": 2}))


class AcknowledgeForm(forms.Form):
    comment = forms.CharField(required=False, max_length=5000)


class RunCheckForm(forms.Form):
    monitor = forms.IntegerField(min_value=1)


# Reads --------------------------------------------------------------------------------------------------------


def _deployment(principal: Principal, project: Project, model_name: str, environment_name: str) -> Deployment:
    """The (model, environment) deployment, loaded as the API's ``DeploymentMixin.existing`` loads it: 404 when the
    model, the environment or the deployment is missing."""
    environment = promotion_selectors.environment_get(project=project, name=environment_name, field="environment")
    model = model_get(principal=principal, project=project, name=model_name)
    deployment = promotion_selectors.deployment_find(project=project, model=model, environment=environment)
    if deployment is None:
        raise NotFound(f"Nothing of {model.name} is deployed in {environment.name}.")
    return deployment


def _hours(delta) -> float:
    return delta.total_seconds() / 3600


def _age(delta) -> str:
    hours = _hours(delta)
    if hours < 1:
        amount, unit = max(1, int(delta.total_seconds() // 60)), "minute"
    elif hours < 48:
        amount, unit = round(hours), "hour"
    else:
        amount, unit = round(hours / 24), "day"
    return f"{amount} {unit}{'' if amount == 1 else 's'}"


@dataclass
class MonitorPanel:
    monitor: object
    state: str
    state_reason: str | None
    freshness_hours: float | None
    last_batch: object | None
    freshness_note: str
    chart: dict | None
    runs: list = field(default_factory=list)


def _chart(monitor, series: dict) -> dict | None:
    if not series["batches"]:
        return None
    x = [batch["window_end"].strftime("%Y-%m-%d %H:%M") for batch in series["batches"]]
    drift = monitor.kind == MonitorKind.DATA_DRIFT
    values = series["columns"] if drift else series["metrics"]
    if not values:
        return None
    return {
        "element_id": f"series-{monitor.pk}",
        "title": {
            MonitorKind.DATA_DRIFT: "drift score per column",
            MonitorKind.DATA_QUALITY: "data quality measures",
            MonitorKind.MODEL_QUALITY: "model quality metrics",
        }[monitor.kind],
        "data": {
            "ytitle": "drift score" if drift else "value",
            "traces": [
                {"name": name, "x": x, "y": scores, "counts": _is_count(scores)}
                for name, scores in sorted(values.items())
            ],
            "states": [batch["state"] for batch in series["batches"]],
        },
    }


def _is_count(values: list) -> bool:
    """A measure beyond 0..1 (a row count) is drawn on its own axis, so the shares beside it stay readable."""
    return any(v is not None and abs(v) > 1 for v in values)


def _freshness_note(monitor, hours: float | None, last_batch, now) -> str:
    """The empty state people need: how long since data came, and when the freshness alert fires."""
    rule = (
        f"the freshness alert fires after {hours:g} hours"
        if hours
        else "this monitor has no freshness rule (freshness_hours in its configuration)"
    )
    if last_batch is None:
        since = now - monitor.created_at
        return f"No batch has arrived since the monitor was created {_age(since)} ago — {rule}."
    since = now - last_batch.created_at
    if hours and _hours(since) > hours:
        return f"No batch has arrived for {_age(since)} — {rule}."
    return f"The last batch arrived {_age(since)} ago — {rule}."


def _monitor_panels(principal: Principal, project: Project, deployment: Deployment) -> list[MonitorPanel]:
    monitors = [
        m
        for m in monitoring_selectors.monitor_list(
            principal=principal, project=project, filters={"model": deployment.model.name}
        )
        if m.deployment_id == deployment.pk
    ]
    serializer = MonitorSerializer()
    batches = monitoring_selectors.batch_list(
        principal=principal,
        project=project,
        filters={"model": deployment.model.name, "environment": deployment.environment.name},
    )
    last_batch = batches.order_by("-created_at", "-id").first()  # the freshness rule goes by arrival
    now = timezone.now()
    panels = []
    for monitor in monitors:
        # monitor_list prefetches the revisions: the current one's config without a query of its own
        config = next((r.config for r in monitor.revisions.all() if r.revision == monitor.revision), {})
        hours = config.get("freshness_hours")
        runs = list(
            monitoring_selectors.check_run_list(principal=principal, project=project, filters={"monitor": monitor.pk})[
                :RECENT_RUNS
            ]
        )
        panels.append(
            MonitorPanel(
                monitor=monitor,
                state=serializer.get_state(monitor),
                state_reason=serializer.get_state_reason(monitor),
                freshness_hours=hours,
                last_batch=last_batch,
                freshness_note=_freshness_note(monitor, hours, last_batch, now),
                chart=_chart(monitor, monitoring_selectors.monitor_series(monitor=monitor, limit=CHART_BATCHES)),
                runs=runs,
            )
        )
    return panels


# Pages --------------------------------------------------------------------------------------------------------


@console_page
def deployments(request, project):
    principal = _principal(request)
    project = queries.project_for(principal, project)
    rows = []
    alerts = monitoring_selectors.alert_list(principal=principal, project=project, filters={"acknowledged": False})
    open_alerts: dict[int, int] = {}
    for alert in alerts:
        if alert.deployment_id:
            open_alerts[alert.deployment_id] = open_alerts.get(alert.deployment_id, 0) + 1
    for deployment in promotion_selectors.deployment_list(project=project):
        rows.append({"deployment": deployment, "open_alerts": open_alerts.get(deployment.pk, 0)})
    history = list(promotion_selectors.deployment_history_list(project=project)[:20])
    return _page(request, "console/deployments.html", {"rows": rows, "history": history}, project=project)


def deployment_url(deployment: Deployment) -> str:
    return reverse(
        "console:deployment", args=[deployment.project.slug, deployment.model.name, deployment.environment.name]
    )


@console_page
def deployment(request, project, model, environment):
    principal = _principal(request)
    project = queries.project_for(principal, project)
    found = _deployment(principal, project, model, environment)
    version = found.model_version
    answer = promotion.deployment_verify(deployment=found, artifact_sha256=version.artifact_sha256)
    history = list(
        promotion_selectors.deployment_history_list(
            project=project, filters={"model": found.model.name, "environment": found.environment.name}
        )
    )
    alerts = list(
        monitoring_selectors.alert_list(
            principal=principal,
            project=project,
            filters={"model": found.model.name, "environment": found.environment.name},
        )[:50]
    )
    state_verb = "resume" if found.state == Deployment.State.SUSPENDED else "suspend"
    context = {
        "deployment": found,
        "version": version,
        "answer": answer,
        "history": history,
        "alerts": alerts,
        "open_alerts": [a for a in alerts if a.acknowledged_at is None],
        "panels": _monitor_panels(principal, project, found),
        "can_change": queries.may_change_anything(principal, project),
        "state_verb": state_verb,
        "state_refusal": queries.role_refusal(
            principal, project, [Role.GOVERNANCE_OFFICER], f"{state_verb} deployments"
        ),
        "acknowledge_refusal": queries.role_refusal(principal, project, ACKNOWLEDGERS, "acknowledge alerts"),
        "run_refusal": queries.role_refusal(principal, project, RUNNERS, "run checks"),
        "verify_path": f"/api/v1/projects/{project.slug}/deployments/{model}/{environment}/verify/",
        "here": request.path,
    }
    return _page(request, "console/deployment.html", context, project=project)


# Forms' targets -----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _refusal_as_message(request):
    """A refusal that is neither a 404 nor a 403 (``no_batch``, ``already_acknowledged``, a queue bound) becomes a
    message on the deployment's page; those two stay their pages (``console_page``)."""
    try:
        yield
    except (Forbidden, NotFound):
        raise
    except DomainError as refused:
        messages.error(request, refused.message)


def _set_state(state: str):
    @require_POST
    @console_page
    def view(request, project, model, environment):
        principal = _principal(request)
        project = queries.project_for(principal, project)
        found = _deployment(principal, project, model, environment)
        form = ReasonForm(request.POST)
        if not form.is_valid():
            messages.error(request, first_error(form))
            return redirect(deployment_url(found) + "#state")
        changed = promotion.deployment_set_state(
            actor=principal, deployment=found, state=state, reason=form.cleaned_data["reason"]
        )
        verb = "suspended" if state == Deployment.State.SUSPENDED else "resumed"
        messages.success(request, f"{changed.model.name} in {changed.environment.name} is {verb}.")
        return redirect(deployment_url(found) + "#state")

    return view


deployment_suspend = _set_state(Deployment.State.SUSPENDED)
deployment_resume = _set_state(Deployment.State.ACTIVE)


@require_POST
@console_page
def deployment_alert_acknowledge(request, project, model, environment, pk):
    principal = _principal(request)
    project = queries.project_for(principal, project)
    found = _deployment(principal, project, model, environment)
    alert = monitoring_selectors.alert_get(principal=principal, project=project, alert_id=pk)
    form = AcknowledgeForm(request.POST)
    comment = form.cleaned_data["comment"] if form.is_valid() else ""
    back = redirect(deployment_url(found) + "#alerts")
    with _refusal_as_message(request):
        alert_acknowledge(actor=principal, alert=alert, comment=comment)
        messages.success(request, f"Alert #{alert.pk} acknowledged.")
    return back


@require_POST
@console_page
def deployment_run_check(request, project, model, environment):
    principal = _principal(request)
    project = queries.project_for(principal, project)
    found = _deployment(principal, project, model, environment)
    form = RunCheckForm(request.POST)
    if not form.is_valid():
        messages.error(request, first_error(form))
        return redirect(deployment_url(found) + "#monitoring")
    monitor = monitoring_selectors.monitor_get(
        principal=principal, project=project, monitor_id=form.cleaned_data["monitor"]
    )
    if monitor.deployment_id != found.pk:
        raise NotFound("No such monitor on this deployment.")
    back = redirect(deployment_url(found) + f"#monitor-{monitor.pk}")
    with _refusal_as_message(request):
        run, created = check_run_request(actor=principal, monitor=monitor)
        run.refresh_from_db()
        if created:
            note = f"Check run #{run.pk} of {monitor.name} on the latest batch: {run.state}."
        else:
            note = f"The latest batch was checked already with this configuration: run #{run.pk}, {run.state}."
        messages.success(request, note)
    return back
