"""Reads of the audit trail and the access log, scoped to the principal: the project's auditors and admins."""

from django.db.models import QuerySet

from controlplane.exceptions import NotFound
from governance.accounts.access import Principal, require_role
from governance.accounts.models import Role
from governance.audit.models import AccessLogEntry, AuditEvent, AuditVerification, chain_of

# --- The auditor's view (DESIGN §4 and §8): the project's audit chain and access log. ---

AUDIT_READERS = (Role.AUDITOR, Role.ADMIN)


def audit_event_list(*, principal: Principal, project) -> QuerySet[AuditEvent]:
    """The project's chain in sequence order; its auditors and admins only (403 for other members)."""
    require_role(principal, project, AUDIT_READERS, action="read the audit trail", write=False)
    return AuditEvent.objects.filter(chain=chain_of(project.pk), project=project).order_by("sequence")


def audit_event_get(*, principal: Principal, project, sequence: int) -> AuditEvent:
    event = audit_event_list(principal=principal, project=project).filter(sequence=sequence).first()
    if event is None:
        raise NotFound(f"No audit event #{sequence} in this project.")
    return event


def access_log_list(*, principal: Principal, project) -> QuerySet[AccessLogEntry]:
    """Requests made under the project's URLs, newest first; its auditors and admins only."""
    require_role(principal, project, AUDIT_READERS, action="read the access log", write=False)
    return AccessLogEntry.objects.filter(project_slug=project.slug).order_by("-id")


def audit_verification_get(*, principal: Principal, project, verification_id: int) -> AuditVerification:
    """A verification run of the project's chain, with its progress and result; auditors and admins only."""
    require_role(principal, project, AUDIT_READERS, action="see audit verifications", write=False)
    verification = (
        AuditVerification.objects.filter(project=project, pk=verification_id).select_related("requested_by").first()
    )
    if verification is None:
        raise NotFound("No such verification in this project.")
    return verification


def audit_verification_latest(*, principal: Principal, project) -> AuditVerification | None:
    """The project's most recent verification run, if any; auditors and admins only."""
    require_role(principal, project, AUDIT_READERS, action="see audit verifications", write=False)
    return AuditVerification.objects.filter(project=project).select_related("requested_by").first()
