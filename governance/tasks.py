"""Celery tasks of the governance app. Each takes ids, loads its row, and calls a service (STYLE.md)."""

import logging

from celery import shared_task

log = logging.getLogger(__name__)


@shared_task
def audit_checkpoint_write():
    """Beat: sign and store a checkpoint of every chain head that moved since its last checkpoint."""
    from governance.audit_chain import checkpoint_all

    written = checkpoint_all()
    log.info("audit checkpoints written: %s", written)
    return written


@shared_task
def audit_verification_run(verification_id: int):
    """Verify one chain for an ``AuditVerification`` row, reporting progress on the row as it goes."""
    from governance.audit_chain import verification_run

    verification_run(verification_id=verification_id)
