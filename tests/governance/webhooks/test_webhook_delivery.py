"""Webhooks end to end: a local receiver gets the signed events of the promotion story through a real Celery
worker; a receiver that keeps failing is retried with backoff and then disabled.

The worker runs with the test settings (plain HTTP and local targets allowed); its retry settings come from
the environment the test sets before starting it.
"""

import uuid

import pytest

from governance.audit.models import AuditEvent
from governance.webhooks.models import Webhook, WebhookDelivery
from tests.governance.promotion.test_promotion import CARD, request_promotion, url
from tests.governance.registry.test_registry import body, versions_url
from tests.governance.webhooks.webhook_receiver import Receiver, verify_signature
from tests.worker import wait_for

STORY = [
    "model_version.registered",
    "promotion.requested",
    "promotion.approved",
    "deployment.promoted",
    "deployment.suspended",
]

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


def _subscribe(client, project, target, actions):
    created = client.post(
        f"/api/v1/projects/{project.slug}/webhooks/", {"url": target, "actions": actions}, format="json"
    )
    assert created.status_code == 201, created.json()
    return created.json()


def test_the_promotion_story_arrives_signed(
    api, project, admin_user, ml_engineer, officer, training_data, receiver, celery_worker_process
):
    # Subscribed to the story and to a rejection that never happens; gate.evaluated is not subscribed.
    hook = _subscribe(api(admin_user), project, receiver.url, [*STORY, "promotion.rejected"])
    engineer, reviewer = api(ml_engineer), api(officer)

    registered = engineer.post(
        versions_url(project),
        body(1, metrics=[{"name": "auc", "value": 0.91}],
             datasets=[{"dataset_version": training_data.pk, "role": "trained_on"}]),
        format="json",
    )  # fmt: skip
    assert registered.status_code == 201
    card_url = f"{versions_url(project)}1/model-card/"
    assert engineer.put(card_url, CARD, format="json").status_code == 200
    assert reviewer.post(f"{card_url}confirm-risk-tier/", {"comment": "agreed"}, format="json").status_code == 200
    request_id = request_promotion(engineer, project).json()["id"]
    assert (
        reviewer.post(url(project, f"promotion-requests/{request_id}/approve/"), {}, format="json").status_code == 200
    )
    assert engineer.post(url(project, f"promotion-requests/{request_id}/execute/")).status_code == 200
    suspend = url(project, "deployments/fraud-gbm/production/suspend/")
    assert reviewer.post(suspend, {"reason": "drift"}, format="json").status_code == 200

    wait_for(lambda: len(receiver.requests) >= len(STORY), timeout=60, message="the story's webhook deliveries")
    wait_for(lambda: not WebhookDelivery.objects.exclude(state="succeeded").exists(), message="deliveries logged")

    received = sorted(receiver.requests, key=lambda r: r.json["data"]["sequence"])
    assert [r.json["type"] for r in received] == STORY
    events = {e.hash: e for e in AuditEvent.objects.filter(project=project, action__in=STORY)}
    for got in received:
        assert verify_signature(hook["secret"], got.headers["X-Tollgate-Signature"], got.body)
        assert got.headers["X-Tollgate-Event"] == got.json["type"]
        assert got.json["project"] == "fraud"
        event = events[got.json["id"]]  # the id is the audit event's hash
        assert (event.action, event.sequence) == (got.json["type"], got.json["data"]["sequence"])
        assert got.json["occurred_at"] == event.occurred_at.isoformat()
        delivery = WebhookDelivery.objects.get(delivery_id=uuid.UUID(got.headers["X-Tollgate-Delivery"]))
        assert (delivery.audit_event_id, delivery.attempts, delivery.last_status_code) == (event.pk, 1, 200)
    approved = next(r.json for r in received if r.json["type"] == "promotion.approved")
    assert approved["data"]["actor"] == {"name": "officer", "role": "governance_officer"}
    promoted = next(r.json for r in received if r.json["type"] == "deployment.promoted")
    assert promoted["data"]["target"]["type"] == "deployment"
    assert len(receiver.requests) == len(STORY)  # nothing it did not subscribe to (gate.evaluated, ...)
    assert celery_worker_process.succeeded("governance.tasks.webhook_deliver") == len(STORY)


def test_a_failing_receiver_is_retried_with_backoff_then_disabled(
    api, project, admin_user, receiver, celery_worker_factory, monkeypatch
):
    monkeypatch.setenv("TOLLGATE_WEBHOOK_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("TOLLGATE_WEBHOOK_BACKOFF_SECONDS", "1")
    monkeypatch.setenv("TOLLGATE_WEBHOOK_BACKOFF_MAX_SECONDS", "8")
    monkeypatch.setenv("TOLLGATE_WEBHOOK_DISABLE_AFTER_FAILURES", "2")
    celery_worker_factory()
    receiver.status = 500
    admin = api(admin_user)
    hook = _subscribe(admin, project, receiver.url, ["project.updated"])
    project_url = f"/api/v1/projects/{project.slug}/"

    for name in ("Fraud I", "Fraud II"):
        assert admin.patch(project_url, {"name": name}, format="json").status_code == 200
    webhook = wait_for(
        lambda: Webhook.objects.filter(pk=hook["id"], active=False).first(), timeout=60, message="disabled"
    )

    assert webhook.consecutive_failures == 2
    assert webhook.disabled_reason == "2 deliveries in a row failed; the last: HTTP 500"
    deliveries = list(WebhookDelivery.objects.filter(webhook=webhook).order_by("id"))
    assert [(d.state, d.attempts, d.last_status_code) for d in deliveries] == [("failed", 3, 500)] * 2
    assert len(receiver.requests) == 6
    for delivery in deliveries:
        times = [r.at for r in receiver.requests if r.headers["X-Tollgate-Delivery"] == str(delivery.delivery_id)]
        first_pause, second_pause = times[1] - times[0], times[2] - times[1]
        assert first_pause >= 0.75  # 1 s, less up to 20 % jitter
        assert second_pause >= 1.55 and second_pause > first_pause  # then 2 s: exponential
    disabled = AuditEvent.objects.get(action="webhook.disabled")
    assert disabled.diff["reason"] == webhook.disabled_reason
    assert (disabled.actor_name, disabled.target_id) == ("system", str(webhook.pk))

    shown = admin.get(f"{project_url}webhooks/{webhook.pk}/").json()
    assert (shown["active"], shown["disabled_reason"]) == (False, webhook.disabled_reason)

    # Disabled: new events are not queued for it.
    assert admin.patch(project_url, {"name": "Fraud III"}, format="json").status_code == 200
    assert WebhookDelivery.objects.count() == 2

    # The receiver is fixed; a test delivery reaches it while the webhook is still off; switched back on,
    # it receives events again.
    receiver.status = 200
    tested = admin.post(f"{project_url}webhooks/{webhook.pk}/test/")
    assert tested.status_code == 202
    wait_for(lambda: WebhookDelivery.objects.filter(is_test=True, state="succeeded").exists(), message="test")
    enabled = admin.patch(f"{project_url}webhooks/{webhook.pk}/", {"active": True}, format="json").json()
    assert (enabled["active"], enabled["consecutive_failures"]) == (True, 0)
    assert admin.patch(project_url, {"name": "Fraud IV"}, format="json").status_code == 200
    wait_for(
        lambda: WebhookDelivery.objects.filter(is_test=False, state="succeeded").exists(), message="a new delivery"
    )
    assert receiver.requests[-1].json["data"]["diff"]["name"] == {"from": "Fraud III", "to": "Fraud IV"}
