"""The access log (DESIGN §4): one row per API and console request, written after the response; and the
audit of every refusal.

Every entry names the principal and key, whatever the outcome: the Bearer key's check is kept on the Django
request (``governance.accounts.authentication.bearer_check``), and a request that no view authenticated (an
unknown URL, a middleware's refusal, a bad ``?format=``) has its key checked here, once. A refusal (status
400 and up) notes the ``code`` of its error body in ``detail``, and a refused key the prefix it named.
Otherwise one INSERT: the URL match is on the request by then. A failed write is logged and the response goes
out regardless -- the access log must never take the API down with it.
"""

import functools
import json
import logging
import re

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from controlplane.api.errors import REFUSAL_ATTRIBUTE
from governance.accounts.access import Principal
from governance.accounts.authentication import bearer_check
from governance.accounts.models import ApiKey, Project
from governance.audit.models import AccessLogEntry
from governance.audit.services import audit_denied

log = logging.getLogger(__name__)

UNLOGGED_PATHS = ("/healthz", "/readyz")
DETAIL_ATTRIBUTE = "_tollgate_access_detail"


def access_log_mark(request, detail: str) -> None:
    """Attach a note (a failed login, say) to the access log entry this request will produce."""
    setattr(request, DETAIL_ATTRIBUTE, detail[:200])


_CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f]")


def _printable(text: str) -> str:
    """Control characters as ``\\xNN``: a refused hostile path is still logged (PostgreSQL refuses NUL)."""
    return _CONTROL_CHARACTERS.sub(lambda match: f"\\x{ord(match[0]):02x}", text)


def _principal(request):
    """The authenticated user and key. A Bearer key decides alone (DRF tries it before the session); else the
    session user, which DRF or the console view has already loaded."""
    check = bearer_check(request)
    if check is not None:
        return (check.key.owner, check.key) if check.key is not None else (None, None)
    user = getattr(request, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return None, None
    key = getattr(request, "auth", None)
    return user, key if isinstance(key, ApiKey) else None


def _object(match) -> str:
    """The URL name and the ids in its kwargs (the project is a column of its own)."""
    if match is None:
        return ""
    ids = " ".join(f"{name}={value}" for name, value in match.kwargs.items() if name != "project")
    return f"{match.view_name} {ids}".strip()[:200]


class AccessLogMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.static_prefix = "/" + settings.STATIC_URL.lstrip("/") if settings.STATIC_URL else None

    def __call__(self, request):
        started = timezone.now()
        response = self.get_response(request)
        path = request.path_info
        if path in UNLOGGED_PATHS or (self.static_prefix and path.startswith(self.static_prefix)):
            return response
        try:
            self._write(request, response, started)
        except Exception:  # noqa: BLE001 - never break the response over its log line
            log.exception("access log: could not record %s %s", request.method, path[:200])
        return response

    def _write(self, request, response, started) -> None:
        user, key = _principal(request)
        match = getattr(request, "resolver_match", None)
        row = dict(
            at=started,
            principal_id=user.pk if user else None,
            principal_name=user.get_username()[:200] if user else "",
            key_prefix=key.prefix if key else "",
            method=(request.method or "")[:10],
            path=_printable(request.path)[:500],
            project_slug=str(match.kwargs.get("project", ""))[:64] if match else "",
            object=_object(match),
            status=response.status_code,
            request_id=getattr(request, "request_id", "")[:64],
            client_address=getattr(request, "client_address", "")[:64],
            detail=_detail(request, response),
        )
        if connection.in_atomic_block:
            # Inside someone's transaction (ATOMIC_REQUESTS, tests): a savepoint keeps a failed insert from
            # poisoning it, and the transaction's commit stays synchronous.
            with transaction.atomic():
                _insert(row, asynchronous=False)
        else:
            _insert(row, asynchronous=connection.vendor == "postgresql")


def _detail(request, response) -> str:
    """The request's note, then for a refusal the ``code`` of its error body and the prefix of a refused key."""
    parts = [getattr(request, DETAIL_ATTRIBUTE, "")]
    if response.status_code >= 400:
        parts.append(_error_field(response, "code"))
        check = bearer_check(request)
        if check is not None and check.key is None and check.presented_prefix:
            parts.append(f"key={check.presented_prefix}")
    return " ".join(part for part in parts if part)[:200]


class RefusalAuditMiddleware:
    """Every 403 to an authenticated principal is an ``access.denied`` audit event, whatever refused it: a
    permission class (a read-only key), a service's ``Forbidden``, Django itself (CSRF). Written after the
    view, outside any transaction it opened, in the chain of the project the refusal names, else of the URL's
    project when the caller belongs to it, else in the system chain."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code == 403:
            self._audit(request, response)
        return response

    def _audit(self, request, response) -> None:
        try:
            user, key = _principal(request)
        except Exception:  # noqa: BLE001 - a key no view checked, and the database failed: the 403 still goes out
            log.exception("refusal audit: could not identify the caller of %s %s", request.method, request.path[:200])
            return
        if user is None:
            return
        actor = Principal(user, key)
        reason, project = getattr(request, REFUSAL_ATTRIBUTE, None) or (_message(response), None)
        if project is None:
            project = _url_project(request, actor)
        audit_denied(actor=actor, project=project, operation=f"{request.method} {request.path}", reason=reason)


ERROR_BODY_MAX_BYTES = 64 * 1024  # error bodies are small; anything larger is not read back


def _error_field(response, field: str) -> str:
    """A field of the response's error body (``{"error": {...}}``), or "" when it has none."""
    if response.streaming or response.get("Content-Type") != "application/json":
        return ""
    if len(response.content) > ERROR_BODY_MAX_BYTES:
        return ""
    try:
        return str(json.loads(response.content)["error"][field])
    except (ValueError, KeyError, TypeError):
        return ""


def _message(response) -> str:
    """The error message of a 403 that did not say why through the exception handler."""
    return _error_field(response, "message") or response.reason_phrase


def _url_project(request, actor: Principal) -> Project | None:
    match = getattr(request, "resolver_match", None)
    slug = match.kwargs.get("project") if match else None
    if not slug:
        return None
    try:
        return Project.objects.filter(slug=slug, pk__in=actor.project_ids()).first()
    except Exception:  # noqa: BLE001 - the refusal is audited regardless, in the system chain
        log.exception("refusal audit: could not look up project %r", slug)
        return None


@functools.cache
def _insert_statement(vendor: str, asynchronous: bool):
    fields = [f for f in AccessLogEntry._meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    table = quote(AccessLogEntry._meta.db_table)
    columns = ", ".join(quote(f.column) for f in fields)
    values = ", ".join(["%s"] * len(fields))
    if asynchronous:
        # One statement, its own transaction, committed without waiting for the WAL flush (the setting is
        # local to this statement's transaction). A PostgreSQL crash may lose the last fraction of a second
        # of access log rows; the audit chain keeps synchronous commits.
        sql = (
            "WITH async AS (SELECT set_config('synchronous_commit', 'off', true)) "
            f"INSERT INTO {table} ({columns}) SELECT {values} FROM async"
        )
    else:
        sql = f"INSERT INTO {table} ({columns}) VALUES ({values})"
    return sql, fields


def _insert(row: dict, *, asynchronous: bool) -> None:
    """``INSERT`` of ``row`` (a value per column's attribute name) without a model instance and ``Model.save()``'s
    machinery (signals, fetching the new id back). Values still go through each field's own conversion, so SQLite
    and PostgreSQL store what the ORM would."""
    sql, fields = _insert_statement(connection.vendor, asynchronous)
    params = [f.get_db_prep_save(row[f.attname], connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
