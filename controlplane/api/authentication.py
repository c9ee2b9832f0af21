"""``Authorization: Bearer <api key>`` for programs. It is checked before the session (DESIGN §8)."""

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header


class BearerKeyAuthentication(BaseAuthentication):
    keyword = b"bearer"

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header: use 'Bearer <api key>'.")
        try:
            raw_key = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid API key.") from None

        from governance.services.api_keys import api_key_authenticate

        key = api_key_authenticate(raw_key=raw_key)
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid API key.")
        return key.owner, key

    def authenticate_header(self, request):
        return 'Bearer realm="tollgate"'
