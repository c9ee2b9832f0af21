"""A project's webhooks (DESIGN §4, §6): admins create, update, delete, test and redeliver, each audited."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from controlplane.exceptions import Conflict, DomainError
from governance.accounts.access import Principal, require_role
from governance.accounts.models import Project, Role
from governance.audit.services import audit_record, audited_update
from governance.audit.vocabulary import WEBHOOK_ACTIONS, WEBHOOK_TEST_EVENT
from governance.webhooks.delivery import (
    delivery_enqueue,
    secret_generate,
    secret_seal,
    target_validate,
    webhook_test_payload,
)
from governance.webhooks.models import Webhook, WebhookDelivery

MIN_SECRET_LENGTH = 24


def _actions_validate(actions: list[str]) -> list[str]:
    if not actions:
        raise DomainError("Subscribe to at least one action.", details=[{"field": "actions"}])
    unknown = sorted(set(actions) - WEBHOOK_ACTIONS)
    if unknown:
        raise DomainError(
            f"Unknown action(s): {', '.join(unknown)}.",
            details=[{"field": "actions", "message": f"not an audit action: {a}"} for a in unknown],
        )
    return sorted(set(actions))


# Reads ---------------------------------------------------------------------------------------------------


# Writes --------------------------------------------------------------------------------------------------


@transaction.atomic
def webhook_create(
    *,
    actor: Principal,
    project: Project,
    url: str,
    actions: list[str],
    description: str = "",
    secret: str | None = None,
) -> tuple[Webhook, str]:
    """Returns the webhook and its signing secret, the only time the secret is shown."""
    require_role(actor, project, [Role.ADMIN], action="manage webhooks")
    target_validate(url)
    actions = _actions_validate(actions)
    if secret is not None and len(secret) < MIN_SECRET_LENGTH:
        raise DomainError(
            f"A webhook secret has at least {MIN_SECRET_LENGTH} characters.", details=[{"field": "secret"}]
        )
    secret = secret or secret_generate()
    webhook = Webhook.objects.create(
        project=project,
        url=url,
        description=description,
        actions=actions,
        secret_encrypted=secret_seal(secret),
        secret_hint=secret[:10],
        created_by=actor.user,
    )
    audit_record(
        action="webhook.created",
        actor=actor,
        project=project,
        target=webhook,
        diff={"url": url, "actions": actions, "description": description},
    )
    return webhook, secret


@transaction.atomic
def webhook_update(
    *,
    actor: Principal,
    webhook: Webhook,
    url: str | None = None,
    actions: list[str] | None = None,
    description: str | None = None,
    active: bool | None = None,
) -> Webhook:
    """Change the target, the actions, the description, or switch it on and off. Switching a disabled
    webhook back on clears its failure count and the reason it was disabled."""
    project = webhook.project
    require_role(actor, project, [Role.ADMIN], action="manage webhooks")
    webhook = Webhook.objects.select_for_update().get(pk=webhook.pk)
    data = {"url": target_validate(url) if url is not None else None,
            "actions": _actions_validate(actions) if actions is not None else None,
            "description": description, "active": active}  # fmt: skip
    data = {field: value for field, value in data.items() if value is not None}
    also = {"updated_at": timezone.now()}
    if active is not None and active != webhook.active:  # switching on clears the failures; off says who did
        if active:
            also |= {"consecutive_failures": 0, "disabled_reason": "", "disabled_at": None}
        else:
            also |= {"disabled_reason": f"switched off by {actor.user.username}", "disabled_at": timezone.now()}
    audited_update(webhook, data, actor=actor, action="webhook.updated", project=project, also=also)
    return webhook


@transaction.atomic
def webhook_delete(*, actor: Principal, webhook: Webhook) -> None:
    """The webhook and its delivery log go; the audit trail keeps that it existed."""
    project = webhook.project
    require_role(actor, project, [Role.ADMIN], action="manage webhooks")
    audit_record(action="webhook.deleted", actor=actor, project=project, target=webhook, diff={"url": webhook.url})
    webhook.delete()


@transaction.atomic
def webhook_test(*, actor: Principal, webhook: Webhook) -> WebhookDelivery:
    """Queue a ``webhook.test`` event: one attempt, sent even to a disabled webhook (to check a receiver
    before switching it back on), never counted as a failure."""
    require_role(actor, webhook.project, [Role.ADMIN], action="test webhooks")
    delivery = WebhookDelivery.objects.create(
        webhook=webhook,
        event_type=WEBHOOK_TEST_EVENT,
        payload=webhook_test_payload(webhook),
        is_test=True,
        requested_by=actor.user,
    )
    return delivery_enqueue(delivery)


@transaction.atomic
def webhook_redeliver(*, actor: Principal, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a finished delivery's payload again, as a new delivery (a new delivery id, the same event id)."""
    webhook = delivery.webhook
    require_role(actor, webhook.project, [Role.ADMIN], action="redeliver webhook events")
    if delivery.state not in (WebhookDelivery.State.SUCCEEDED, WebhookDelivery.State.FAILED):
        raise Conflict("This delivery is still being attempted; redeliver it once it has finished.")
    if not webhook.active and not delivery.is_test:
        raise Conflict("This webhook is disabled; switch it back on before redelivering.")
    copy = WebhookDelivery.objects.create(
        webhook=webhook,
        audit_event_id=delivery.audit_event_id,
        event_type=delivery.event_type,
        payload=delivery.payload,
        is_test=delivery.is_test,
        redelivery_of=delivery,
        requested_by=actor.user,
    )
    return delivery_enqueue(copy)
