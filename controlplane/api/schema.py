"""OpenAPI: what ``/api/schema/`` and ``/api/docs/`` say about each operation.

``AutoSchema`` (the default schema class) gives every operation a summary (``SUMMARIES``, or an
``extend_schema(summary=...)`` beside the view), a tag per concern (``concern()``, from the path; the tags
are described in ``SPECTACULAR_SETTINGS["TAGS"]``), a description from the view's own docstrings (never a
base class's notes for developers), its query parameters (the view's ``filterset_class``, pagination and
formats: the list ``controlplane.api.filters`` accepts), and every error status it can answer, in the one
error shape, derived from the view: its authentication, throttles, method, request body, renderers and
query parameters. A status only some views answer (410) is named by the view: ``error_statuses = {410:
"why"}`` for all its methods, or ``{"post": {410: "why"}}`` for one.

Adding a route: add its summary to ``SUMMARIES`` and, for a new first path segment, its concern to
``_CONCERNS``; ``tests/controlplane/test_openapi.py`` fails until both are there, and the statuses the suite
observes (``tests/schema_statuses.py``) fail the run when the route answers a status its schema omits.
"""

import inspect
import re

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "example": "not_found"},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object"}},
            },
        }
    },
}
ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}

# The concern of a path (its tag): its first segment after /api/v1/ (and after projects/{project}/ for a
# project's resources); a few paths inside another concern's collection go by their last segment.
_CONCERNS = {
    "": "accounts",
    "me": "accounts",
    "users": "accounts",
    "api-keys": "accounts",
    "projects": "accounts",
    "members": "accounts",
    "service-accounts": "accounts",
    "datasets": "datasets",
    "models": "models",
    "lineage": "lineage",
    "environments": "promotion",
    "policies": "promotion",
    "exceptions": "promotion",
    "promotion-requests": "promotion",
    "deployments": "deployments",
    "monitors": "monitoring",
    "batches": "monitoring",
    "check-runs": "monitoring",
    "alerts": "monitoring",
    "data-policy": "monitoring",
    "audit-events": "audit",
    "access-log": "audit",
    "webhooks": "webhooks",
    "healthz": "health",
    "readyz": "health",
}
_BY_LAST_SEGMENT = {"gates": "promotion", "lineage.prov.json": "lineage"}

