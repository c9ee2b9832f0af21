"""Reads of webhooks (admins and auditors of the project): subscriptions and their deliveries."""

from __future__ import annotations

from django.db.models import QuerySet

from controlplane.exceptions import NotFound
from governance.accounts.access import Principal, require_role
from governance.accounts.models import Project, Role
from governance.webhooks.models import Webhook, WebhookDelivery


def webhook_list(*, principal: Principal, project: Project) -> QuerySet[Webhook]:
    require_role(principal, project, WEBHOOK_READERS, action="see webhooks", write=False)
    return Webhook.objects.filter(project=project).select_related("created_by").order_by("id")


def webhook_get(*, principal: Principal, project: Project, webhook_id: int) -> Webhook:
    webhook = webhook_list(principal=principal, project=project).filter(pk=webhook_id).first()
    if webhook is None:
        raise NotFound("No such webhook in this project.")
    return webhook


def webhook_delivery_list(
    *, principal: Principal, webhook: Webhook, filters: dict | None = None
) -> QuerySet[WebhookDelivery]:
    """The webhook's delivery log, newest first (the caller got ``webhook`` through ``webhook_get``). Filters:
    state, event_type."""
    filters = filters or {}
    require_role(principal, webhook.project, WEBHOOK_READERS, action="see webhook deliveries", write=False)
    deliveries = WebhookDelivery.objects.filter(webhook=webhook)
    for field in ("state", "event_type"):
        if filters.get(field):
            deliveries = deliveries.filter(**{field: filters[field]})
    return deliveries.order_by("-id")


def webhook_delivery_get(*, principal: Principal, webhook: Webhook, delivery_id: int) -> WebhookDelivery:
    delivery = webhook_delivery_list(principal=principal, webhook=webhook).filter(pk=delivery_id).first()
    if delivery is None:
        raise NotFound("No such delivery of this webhook.")
    return delivery


WEBHOOK_READERS = (Role.ADMIN, Role.AUDITOR)
