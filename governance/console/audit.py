"""The auditor's pages (issue 18): the project's audit log and access log with the API's filters, exported as CSV
and JSON Lines by the API's own streaming code, the chain's verification with its latest checkpoint, and the
role-binding history.

Everything here reads through ``governance.audit.selectors`` (the project's auditors and admins only: another
member gets the 403 page with the reason, an outsider the 404 page); the filters are the API's FilterSets
(``governance.audit.api.views``), so a console filter and an API query find the same rows. Starting a
verification is the one form: it reads the chain and changes nothing, as ``POST .../audit-events/verify/``.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from governance.accounts.models import Role
from governance.accounts.selectors import member_list
from governance.audit import selectors as audit_selectors
from governance.audit.api.views import AccessLogFilter, AccessLogListView, AuditEventFilter, AuditEventListView
from governance.audit.chain import checkpoint_list
from governance.audit.models import AuditVerification, chain_of
from governance.audit.services import audit_verification_start
from governance.console import queries
from governance.console.views import _page, _principal, console_page

PAGE_ROWS = 50
EVENT_FILTERS = ("action", "actor", "model", "version", "since", "until", "target_label")
ACCESS_FILTERS = ("principal", "method", "status", "path", "model", "version", "since", "until")
FORMATS = ("csv", "jsonl")


def _filtered(filterset_class, request, queryset, names):
    """The API's FilterSet on the page's query string; returns (rows, chosen filters, errors)."""
    data = request.GET.copy()
    for name in list(data):
        if name not in names:
            del data[name]
    filterset = filterset_class(data=data, queryset=queryset)
    errors = []
    if not filterset.is_valid():
        errors = [f"{name.replace('_', ' ')}: {messages_[0]}" for name, messages_ in filterset.errors.items()]
        return queryset.none(), {n: request.GET.get(n, "") for n in names}, errors
    return filterset.qs, {n: request.GET.get(n, "") for n in names}, errors


def _query(chosen: dict, **extra) -> str:
    return urlencode({k: v for k, v in {**chosen, **extra}.items() if v not in ("", None)})


def _export(view_class, project, queryset, fmt: str):
    """The API view's own export: the same columns, the same streaming, the same file name."""
    view = view_class()
    view.project = project
    return view.export(queryset, fmt)


def _page_of(rows, request, key: str, descending_by: str):
    """Keyset paging, newest first: ``?before=<key>``."""
    before = request.GET.get("before", "")
    if before.isdigit():
        rows = rows.filter(**{f"{key}__lt": int(before)})
    page = list(rows.order_by(descending_by)[: PAGE_ROWS + 1])
    more = len(page) > PAGE_ROWS
    page = page[:PAGE_ROWS]
    return page, (getattr(page[-1], key) if more and page else None)


def _latest_checkpoint(project) -> dict | None:
    valid = [c for c in checkpoint_list(chain_of(project.pk)) if c["valid"]]
    return valid[-1] if valid else None


@console_page
def audit(request, project):
    principal = _principal(request)
    project = queries.project_for(principal, project)
    events = audit_selectors.audit_event_list(principal=principal, project=project)  # 403 for other members
    rows, chosen, errors = _filtered(AuditEventFilter, request, events, EVENT_FILTERS)
    fmt = request.GET.get("format", "")
    if fmt in FORMATS and not errors:
        return _export(AuditEventListView, project, rows, fmt)
    page, older = _page_of(rows, request, "sequence", "-sequence")
    for event in page:
        event.diff_text = json.dumps(event.diff, indent=1, sort_keys=True, ensure_ascii=False, default=str)
    verification = None
    wanted = request.GET.get("verification", "")
    if wanted.isdigit():
        verification = audit_selectors.audit_verification_get(
            principal=principal, project=project, verification_id=int(wanted)
        )
    else:
        verification = audit_selectors.audit_verification_latest(principal=principal, project=project)
    bindings = list(member_list(principal=principal, project=project, filters={"state": "all"}))
    context = {
        "rows": page,
        "older": _query(chosen, before=older) if older else "",
        "chosen": chosen,
        "filtered": any(chosen.values()),
        "errors": errors,
        "export_csv": _query(chosen, format="csv"),
        "export_jsonl": _query(chosen, format="jsonl"),
        "actions": list(events.order_by("action").values_list("action", flat=True).distinct()),
        "verification": verification,
        "checkpoint": _latest_checkpoint(project),
        "bindings": bindings,
        "roles_choices": Role.values,
    }
    return _page(request, "console/audit.html", context, project=project)


@console_page
def access_log(request, project):
    principal = _principal(request)
    project = queries.project_for(principal, project)
    entries = audit_selectors.access_log_list(principal=principal, project=project)
    rows, chosen, errors = _filtered(AccessLogFilter, request, entries, ACCESS_FILTERS)
    fmt = request.GET.get("format", "")
    if fmt in FORMATS and not errors:
        return _export(AccessLogListView, project, rows, fmt)
    page, older = _page_of(rows, request, "id", "-id")
    context = {
        "rows": page,
        "older": _query(chosen, before=older) if older else "",
        "chosen": chosen,
        "filtered": any(chosen.values()),
        "errors": errors,
        "export_csv": _query(chosen, format="csv"),
        "export_jsonl": _query(chosen, format="jsonl"),
        "methods": ["GET", "POST", "PUT", "PATCH", "DELETE"],
    }
    return _page(request, "console/access_log.html", context, project=project)


@require_POST
@console_page
def audit_verify(request, project):
    """Verify the chain (``audit_verification_start``, as the API's POST): inline for a small chain, by a worker
    for a large one -- the page then shows its progress."""
    principal = _principal(request)
    project = queries.project_for(principal, project)
    verification = audit_verification_start(actor=principal, project=project)
    if verification.state == AuditVerification.State.DONE:
        ok = (verification.result or {}).get("ok")
        messages.success(request, "The chain verifies." if ok else "The chain does NOT verify: see the first failure.")
    else:
        messages.success(request, f"Verification #{verification.pk} is {verification.state}; reload for its progress.")
    url = reverse("console:audit", args=[project.slug])
    return redirect(f"{url}?{urlencode({'verification': verification.pk})}#verification")
