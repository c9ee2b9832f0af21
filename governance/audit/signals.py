"""What the audit trail announces: each project event, once appended, inside its transaction. The concerns
above audit (webhooks) connect receivers, so the trail knows nothing of what listens to it."""

from django.dispatch import Signal

# event: the AuditEvent just appended to a project's chain (not the system chain's).
event_recorded = Signal()