SUMMARIES = {
    "GET /api/v1/me/": "Who am I: the caller, the key and the roles per project",
    "GET /api/v1/users/": "List users (staff)",
    "POST /api/v1/users/": "Create a user (staff)",
    "GET /api/v1/api-keys/": "List your API keys",
    "POST /api/v1/api-keys/": "Create an API key (the secret is shown once)",
    "GET /api/v1/api-keys/{id}/": "Get one of your API keys",
    "POST /api/v1/api-keys/{id}/revoke/": "Revoke one of your API keys",
    "GET /api/v1/projects/": "List the projects where you hold a role",
    "POST /api/v1/projects/": "Create a project and name its first admin (staff)",
    "GET /api/v1/projects/{project}/": "Get a project",
    "PATCH /api/v1/projects/{project}/": "Update a project's name or description",
    "GET /api/v1/projects/{project}/members/": "List a project's role bindings",
    "POST /api/v1/projects/{project}/members/": "Grant a role (admins)",
    "GET /api/v1/projects/{project}/members/{id}/": "Get a role binding",
    "POST /api/v1/projects/{project}/members/{id}/revoke/": "Revoke a role binding (admins)",
    "GET /api/v1/projects/{project}/service-accounts/": "List a project's service accounts",
    "POST /api/v1/projects/{project}/service-accounts/": "Create a service account and its first key (admins)",
    "GET /api/v1/projects/{project}/service-accounts/{id}/": "Get a service account",
    "GET /api/v1/projects/{project}/service-accounts/{id}/keys/": "List a service account's keys",
    "POST /api/v1/projects/{project}/service-accounts/{id}/keys/": "Create a key for a service account (admins)",
    "POST /api/v1/projects/{project}/service-accounts/{id}/keys/{key_id}/revoke/": "Revoke a service account's key",
    "GET /api/v1/projects/{project}/datasets/": "List datasets",
    "POST /api/v1/projects/{project}/datasets/": "Register a dataset",
    "GET /api/v1/projects/{project}/datasets/{id}/": "Get a dataset",
    "PATCH /api/v1/projects/{project}/datasets/{id}/": "Update a dataset's description, licence or classification",
    "GET /api/v1/projects/{project}/datasets/{id}/versions/": "List a dataset's versions",
    "POST /api/v1/projects/{project}/datasets/{id}/versions/": "Register a dataset version by URI (JSON) or upload one",
    "GET /api/v1/projects/{project}/datasets/{id}/versions/{version_id}/": "Get a dataset version",
    "PATCH /api/v1/projects/{project}/datasets/{id}/versions/{version_id}/": "Update a dataset version's datasheet",
    "GET /api/v1/projects/{project}/datasets/{id}/versions/{version_id}/download/": "Download a dataset version",
    "GET /api/v1/projects/{project}/models/": "List models",
    "POST /api/v1/projects/{project}/models/": "Create a model",
    "GET /api/v1/projects/{project}/models/{model}/": "Get a model",
    "PATCH /api/v1/projects/{project}/models/{model}/": "Update a model's description or tags",
    "GET /api/v1/projects/{project}/models/{model}/versions/": "List a model's versions",
    "POST /api/v1/projects/{project}/models/{model}/versions/": "Register a model version",
    "GET /api/v1/projects/{project}/models/{model}/versions/{version}/": "Get a model version",
    "PATCH /api/v1/projects/{project}/models/{model}/versions/{version}/": "Update a version's description or tags",
    "POST /api/v1/projects/{project}/models/{model}/versions/{version}/archive/": "Archive a model version",
    "GET /api/v1/projects/{project}/models/{model}/versions/{version}/metrics/": "List a version's metrics",
    "POST /api/v1/projects/{project}/models/{model}/versions/{version}/metrics/": "Add metrics to a version",
    "GET /api/v1/projects/{project}/models/{model}/versions/{version}/datasets/": "List a version's dataset links",
    "POST /api/v1/projects/{project}/models/{model}/versions/{version}/datasets/": "Link dataset versions to a version",
    "GET /api/v1/projects/{project}/models/{model}/versions/{version}/model-card/": "Get a version's model card",
    "PUT /api/v1/projects/{project}/models/{model}/versions/{version}/model-card/": "Replace a version's model card",
    "PATCH /api/v1/projects/{project}/models/{model}/versions/{version}/model-card/": "Edit fields of a model card",
    "POST /api/v1/projects/{project}/models/{model}/versions/{version}/model-card/confirm-risk-tier/": (
        "Confirm a version's risk tier (governance officers)"
    ),
    "GET /api/v1/projects/{project}/models/{model}/versions/{version}/model-card/history/": "List a card's revisions",
    "GET /api/v1/projects/{project}/models/{model}/versions/{version}/gates/": "Dry-run the gates for an environment",
    "GET /api/v1/projects/{project}/models/{model}/versions/{version}/lineage.prov.json": (
        "Export a version's lineage as W3C PROV-JSON"
    ),
    "POST /api/v1/lineage": "Ingest an OpenLineage RunEvent (the clients' default path)",
    "POST /api/v1/lineage/": "Ingest an OpenLineage RunEvent",
    "GET /api/v1/lineage/": "Get the lineage graph around a node",
    "POST /api/v1/lineage/batch/": "Ingest several OpenLineage RunEvents",
    "GET /api/v1/projects/{project}/environments/": "List environments",
    "POST /api/v1/projects/{project}/environments/": "Create an environment (admins)",
    "GET /api/v1/projects/{project}/environments/{name}/": "Get an environment",
    "DELETE /api/v1/projects/{project}/environments/{name}/": "Delete an environment (admins)",
    "GET /api/v1/projects/{project}/policies/": "List the policy's published versions",
    "POST /api/v1/projects/{project}/policies/": "Publish a policy version (governance officers)",
    "GET /api/v1/projects/{project}/policies/{version}/": "Get a policy version (or `current`)",
    "GET /api/v1/projects/{project}/exceptions/": "List policy exceptions",
    "POST /api/v1/projects/{project}/exceptions/": "Grant a policy exception (governance officers)",
    "POST /api/v1/projects/{project}/exceptions/{id}/revoke/": "Revoke a policy exception",
    "GET /api/v1/promotion-requests/": "List promotion requests across your projects (the officer's queue)",
    "GET /api/v1/projects/{project}/promotion-requests/": "List a project's promotion requests",
    "POST /api/v1/projects/{project}/promotion-requests/": "Request a promotion",
    "GET /api/v1/projects/{project}/promotion-requests/{id}/": "Get a promotion request with its gates",
    "POST /api/v1/projects/{project}/promotion-requests/{id}/approve/": "Approve a promotion request",
    "POST /api/v1/projects/{project}/promotion-requests/{id}/reject/": "Reject a promotion request",
    "POST /api/v1/projects/{project}/promotion-requests/{id}/withdraw/": "Withdraw a promotion request",
    "POST /api/v1/projects/{project}/promotion-requests/{id}/execute/": "Execute an approved promotion request",
    "GET /api/v1/projects/{project}/deployments/": "List deployments",
    "GET /api/v1/projects/{project}/deployments/history/": "List deployment history (or what ran at a moment)",
    "GET /api/v1/projects/{project}/deployments/{model}/{environment}/": "Get the approved artifact for a deployment",
    "POST /api/v1/projects/{project}/deployments/{model}/{environment}/verify/": "Verify an artifact may run here",
    "POST /api/v1/projects/{project}/deployments/{model}/{environment}/suspend/": "Suspend a deployment",
    "POST /api/v1/projects/{project}/deployments/{model}/{environment}/resume/": "Resume a suspended deployment",
    "GET /api/v1/projects/{project}/monitors/": "List monitors",
    "POST /api/v1/projects/{project}/monitors/": "Create a monitor",
    "GET /api/v1/projects/{project}/monitors/{id}/": "Get a monitor and its revisions",
    "PATCH /api/v1/projects/{project}/monitors/{id}/": "Change a monitor's configuration, or pause or resume it",
    "GET /api/v1/projects/{project}/monitors/{id}/series/": "Get a monitor's scores per batch over time",
    "GET /api/v1/projects/{project}/batches/": "List production batches",
    "POST /api/v1/projects/{project}/batches/": "Upload or register a production batch",
    "GET /api/v1/projects/{project}/batches/{id}/": "Get a batch and its check runs",
    "GET /api/v1/projects/{project}/batches/{id}/download/": "Download a batch",
    "POST /api/v1/projects/{project}/batches/{id}/labels/": "Upload labels for a batch",
    "GET /api/v1/projects/{project}/check-runs/": "List check runs",
    "POST /api/v1/projects/{project}/check-runs/": "Run a monitor now",
    "GET /api/v1/projects/{project}/check-runs/{id}/": "Get a check run and its results",
    "GET /api/v1/projects/{project}/check-runs/{id}/report.html": "Get a check run's Evidently report (HTML)",
    "GET /api/v1/projects/{project}/check-runs/{id}/report.json": "Get a check run's Evidently report (JSON)",
    "GET /api/v1/projects/{project}/alerts/": "List alerts",
    "POST /api/v1/projects/{project}/alerts/{id}/acknowledge/": "Acknowledge an alert",
    "GET /api/v1/projects/{project}/data-policy/": "Get the project's raw-data policy",
    "PATCH /api/v1/projects/{project}/data-policy/": "Change retention and who may download raw data (admins)",
    "GET /api/v1/projects/{project}/audit-events/": "List or export the audit chain",
    "GET /api/v1/projects/{project}/audit-events/{sequence}/": "Get an audit event with its hashed bytes",
    "POST /api/v1/projects/{project}/audit-events/verify/": "Verify the audit chain",
    "GET /api/v1/projects/{project}/audit-events/verify/{id}/": "Get the result of an audit chain verification",
    "GET /api/v1/projects/{project}/access-log/": "List or export the access log",
    "GET /api/v1/projects/{project}/webhooks/": "List webhooks",
    "POST /api/v1/projects/{project}/webhooks/": "Create a webhook (the signing secret is shown once)",
    "GET /api/v1/projects/{project}/webhooks/{id}/": "Get a webhook",
    "PATCH /api/v1/projects/{project}/webhooks/{id}/": "Update a webhook",
    "DELETE /api/v1/projects/{project}/webhooks/{id}/": "Delete a webhook",
    "POST /api/v1/projects/{project}/webhooks/{id}/test/": "Send a test event to a webhook",
    "GET /api/v1/projects/{project}/webhooks/{id}/deliveries/": "List a webhook's deliveries",
    "GET /api/v1/projects/{project}/webhooks/{id}/deliveries/{delivery_id}/": "Get a delivery with its payload",
    "POST /api/v1/projects/{project}/webhooks/{id}/deliveries/{delivery_id}/redeliver/": "Redeliver a delivery",
    "GET /healthz": "Liveness: the process answers",
    "GET /readyz": "Readiness: the database and the broker answer",
}

