"""Starting a verification of a project's audit chain: inline for a small chain, as a task for a large one."""

from django.conf import settings
from django.db import transaction

from governance.access import Principal, require_role
from governance.audit_chain import verification_run
from governance.models import AuditEvent, AuditVerification, Project, Role
from governance.models.audit import chain_of

AUDIT_READERS = (Role.AUDITOR, Role.ADMIN)


def audit_verification_start(*, actor: Principal, project: Project) -> AuditVerification:
    """Verification reads only, so auditors and read-only keys may start it (DESIGN §6)."""
    require_role(actor, project, AUDIT_READERS, action="verify the audit chain", write=False)
    chain = chain_of(project.pk)
    total = AuditEvent.objects.filter(chain=chain).count()
    with transaction.atomic():
        verification = AuditVerification.objects.create(
            chain=chain, project=project, requested_by=actor.user, total=total
        )
        if total > settings.TOLLGATE_AUDIT_VERIFY_INLINE_MAX:
            from controlplane.outbox import outbox_enqueue

            outbox_enqueue("governance.tasks.audit_verification_run", kwargs={"verification_id": verification.pk})
    if total <= settings.TOLLGATE_AUDIT_VERIFY_INLINE_MAX:
        verification_run(verification_id=verification.pk)
    verification.refresh_from_db()
    return verification
