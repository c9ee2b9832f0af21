"""The domain's errors: a rule was broken, and which kind of rule. Plain Python, no HTTP.

Services and selectors raise these; ``controlplane.api.errors.exception_handler`` (the one exception
handler) maps each class to the status the API answers with and renders the one error shape. The
``code`` is the machine-readable reason a client branches on; ``details`` a list of dicts.
"""


class DomainError(Exception):
    """A rule of the domain was broken: the request is not valid as it stands."""

    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, details: list | None = None, project=None):
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.details = details or []
        self.project = project  # where a refusal is audited (None: the URL's project, else the system chain)


class NotFound(DomainError):
    """Nothing is there, or the caller may not know that it is."""

    code = "not_found"


class Forbidden(DomainError):
    """The caller may not do this."""

    code = "permission_denied"


class Conflict(DomainError):
    """The thing's current state does not allow this."""

    code = "conflict"


class Gone(DomainError):
    """It was there and was deleted (under the project's retention, say)."""

    code = "gone"


class PayloadTooLarge(DomainError):
    """The input is larger than the limit that applies."""

    code = "payload_too_large"


class TooManyRequests(DomainError):
    """A bound on the caller's work was reached; ``retry_after`` is in seconds."""

    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after: int, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
