import re
import tempfile
import uuid
from urllib.parse import unquote_to_bytes

from django.conf import settings
from django.core.handlers.wsgi import LimitedStream

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


# C0 and C1 control characters and DEL: no path or query value of this API holds one, and PostgreSQL refuses
# NUL in text outright.
_CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f]")
# Django hands views the path with each byte that is not UTF-8 percent-encoded again (``%FF``); no route
# accepts a percent sign, so one of these in the decoded path is such a byte.
_REPERCENTED_BYTE = re.compile("%[89A-F][0-9A-F]")


def _url_problem(request) -> str | None:
    """Why the request's path or query string is refused, or None."""
    if _REPERCENTED_BYTE.search(request.path_info):
        return "path is not valid UTF-8"
    if _CONTROL_CHARACTERS.search(request.path_info):
        return "path contains a control character"
    # WSGI hands the query string over undecoded, its bytes as Latin-1 characters.
    try:
        query = unquote_to_bytes(request.META.get("QUERY_STRING", "").encode("latin-1").replace(b"+", b" "))
        text = query.decode("utf-8")
    except UnicodeError:
        return "query string is not valid UTF-8"
    if _CONTROL_CHARACTERS.search(text):
        return "query string contains a control character"
    return None


class UrlCharactersMiddleware:
    """400 for a path or query string that is not UTF-8 or holds a control character (NUL, say), before any
    view, filter or query sees it: every route is covered at once."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        problem = _url_problem(request)
        if problem:
            return error_response(400, "bad_request", f"The URL's {problem}.")
        return self.get_response(request)


_COPY_BLOCK_BYTES = 64 * 1024


def _body_limit(request) -> int:
    multipart = request.content_type == "multipart/form-data"
    return settings.TOLLGATE_MAX_UPLOAD_BYTES if multipart else settings.TOLLGATE_MAX_JSON_BODY_BYTES


class BodySizeLimitMiddleware:
    """413 before the body is read: JSON bodies and multipart uploads have separate limits.

    A chunked body has no Content-Length, and Django reads a body without one as empty. This reads it here, up
    to the same limit, into a spooled temporary file (in memory up to ``FILE_UPLOAD_MAX_MEMORY_SIZE``, on disk
    beyond), and hands it on with its length, so the views see it whole. A body whose length the server cannot
    find out (another transfer coding, a server that does not end the input at the last chunk) is a 411."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "HTTP_TRANSFER_ENCODING" in request.META:
            return self._chunked(request, _body_limit(request))
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return error_response(400, "bad_request", "Content-Length is not a number.")
        if length:
            limit = _body_limit(request)
            if length > limit:
                return error_response(
                    413,
                    "payload_too_large",
                    f"The request body is {length} bytes; the limit for this kind of body is {limit} bytes.",
                )
        return self.get_response(request)

    def _chunked(self, request, limit: int):
        coding = request.META["HTTP_TRANSFER_ENCODING"].strip().lower()
        # PEP 3333 lets a server hand over the raw socket; "input terminated" says it ends at the last chunk.
        if coding != "chunked" or not request.META.get("wsgi.input_terminated"):
            return error_response(
                411,
                "length_required",
                f"A request body sent with Transfer-Encoding: {coding[:40]} cannot be read here; send it with a "
                "Content-Length header.",
            )
        body = tempfile.SpooledTemporaryFile(
            max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, dir=settings.FILE_UPLOAD_TEMP_DIR
        )
        try:
            try:
                size = _copy(request.META["wsgi.input"], body, limit + 1)
            except Exception:  # noqa: BLE001 - the server's chunk parser: a malformed chunk or a client gone
                return error_response(400, "bad_request", "The chunked request body could not be read.")
            if size > limit:
                return error_response(
                    413,
                    "payload_too_large",
                    f"The request body is more than {limit} bytes, the limit for this kind of body.",
                )
            body.seek(0)
            request.META["CONTENT_LENGTH"] = str(size)
            request._stream = LimitedStream(body, size)  # what WSGIRequest would have built from a Content-Length
            return self.get_response(request)
        finally:
            body.close()


def _copy(source, target, most: int) -> int:
    """Copy at most ``most`` bytes from ``source`` to ``target``; returns how many were copied."""
    copied = 0
    while copied < most:
        block = source.read(min(_COPY_BLOCK_BYTES, most - copied))
        if not block:
            break
        target.write(block)
        copied += len(block)
    return copied
