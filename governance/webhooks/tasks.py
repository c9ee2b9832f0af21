"""The webhook delivery task. Its registered name stays ``governance.tasks.webhook_deliver`` (queued messages
and outbox rows use it)."""

from celery import shared_task

from controlplane.outbox import outbox_defer

from .delivery import TASK, webhook_delivery_attempt


@shared_task(name=TASK, bind=True, soft_time_limit=60, time_limit=90)
def webhook_deliver(self, delivery_id: int) -> None:
    """Send one webhook delivery (enqueued through the outbox). The delivery row counts the attempts, so the
    cap holds across redeliveries of the message; in process (no worker) a failed attempt is not retried."""
    retry_in = webhook_delivery_attempt(delivery_id=delivery_id, can_retry=not self.request.is_eager)
    if retry_in is not None:
        outbox_defer(self, seconds=retry_in)
        raise self.retry(countdown=retry_in, max_retries=None)
