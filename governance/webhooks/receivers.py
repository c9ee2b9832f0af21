"""Webhooks hear of every project event through the audit trail's signal, in the event's transaction, so a
delivery commits (and is enqueued through the outbox) with the event it reports."""

from django.dispatch import receiver

from governance.audit.signals import event_recorded

from .delivery import webhooks_enqueue


@receiver(event_recorded)
def enqueue_deliveries(sender, event, **kwargs):
    webhooks_enqueue(event)
