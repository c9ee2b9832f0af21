"""Celery's autodiscovery reads ``<app>.tasks``: this module imports each concern's tasks so they register.
Each task takes ids, loads its rows and calls a service (STYLE.md)."""

from governance.audit.tasks import (
    access_log_digest,
    access_log_prune,
    audit_checkpoint_write,
    audit_verification_run,
)
from governance.webhooks.tasks import webhook_deliver

__all__ = [
    "access_log_digest",
    "access_log_prune",
    "audit_checkpoint_write",
    "audit_verification_run",
    "webhook_deliver",
]