WRITE_METHODS = {"POST", "PUT", "PATCH"}
# References to the project's own design notes, which a reader of the API docs does not have.
_INTERNAL_REFERENCES = re.compile(
    r"\s*\((?:DESIGN|STYLE)(?:\.md)?\s*§[^)]*\)|\s*(?:DESIGN|STYLE)(?:\.md)?\s*§\s*[\d, §]+"
)


def concern(path: str) -> str | None:
    rest = path.removeprefix("/api/v1/").lstrip("/")
    if rest.startswith("projects/{project}/"):
        rest = rest.removeprefix("projects/{project}/")
    segments = [segment for segment in rest.split("/") if segment]
    if segments and segments[-1] in _BY_LAST_SEGMENT:
        return _BY_LAST_SEGMENT[segments[-1]]
    return _CONCERNS.get(segments[0] if segments else "")


def _own_docstring(obj) -> str:
    """A class's own docstring (not its bases'), or a function's."""
    doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if doc else ""


# The shared base views (governance.accounts.api.base) count as framework: their docstrings are for developers.
_FRAMEWORK_MODULES = (
    "controlplane.api.",
    "governance.accounts.api.base",
    "rest_framework.",
    "django.",
    "drf_spectacular.",
)


def _is_own(obj) -> bool:
    """Defined by one of the project's views, not by the framework or the shared API bases."""
    return not (getattr(obj, "__module__", "") or "").startswith(_FRAMEWORK_MODULES)


