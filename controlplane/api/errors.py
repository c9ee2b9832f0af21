"""One error shape everywhere: ``{"error": {"code": ..., "message": ..., "details": [...]}}``.

Services raise ``controlplane.exceptions.DomainError`` (or a subclass), mapped here to a status; DRF's own
exceptions and Django's 404/500 handlers are reshaped here, so a client parses every error the same way. A
lost or refused database connection is a 503 ``database_unavailable`` with ``Retry-After``, from DRF views
and from everything else (handler500).
"""

import logging
import sys

import psycopg
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.http import JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from controlplane.exceptions import Conflict, DomainError, Forbidden, Gone, NotFound, PayloadTooLarge, TooManyRequests

log = logging.getLogger(__name__)

DATABASE_RETRY_AFTER_SECONDS = 5
# SQLSTATEs of a server that is going away or not there yet: admin_shutdown, crash_shutdown, cannot_connect_now
# ("the database system is starting up / shutting down"). Class 08 is a connection exception.
_UNAVAILABLE_SQLSTATES = {"57P01", "57P02", "57P03"}


# The status each domain error answers with; a subclass not named here answers as its nearest named base.
DOMAIN_ERROR_STATUSES = {
    TooManyRequests: status.HTTP_429_TOO_MANY_REQUESTS,
    PayloadTooLarge: status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    Gone: status.HTTP_410_GONE,
    Conflict: status.HTTP_409_CONFLICT,
    NotFound: status.HTTP_404_NOT_FOUND,
    Forbidden: status.HTTP_403_FORBIDDEN,
    DomainError: status.HTTP_400_BAD_REQUEST,
}


def domain_error_status(exc: DomainError) -> int:
    return next(code for cls, code in DOMAIN_ERROR_STATUSES.items() if isinstance(exc, cls))


def error_body(code: str, message: str, details: list | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or []}}


def error_response(status_code: int, code: str, message: str, details: list | None = None) -> JsonResponse:
    """For plain Django code paths (middleware, URL-level handlers) that have no DRF response."""
    return JsonResponse(error_body(code, message, details), status=status_code)


def _flatten(detail, field: str | None = None) -> list[dict]:
    """DRF's nested validation errors as a flat list of ``{"field", "message", "code"}``; list items are
    named ``field[i]`` (DRF reports them as dicts keyed by the index, or as lists of per-item dicts)."""

    def join(name) -> str | None:
        if name is None or name == "non_field_errors":
            return field
        if isinstance(name, int):
            return f"{field or ''}[{name}]"
        return f"{field}.{name}" if field else str(name)

    if isinstance(detail, dict):
        return [item for key, value in detail.items() for item in _flatten(value, join(key))]
    if isinstance(detail, list):
        if any(isinstance(value, dict | list) for value in detail):
            return [item for index, value in enumerate(detail) if value for item in _flatten(value, join(index))]
        return [item for value in detail for item in _flatten(value, field)]
    return [{"field": field, "message": str(detail), "code": getattr(detail, "code", "invalid")}]


REFUSAL_ATTRIBUTE = "_tollgate_refusal"


def _note_refusal(request, message: str, project=None) -> None:
    """Tell the refusal audit (governance.audit.middleware.RefusalAuditMiddleware, which audits every 403 after
    the view) why this request was refused and in which project."""
    if request is not None:
        setattr(getattr(request, "_request", request), REFUSAL_ATTRIBUTE, (message, project))


def _database_unavailable(exc: BaseException | None) -> bool:
    """A lost or refused PostgreSQL connection, as opposed to an error of one statement (a lock timeout, a
    deadlock, a cancelled query: those keep their own answers)."""
    if isinstance(exc, InterfaceError):
        return True  # Django's "connection already closed"
    if not isinstance(exc, OperationalError) or not isinstance(exc.__cause__, psycopg.Error):
        return False
    sqlstate = exc.__cause__.sqlstate
    return sqlstate is None or sqlstate.startswith("08") or sqlstate in _UNAVAILABLE_SQLSTATES


def _lost_during_commit(exc: BaseException) -> bool:
    """Whether the connection broke while COMMIT was on its way: the server may have committed or not."""
    traceback = exc.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_code is BaseDatabaseWrapper._commit.__code__:
            return True
        traceback = traceback.tb_next
    return False


def _database_unavailable_body(exc: BaseException) -> dict:
    log.warning("database unavailable: %s: %s", type(exc).__name__, str(exc).strip()[:300])
    if _lost_during_commit(exc):
        return error_body(
            "database_unavailable",
            "The database connection was lost while this change was being committed: it may or may not have "
            "been saved. Check its state before you send it again.",
            [{"code": "commit_outcome_unknown"}],
        )
    return error_body(
        "database_unavailable",
        f"The database is unavailable. Try again in {DATABASE_RETRY_AFTER_SECONDS} seconds.",
    )


def exception_handler(exc, context):
    if _database_unavailable(exc):
        return Response(
            _database_unavailable_body(exc),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, DomainError):
        status_code = domain_error_status(exc)
        if status_code == status.HTTP_403_FORBIDDEN:
            _note_refusal(context.get("request"), exc.message, exc.project)
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyRequests) else None
        return Response(error_body(exc.code, exc.message, exc.details), status=status_code, headers=headers)
    if isinstance(exc, RequestDataTooBig):
        return Response(
            error_body("payload_too_large", "The request body is larger than this endpoint accepts."),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.messages)

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a real bug: Django's handler500 answers with the same shape
    if isinstance(exc, exceptions.PermissionDenied):
        _note_refusal(context.get("request"), str(exc.detail))
    if isinstance(exc, exceptions.ValidationError):
        body = error_body("invalid", "The request is not valid.", _flatten(exc.detail))
    elif isinstance(exc, exceptions.UnsupportedMediaType):
        body = _unsupported_media_type(exc, context.get("request"))
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        code = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        if isinstance(code, dict | list):
            code = "error"
        body = error_body(code, str(detail))
    response.data = body
    return response


def _unsupported_media_type(exc: exceptions.UnsupportedMediaType, request) -> dict:
    """415 names the types the endpoint accepts (its parsers), and how an upload is sent where it takes one."""
    accepted = sorted({parser.media_type for parser in getattr(request, "parsers", None) or []})
    message = str(exc.detail)
    if accepted and message.startswith("Unsupported media type"):  # DRF's own, not a view's own reason
        message += f" This endpoint accepts {' or '.join(accepted)}"
        message += " (a file upload: curl -F file=@data.csv)." if "multipart/form-data" in accepted else "."
    return error_body("unsupported_media_type", message, [{"accepted": accepted}])


def handler400(request, exception=None):
    return error_response(400, "bad_request", "The request could not be understood.")


def handler403(request, exception=None):
    _note_refusal(request, str(exception or "") or "You may not do this.")
    return error_response(403, "permission_denied", "You may not do this.")


def handler404(request, exception=None):
    return error_response(404, "not_found", "Nothing is here.")


def handler500(request):
    """Django calls this while the exception is being handled (a view outside DRF, or any middleware: the
    session, the access log), so a lost database is a 503 here too."""
    exc = sys.exception()
    if _database_unavailable(exc):
        response = JsonResponse(_database_unavailable_body(exc), status=503)
        response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
        return response
    return error_response(500, "server_error", "Something went wrong on our side; it has been logged.")
