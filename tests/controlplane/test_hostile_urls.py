"""Hostile URLs: every operation of the OpenAPI schema, and every other route, with bad characters in its path
parameters and its query, answers 400 in the one error shape and changes nothing.

The routes come from the schema (and the URL resolver for the pages it does not document), so a route added
later is covered without touching this file. To try another kind of hostile value, add it to
``HOSTILE_VALUES``.
"""

import io
import re
from urllib.parse import quote, urlsplit

import pytest
from django.apps import apps
from django.core.management import call_command
from django.test import Client
from django.urls import Resolver404, resolve
from drf_spectacular.generators import SchemaGenerator

from governance.accounts.access import Principal
from governance.accounts.models import ApiKey, Project, RoleBinding, User
from governance.accounts.services import api_key_issue
from governance.audit.middleware import UNLOGGED_PATHS
from governance.audit.models import AccessLogEntry, AuditVerification
from governance.management.commands._demo_registry import MODEL
from governance.management.commands.seed_demo import PROJECT
from governance.promotion.models import PolicyException, PromotionRequest
from governance.provenance.models import Dataset, DatasetVersion
from governance.webhooks.models import Webhook, WebhookDelivery
from governance.webhooks.services import webhook_create, webhook_test
from monitoring.models import Alert, Batch, CheckRun, Monitor
from tests.controlplane.test_deny_by_default import ROUTES

# Raw bytes, percent-encoded into the URL: control characters (NUL, which PostgreSQL refuses in text, ESC,
# DEL, a C1 control as valid UTF-8) and bytes that are not UTF-8 (a stray byte, an overlong NUL).
HOSTILE_VALUES = {
    "nul": b"a\x00b",
    "escape": b"a\x1bb",
    "delete": b"a\x7fb",
    "c1-control": "a\x85b".encode(),
    "not-utf8": b"a\xffb",
    "overlong-nul": b"a\xc0\x80b",
}
METHODS = ("get", "post", "put", "patch", "delete")
_PARAMETER = re.compile(r"\{([^}]+)\}")