def _for_readers(text: str) -> str:
    """reStructuredText literals as Markdown code, without the references to the design notes."""
    return _INTERNAL_REFERENCES.sub("", text.replace("``", "`"))


class AutoSchema(SpectacularAutoSchema):
    def get_summary(self):
        return SUMMARIES.get(f"{self.method} {self.path}")

    def get_tags(self):
        found = concern(self.path)
        return [found] if found else super().get_tags()

    def get_description(self):
        """The handler's docstring, else the nearest docstring of the view's own classes: never one of the
        framework's or of the shared bases (``governance.accounts.api.base``), which are notes for developers."""
        method = getattr(type(self.view), self.method.lower(), None)
        doc = _own_docstring(method) if method is not None and _is_own(method) else ""
        for cls in type(self.view).__mro__:
            if doc or not _is_own(cls):
                break
            doc = _own_docstring(cls)
        return _for_readers(doc)

    def get_filter_backends(self):
        """A GET's filters are documented wherever the view has a FilterSet, list or not (the series, the gates)."""
        if self.method == "GET" and getattr(self.view, "filterset_class", None):
            return getattr(self.view, "filter_backends", [])
        return super().get_filter_backends()

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is not None:
            responses = operation.setdefault("responses", {})
            for status, description in self.error_statuses(operation).items():
                responses.setdefault(str(status), {"description": description, "content": ERROR_CONTENT})
            for status, response in self.redirect_statuses().items():
                responses.setdefault(str(status), response)
        return operation

    # Errors -------------------------------------------------------------------------------------------

    def _is_public(self) -> bool:
        permissions = getattr(self.view, "permission_classes", [])
        return not getattr(self.view, "authentication_classes", None) or all(p is AllowAny for p in permissions)

    def _takes_query(self) -> bool:
        return self.method == "GET" and (
            getattr(self.view, "filterset_class", None) is not None or self._is_list_view()
        )

    def error_statuses(self, operation: dict) -> dict[int, str]:
        view, write = self.view, self.method in WRITE_METHODS
        statuses: dict[int, str] = {}
        if write:
            statuses[400] = "The request is not valid: the message says why and `details` names each field."
        elif self._takes_query():
            statuses[400] = (
                "A query parameter this operation does not take, one given twice, or an invalid value: the "
                "message names it."
            )
        else:
            statuses[400] = "The URL holds control characters or bytes that are not UTF-8."
        if not self._is_public():
            statuses[401] = "Not authenticated: send `Authorization: Bearer <api key>`."
            statuses[403] = (
                "Authenticated, but not allowed: the operation needs another role, the key is read-only, or it is "
                "pinned to another project. The message says which."
            )
            statuses[404] = (
                "No such object in a project where you hold a role (an object elsewhere is a 404, never a 403)"
                + (", or a page past the last one." if self._is_list_view() and self.method == "GET" else ".")
            )
        if type(view).perform_content_negotiation is APIView.perform_content_negotiation:  # else it never refuses
            renderers = ", ".join(sorted({renderer.media_type for renderer in view.renderer_classes}))
            statuses[406] = f"The `Accept` header admits none of the types this operation answers with: {renderers}."
        if write or self.method == "DELETE":
            statuses[409] = "Conflicts with the current state: the message says which."
        if write:
            statuses[411] = "A body in a transfer coding that cannot be read: send it with `Content-Length`."
            statuses[413] = "The body is larger than this kind of body may be."
            content = operation.get("requestBody", {}).get("content")
            if content:
                statuses[415] = f"Unsupported content type: send {' or '.join(sorted(content))}."
        if getattr(view, "throttle_classes", None):
            statuses[429] = "Too many requests; see `Retry-After`."
        statuses[503] = "The database is unavailable (`database_unavailable`); see `Retry-After`."
        for key, value in getattr(view, "error_statuses", {}).items():
            if isinstance(value, dict):
                if key.upper() == self.method:
                    statuses.update(value)
            else:
                statuses[key] = value
        return dict(sorted(statuses.items()))

    def redirect_statuses(self) -> dict[int, dict]:
        """Production settings redirect plain HTTP to HTTPS, except the probes (SECURE_REDIRECT_EXEMPT)."""
        if self._is_public():
            return {}
        return {301: {"description": "Sent over plain HTTP: the same URL over HTTPS (production settings)."}}


def add_error_component(result, generator, request, public):
    """The ``Error`` schema every error response refers to."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    return result


class BearerKeyScheme(OpenApiAuthenticationExtension):
    """Documents ``Authorization: Bearer <api key>`` as the ``bearerAuth`` scheme."""

    target_class = "governance.accounts.authentication.BearerKeyAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "A Tollgate API key (`tg_...`)."}
