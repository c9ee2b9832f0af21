"""What accounts announce to the concerns above them, which connect receivers in the app's ``ready()``.
Accounts sit at the bottom of the house (the principal and authentication are what everything stands on), so
they tell instead of calling up; both signals are sent inside the writing transaction and a receiver's error
undoes the write."""

from django.dispatch import Signal

# An audit event's fields (action, actor, project, target, diff): governance.audit.receivers records it.
account_changed = Signal()
# A new project (project, actor): promotion gives it its environments and the default policy.
project_created = Signal()


def account_record(**event) -> None:
    """Record an account change in the audit trail (through ``account_changed``)."""
    account_changed.send(sender=None, **event)
