"""Celery tasks of the control plane itself."""

import logging

from celery import shared_task

from controlplane.outbox import outbox_purge_done, outbox_republish_due

log = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def outbox_sweep() -> dict:
    """Beat, every 30 s: publish again the outbox rows still pending past their threshold (a message lost with
    a broker restart, or never sent because the broker was down), and delete old done rows."""
    return {"republished": outbox_republish_due(), "purged": outbox_purge_done()}
