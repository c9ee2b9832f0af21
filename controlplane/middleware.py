import re
import uuid

from django.conf import settings

from controlplane.api.errors import error_response
from controlplane.context import RequestContext, current_request

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def client_address(request) -> str:
    """REMOTE_ADDR, or, behind ``TOLLGATE_PROXY_COUNT`` trusted proxies, the address they saw."""
    hops = settings.TOLLGATE_PROXY_COUNT
    if hops:
        forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if a.strip()]
        if len(forwarded) >= hops:
            return forwarded[-hops][:64]
    return request.META.get("REMOTE_ADDR", "")[:64]


class RequestIdMiddleware:
    """Gives each request an id (the caller's ``X-Request-ID`` when it is sane) for logs and the audit trail."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.client_address = client_address(request)
        token = current_request.set(RequestContext(request.request_id, request.client_address))
        try:
            response = self.get_response(request)
        finally:
            current_request.reset(token)
        response["X-Request-ID"] = request.request_id
        return response


class BodySizeLimitMiddleware:
    """413 before the body is read: JSON bodies and multipart uploads have separate limits."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return error_response(400, "bad_request", "Content-Length is not a number.")
        if length:
            multipart = request.content_type == "multipart/form-data"
            limit = settings.TOLLGATE_MAX_UPLOAD_BYTES if multipart else settings.TOLLGATE_MAX_JSON_BODY_BYTES
            if length > limit:
                return error_response(
                    413,
                    "payload_too_large",
                    f"The request body is {length} bytes; the limit for this kind of body is {limit} bytes.",
                )
        return self.get_response(request)
