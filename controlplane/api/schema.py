"""OpenAPI: document the one error shape and the error statuses every operation can answer."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension

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

COMMON = {
    "401": "Not authenticated: send `Authorization: Bearer <api key>`.",
    "403": "Authenticated, but the role or key does not allow this.",
    "404": "No such object in a project where you hold a role.",
    "429": "Too many requests; see `Retry-After`.",
    "503": "The database is unavailable (`database_unavailable`); see `Retry-After`.",
}
WRITE = {
    "400": "The request is not valid; `details` names each field.",
    "409": "Conflicts with the current state.",
    "411": "A body in a transfer coding that cannot be read: send it with `Content-Length`.",
    "413": "The body is too large.",
    "415": "Unsupported content type: send JSON.",
}


def add_error_responses(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            responses = operation.setdefault("responses", {})
            codes = dict(COMMON)
            if method in {"post", "put", "patch"}:
                codes.update(WRITE)
            for code, description in codes.items():
                responses.setdefault(code, {"description": description, "content": ref})
    return result


class BearerKeyScheme(OpenApiAuthenticationExtension):
    """Documents ``Authorization: Bearer <api key>`` as the ``bearerAuth`` scheme."""

    target_class = "controlplane.api.authentication.BearerKeyAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "A Tollgate API key (`tg_...`)."}