def _operations():
    """(method, path template, path parameter names, query parameter names) for every documented operation."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    for template, item in schema["paths"].items():
        for method in METHODS:
            if method in item:
                parameters = item[method].get("parameters", [])
                query = sorted({p["name"] for p in parameters if p["in"] == "query"})
                yield method, template, _PARAMETER.findall(template), query
    documented = [re.compile(_PARAMETER.sub("[^/]+", template)) for template in schema["paths"]]
    for _name, path in ROUTES:  # the console, the schema and its docs are not in the schema
        if not any(pattern.fullmatch(path) for pattern in documented):
            yield "get", path, [], []


def _real_values(admin) -> dict:
    """A real-looking value for each path parameter; an id is a row of the collection it follows."""
    collections = {
        "api-keys": ApiKey.objects.filter(owner=admin),
        "alerts": Alert.objects.all(),
        "verify": AuditVerification.objects.all(),
        "batches": Batch.objects.all(),
        "check-runs": CheckRun.objects.all(),
        "datasets": Dataset.objects.all(),
        "versions": DatasetVersion.objects.all(),
        "exceptions": PolicyException.objects.all(),
        "members": RoleBinding.objects.all(),
        "monitors": Monitor.objects.all(),
        "promotion-requests": PromotionRequest.objects.all(),
        "service-accounts": User.objects.filter(service_project__isnull=False),
        "keys": ApiKey.objects.filter(owner__service_project__isnull=False),
        "webhooks": Webhook.objects.all(),
        "deliveries": WebhookDelivery.objects.all(),
    }
    ids = {
        name: str(rows.order_by("pk").values_list("pk", flat=True).first() or 1) for name, rows in collections.items()
    }
    return {
        "project": PROJECT,
        "model": MODEL,
        "version": "1",
        "environment": "production",
        "name": "production",
        "sequence": "1",
        "ids": ids,
    }


def _fill(template: str, values: dict, hostile: str | None = None, encoded: str = "") -> str:
    """The template with every parameter real, except ``hostile``, which gets ``encoded``."""
    segments = template.split("/")
    for index, segment in enumerate(segments):
        match = _PARAMETER.fullmatch(segment)
        if match is None:
            continue
        name = match[1]
        if name == hostile:
            segments[index] = encoded
        elif name in ("id", "version_id", "delivery_id", "key_id"):
            segments[index] = values["ids"].get(segments[index - 1], "1")
        elif name == "version" and segments[index - 1] == "policies":
            segments[index] = "1"
        else:
            segments[index] = values[name]
    return "/".join(segments)


@pytest.fixture
def demo(db, settings):
    """The demo project (seed_demo) and a webhook with a delivery, seen by the project's admin (key and
    session): every path parameter names a real row."""
    settings.TOLLGATE_THROTTLE_USER = "1000000/min"
    call_command("seed_demo", stdout=io.StringIO())
    admin = User.objects.get(username="admin")
    project = Project.objects.get(slug=PROJECT)
    webhook, _ = webhook_create(
        actor=Principal(admin), project=project, url="https://receiver.example.org/hook", actions=["model.created"]
    )
    webhook_test(actor=Principal(admin), webhook=webhook)
    _, raw_key = api_key_issue(
        actor=Principal(admin), owner=admin, project=project, name="hostile", read_only=False, expires_at=None
    )
    client = Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    client.force_login(admin)
    return client, _real_values(admin)


def _resolves(path: str) -> bool:
    try:
        resolve(path)
    except Resolver404:
        return False
    return True


def _row_counts() -> dict[str, int]:
    return {
        model._meta.label: model.objects.count()
        for model in apps.get_models()
        if model._meta.app_label in ("governance", "monitoring", "controlplane") and model is not AccessLogEntry
    }


def _requests(values: dict):
    """(what, method, url) for every operation: each path parameter hostile in turn, then each documented
    query parameter (and an undocumented one, and a parameter name) hostile on the real path; every hostile
    value each time."""
    for method, template, path_parameters, query_parameters in _operations():
        operation = f"{method.upper()} {template}"
        real_path = _fill(template, values)
        for label, raw in HOSTILE_VALUES.items():
            encoded = quote(raw, safe="")
            for name in path_parameters:
                yield f"{operation} path {name}={label}", method, _fill(template, values, name, encoded)
            for name in [*query_parameters, "unknown"]:
                yield f"{operation} query {name}={label}", method, f"{real_path}?{name}={encoded}"
            yield f"{operation} query name {label}", method, f"{real_path}?{encoded}=1"


@pytest.mark.postgres
def test_bad_characters_anywhere_in_the_url_are_a_400_that_changes_nothing(demo):
    client, values = demo
    unresolved = [template for _, template, _, _ in _operations() if not _resolves(_fill(template, values))]
    assert unresolved == [], "the real-looking values must fit every route"
    before, logged_before = _row_counts(), AccessLogEntry.objects.filter(status=400).count()
    failures, sent, logged = [], 0, 0
    for what, method, url in _requests(values):
        response = client.generic(method.upper(), url, b"{}", content_type="application/json")
        sent += 1
        logged += urlsplit(url).path not in UNLOGGED_PATHS
        body = response.json() if response.get("Content-Type") == "application/json" else None
        if response.status_code != 400 or body is None or body["error"]["code"] != "bad_request":
            failures.append(f"{what}: {response.status_code} {response.content[:120]!r}")
        elif set(body) != {"error"} or set(body["error"]) != {"code", "message", "details"}:
            failures.append(f"{what}: not the one error shape: {body}")
    assert failures == [], f"{len(failures)} of {sent} hostile URLs:\n" + "\n".join(failures[:60])
    assert sent > 2000
    assert _row_counts() == before
    # Every refusal is in the access log, its path's control characters escaped.
    assert AccessLogEntry.objects.filter(status=400).count() - logged_before == logged
    assert AccessLogEntry.objects.filter(path="/api/v1/projects/fraud-detection/models/a\\x00b/").exists()
