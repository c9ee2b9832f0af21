"""``Authorization: Bearer <api key>`` for programs. It is checked before the session (DESIGN §8).

The key is checked once per request and the outcome kept on the Django request (``bearer_check``): the
authenticator reads it, and so does the access log, which records the principal of every request whatever
its outcome -- also of those that no view authenticated (an unknown URL, a refusal by a middleware, a bad
``?format=``, which DRF negotiates before it authenticates).
"""

import re
from dataclasses import dataclass

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

KEYWORD = b"bearer"
BEARER_CHECK_ATTRIBUTE = "_tollgate_bearer_check"
_PRESENTED_PREFIX = re.compile(r"^tg_([0-9a-f]{8})_")


@dataclass(frozen=True)
class BearerCheck:
    """A Bearer header's outcome: the live key, or why it was refused (and the prefix it named, if any)."""

    key: object = None  # governance.models.ApiKey
    refusal: str = ""
    presented_prefix: str = ""


def _check(request) -> BearerCheck | None:
    parts = get_authorization_header(request).split()
    if not parts or parts[0].lower() != KEYWORD:
        return None
    if len(parts) != 2:
        return BearerCheck(refusal="Malformed Authorization header: use 'Bearer <api key>'.")
    try:
        raw_key = parts[1].decode("ascii")
    except UnicodeDecodeError:
        return BearerCheck(refusal="Invalid API key.")

    # Deferred (a start-up cycle): DRF imports this module when rest_framework.views loads, which may be
    # before the apps (and the models api_keys imports) are ready.
    from governance.accounts.services import api_key_authenticate

    key = api_key_authenticate(raw_key=raw_key)
    if key is None:
        presented = _PRESENTED_PREFIX.match(raw_key)
        return BearerCheck(refusal="Invalid API key.", presented_prefix=presented[1] if presented else "")
    return BearerCheck(key=key)


def bearer_check(request) -> BearerCheck | None:
    """The outcome of the request's Bearer header (None: it sent none), checked on first use and then kept
    on the underlying Django request, so the authenticator and the access log agree without a second lookup."""
    django_request = getattr(request, "_request", request)
    if not hasattr(django_request, BEARER_CHECK_ATTRIBUTE):
        setattr(django_request, BEARER_CHECK_ATTRIBUTE, _check(django_request))
    return getattr(django_request, BEARER_CHECK_ATTRIBUTE)


class BearerKeyAuthentication(BaseAuthentication):
    keyword = KEYWORD

    def authenticate(self, request):
        check = bearer_check(request)
        if check is None:
            return None
        if check.key is None:
            raise exceptions.AuthenticationFailed(check.refusal)
        return check.key.owner, check.key

    def authenticate_header(self, request):
        return 'Bearer realm="tollgate"'
