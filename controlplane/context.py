"""What the current request is, for code far from the view (the audit trail): its id and client address."""

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    client_address: str = ""


current_request: ContextVar[RequestContext] = ContextVar("current_request", default=RequestContext())  # noqa: B039 - frozen
