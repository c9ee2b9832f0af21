"""Webhooks through the API: who manages them, what targets they may have, secrets shown once, the one
vocabulary shared with the audit log, and what a delivery sends (in process; the worker story is in
test_webhook_delivery.py)."""

import re
import runpy
import socket
from pathlib import Path

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from controlplane.models import OutboxMessage
from governance.accounts.access import Principal
from governance.audit.models import AuditEvent
from governance.audit.services import audit_record
from governance.audit.vocabulary import AUDIT_ACTIONS
from governance.webhooks.delivery import address_forbidden, secret_open
from governance.webhooks.models import Webhook, WebhookDelivery
from governance.webhooks.services import webhook_create
from tests.governance.webhooks.webhook_receiver import Receiver, verify_signature

REPO = Path(__file__).resolve().parents[3]


def hooks_url(project, path=""):
    return f"/api/v1/projects/{project.slug}/webhooks/{path}"


def subscribe(client, project, url="https://hooks.example.com/tollgate", actions=("promotion.requested",), **extra):
    return client.post(hooks_url(project), {"url": url, "actions": list(actions), **extra}, format="json")


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def production_rules(settings):
    settings.TOLLGATE_WEBHOOK_ALLOW_HTTP = False
    settings.TOLLGATE_WEBHOOK_ALLOW_PRIVATE_TARGETS = False


# --- Subscriptions and who manages them ---


def test_an_admin_subscribes_and_sees_the_secret_once(api, project, admin_user):
    created = subscribe(api(admin_user), project, actions=["promotion.requested", "deployment.promoted"])
    assert created.status_code == 201, created.json()
    body = created.json()
    secret = body["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert body["actions"] == ["deployment.promoted", "promotion.requested"]
    assert body["active"] is True and body["created_by"] == "admin"
    assert body["secret_hint"] == secret[:10]

    detail = api(admin_user).get(hooks_url(project, f"{body['id']}/")).json()
    listed = api(admin_user).get(hooks_url(project)).json()["results"]
    for shown in (detail, *listed):
        assert "secret" not in shown
        assert secret not in str(shown)

    webhook = Webhook.objects.get()
    assert secret not in webhook.secret_encrypted  # stored encrypted, and still usable for signing
    assert secret_open(webhook.secret_encrypted) == secret
    event = AuditEvent.objects.get(action="webhook.created")
    assert event.diff["url"] == "https://hooks.example.com/tollgate"
    assert secret not in event.payload


def test_a_caller_may_bring_a_long_enough_secret(api, project, admin_user):
    own = "s" * 32
    created = subscribe(api(admin_user), project, secret=own)
    assert created.status_code == 201
    assert created.json()["secret"] == own
    short = subscribe(api(admin_user), project, secret="short")
    assert short.status_code == 400
    assert short.json()["error"]["details"][0]["field"] == "secret"


def test_only_admins_manage_webhooks_and_auditors_read_them(
    api, project, admin_user, ml_engineer, officer, auditor, outsider
):
    for user in (ml_engineer, officer, auditor):
        refused = subscribe(api(user), project)
        assert refused.status_code == 403, user
    assert subscribe(api(outsider), project).status_code == 404
    webhook_id = subscribe(api(admin_user), project).json()["id"]

    assert api(auditor).get(hooks_url(project)).status_code == 200
    assert api(auditor).get(hooks_url(project, f"{webhook_id}/deliveries/")).status_code == 200
    assert api(ml_engineer).get(hooks_url(project)).status_code == 403
    assert api(outsider).get(hooks_url(project, f"{webhook_id}/")).status_code == 404
    assert api(auditor).patch(hooks_url(project, f"{webhook_id}/"), {"active": False}, format="json").status_code == 403
    assert api(auditor).post(hooks_url(project, f"{webhook_id}/test/")).status_code == 403
    assert api(auditor).delete(hooks_url(project, f"{webhook_id}/")).status_code == 403
    assert Webhook.objects.get().active is True


def test_actions_come_from_the_audit_vocabulary(api, project, admin_user):
    refused = subscribe(api(admin_user), project, actions=["promotion.requested", "promotion.teleported"])
    assert refused.status_code == 400
    assert refused.json()["error"]["details"][0]["field"] == "actions"
    assert "promotion.teleported" in refused.json()["error"]["message"]
    assert subscribe(api(admin_user), project, actions=[]).status_code == 400
    monitoring = subscribe(api(admin_user), project, actions=["check.failed", "alert.raised", "check.passed"])
    assert monitoring.status_code == 201


def test_the_vocabulary_lists_every_action_the_code_records():
    """One vocabulary for the audit log and for webhooks: every action literal in the code is in it."""
    found: set[str] = set()
    for folder in ("governance", "monitoring", "controlplane"):
        for path in (REPO / folder).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            text = path.read_text()
            found |= set(re.findall(r'action="([a-z_]+\.[a-z_]+)"', text))
            found |= set(re.findall(r'_ACTION = "([a-z_]+\.[a-z_]+)"', text))
            found |= set(re.findall(r'action="[a-z_]+\.[a-z_]+" if [^\n]* else "([a-z_]+\.[a-z_]+)"', text))
            # f"promotion.{'approved' if verb == 'approve' else 'rejected'}"
            for prefix, one, other in re.findall(
                r'action=f"([a-z_]+\.)\{\'([a-z_]+)\' if [^}]* else \'([a-z_]+)\'\}"', text
            ):
                found |= {prefix + one, prefix + other}
    assert {"promotion.approved", "promotion.rejected", "deployment.suspended", "deployment.resumed"} <= found
    assert {"check.failed", "alert.raised"} <= found
    assert found - AUDIT_ACTIONS == set(), "add these actions to governance/audit/vocabulary.py"


# --- Targets ---


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://hooks.example.com/x", "only https"),
        ("ftp://hooks.example.com/x", "only https"),
        ("https://127.0.0.1/x", "not a public address"),
        ("https://10.1.2.3/x", "not a public address"),
        ("https://169.254.169.254/latest/meta-data", "not a public address"),
        ("https://[::1]/x", "not a public address"),
        ("https://[::ffff:192.168.0.1]/x", "not a public address"),
        ("https://localhost:8443/x", "local name"),
        ("https://user:pw@hooks.example.com/x", "credentials"),
        ("https:///x", "no host"),
    ],
)
def test_forbidden_targets_are_refused(api, project, admin_user, production_rules, url, reason):
    refused = subscribe(api(admin_user), project, url=url)
    assert refused.status_code == 400, url
    assert refused.json()["error"]["details"][0]["field"] == "url"
    assert reason in refused.json()["error"]["message"]
    assert not Webhook.objects.exists()


def test_a_public_https_target_is_accepted_and_changes_are_checked_too(api, project, admin_user, production_rules):
    webhook_id = subscribe(api(admin_user), project, url="https://hooks.example.com:8443/x?team=fraud").json()["id"]
    moved = api(admin_user).patch(hooks_url(project, f"{webhook_id}/"), {"url": "http://hooks.example.com/"},
                                  format="json")  # fmt: skip
    assert moved.status_code == 400
    assert Webhook.objects.get().url == "https://hooks.example.com:8443/x?team=fraud"


def test_production_settings_keep_the_guard_on_whatever_the_environment_says(monkeypatch):
    monkeypatch.setenv("DJANGO_SECRET_KEY", "x" * 50)
    monkeypatch.setenv("TOLLGATE_WEBHOOK_ALLOW_HTTP", "true")
    monkeypatch.setenv("TOLLGATE_WEBHOOK_ALLOW_PRIVATE_TARGETS", "true")
    production = runpy.run_module("controlplane.settings.production")
    assert production["TOLLGATE_WEBHOOK_ALLOW_HTTP"] is False
    assert production["TOLLGATE_WEBHOOK_ALLOW_PRIVATE_TARGETS"] is False


@pytest.mark.parametrize(
    "address, forbidden",
    [("93.184.216.34", False), ("2606:4700::1111", False), ("127.0.0.1", True), ("10.0.0.1", True),
     ("172.16.5.4", True), ("192.168.1.1", True), ("169.254.169.254", True), ("100.64.0.1", True),
     ("0.0.0.0", True), ("224.0.0.1", True), ("::1", True), ("fe80::1", True), ("fc00::1", True),
     ("::ffff:127.0.0.1", True), ("240.0.0.1", True)],
)  # fmt: skip
def test_address_classification(address, forbidden):
    assert address_forbidden(address) is forbidden


# --- Updates, re-enabling, deletion ---


def test_switching_a_disabled_webhook_back_on_clears_its_failures(api, project, admin_user):
    webhook_id = subscribe(api(admin_user), project).json()["id"]
    Webhook.objects.filter(pk=webhook_id).update(
        active=False, consecutive_failures=5, disabled_reason="5 deliveries in a row failed"
    )
    shown = api(admin_user).get(hooks_url(project, f"{webhook_id}/")).json()
    assert (shown["active"], shown["disabled_reason"]) == (False, "5 deliveries in a row failed")

    enabled = api(admin_user).patch(hooks_url(project, f"{webhook_id}/"), {"active": True}, format="json")
    assert enabled.status_code == 200
    assert (enabled.json()["active"], enabled.json()["consecutive_failures"], enabled.json()["disabled_reason"]) == (
        True, 0, "",
    )  # fmt: skip
    event = AuditEvent.objects.filter(action="webhook.updated").get()
    assert event.diff == {"active": {"from": False, "to": True}}

    changed = api(admin_user).patch(
        hooks_url(project, f"{webhook_id}/"), {"actions": ["promotion.approved"], "description": "CD"}, format="json"
    )
    assert changed.json()["actions"] == ["promotion.approved"]
    assert changed.json()["description"] == "CD"


def test_deleting_a_webhook_keeps_the_record(api, project, admin_user):
    webhook_id = subscribe(api(admin_user), project).json()["id"]
    assert api(admin_user).delete(hooks_url(project, f"{webhook_id}/")).status_code == 204
    assert not Webhook.objects.exists()
    assert AuditEvent.objects.filter(action="webhook.deleted", target_id=str(webhook_id)).exists()
    assert api(admin_user).get(hooks_url(project, f"{webhook_id}/")).status_code == 404


# --- Enqueueing: in the audit event's transaction, cheap when nobody subscribes ---


def _webhook(project, admin_user, url="https://hooks.example.com/x", actions=("project.updated",)):
    webhook, secret = webhook_create(actor=Principal(admin_user), project=project, url=url, actions=list(actions))
    return webhook, secret


def test_a_subscribed_action_writes_its_delivery_with_the_audit_event(project, admin_user):
    webhook, _ = _webhook(project, admin_user, actions=["project.updated"])
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_record(action="project.updated", actor=Principal(admin_user), project=project, target=project)
        raise RuntimeError("the change fails")
    assert not WebhookDelivery.objects.exists()

    event = audit_record(action="project.updated", actor=Principal(admin_user), project=project, target=project,
                         diff={"name": {"from": "a", "to": "b"}})  # fmt: skip
    audit_record(action="role.granted", actor=Principal(admin_user), project=project)  # not subscribed
    delivery = WebhookDelivery.objects.get()
    assert (delivery.webhook, delivery.audit_event_id, delivery.event_type) == (webhook, event.pk, "project.updated")
    assert delivery.payload_json == {
        "id": event.hash,
        "type": "project.updated",
        "occurred_at": event.occurred_at.isoformat(),
        "project": "fraud",
        "data": {
            "sequence": event.sequence,
            "actor": {"name": "admin", "role": "admin"},
            "target": {"type": "project", "id": str(project.pk), "label": "project:fraud"},
            "diff": {"name": {"from": "a", "to": "b"}},
        },
    }
    message = OutboxMessage.objects.get(task_name="governance.tasks.webhook_deliver")
    assert message.kwargs == {"delivery_id": delivery.pk}


def test_an_event_nobody_subscribes_to_costs_one_query(project, admin_user):
    _webhook(project, admin_user, actions=["deployment.promoted"])
    switched_off, _ = _webhook(project, admin_user, actions=["project.updated"])
    Webhook.objects.filter(pk=switched_off.pk).update(active=False)
    with CaptureQueriesContext(connection) as queries:
        audit_record(action="project.updated", actor=Principal.system(), project=project, target=project)
    webhook_queries = [q["sql"] for q in queries.captured_queries if "governance_webhook" in q["sql"]]
    assert len(webhook_queries) == 1
    assert not WebhookDelivery.objects.exists()


def test_the_webhook_list_has_a_fixed_query_count(api, project, admin_user, django_assert_max_num_queries):
    client = api(admin_user)
    _webhook(project, admin_user, url="https://hooks.example.com/first")
    with CaptureQueriesContext(connection) as one:
        client.get(hooks_url(project))
    for n in range(5):
        _webhook(project, admin_user, url=f"https://hooks.example.com/{n}")
    with django_assert_max_num_queries(len(one)):
        listed = client.get(hooks_url(project))
    assert listed.status_code == 200 and listed.json()["count"] == 6


# --- Sending, in process (tasks run eagerly after commit) ---


@pytest.fixture
def eager(celery_eager, django_capture_on_commit_callbacks):
    """Run the deliveries a block enqueues right after it 'commits'."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def test_a_test_delivery_is_signed_and_logged(api, project, admin_user, receiver, eager):
    created = subscribe(api(admin_user), project, url=receiver.url).json()
    with eager():
        queued = api(admin_user).post(hooks_url(project, f"{created['id']}/test/"))
    assert queued.status_code == 202
    assert queued.json()["event_type"] == "webhook.test"

    (got,) = receiver.requests
    assert got.path == "/hooks"
    assert verify_signature(created["secret"], got.headers["X-Tollgate-Signature"], got.body)
    assert not verify_signature("whsec_wrong", got.headers["X-Tollgate-Signature"], got.body)
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["X-Tollgate-Event"] == "webhook.test"
    assert got.json["type"] == "webhook.test" and got.json["project"] == "fraud"

    log = api(admin_user).get(hooks_url(project, f"{created['id']}/deliveries/")).json()["results"]
    assert [(d["state"], d["attempts"], d["last_status_code"]) for d in log] == [("succeeded", 1, 200)]
    assert log[0]["delivery_id"] == got.headers["X-Tollgate-Delivery"]
    detail = api(admin_user).get(hooks_url(project, f"{created['id']}/deliveries/{log[0]['id']}/")).json()
    assert detail["payload"] == got.json
    assert detail["last_response"] == "thanks"


def test_redirects_are_not_followed(api, project, admin_user, receiver, eager):
    receiver.status, receiver.location = 302, f"http://127.0.0.1:{receiver.port}/elsewhere"
    created = subscribe(api(admin_user), project, url=receiver.url).json()
    with eager():
        api(admin_user).post(hooks_url(project, f"{created['id']}/test/"))
    assert [r.path for r in receiver.requests] == ["/hooks"]
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.last_status_code) == ("failed", 302)
    assert "redirects are not followed" in delivery.last_error


def _resolving(monkeypatch, name, *addresses):
    real = socket.getaddrinfo

    def fake(host, port, *args, **kwargs):
        if host == name:
            return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                    for a in addresses]  # fmt: skip
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr("governance.webhooks.delivery.socket.getaddrinfo", fake)


def test_a_name_resolving_to_a_private_address_is_refused_at_send_time(
    api, project, admin_user, receiver, eager, settings, monkeypatch
):
    settings.TOLLGATE_WEBHOOK_ALLOW_PRIVATE_TARGETS = False  # http stays allowed, to reach the local receiver
    _resolving(monkeypatch, "hooks.rebind.test", "93.184.216.34", "127.0.0.1")
    created = subscribe(api(admin_user), project, url=f"http://hooks.rebind.test:{receiver.port}/hooks")
    assert created.status_code == 201  # a name is accepted; its addresses are checked when sending
    with eager():
        api(admin_user).post(hooks_url(project, f"{created.json()['id']}/test/"))
    assert receiver.requests == []
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == "failed"
    assert "non-public address (127.0.0.1)" in delivery.last_error


def test_the_request_goes_to_the_address_that_was_checked(api, project, admin_user, receiver, eager, monkeypatch):
    """The name is resolved once, checked, and the connection made to that address (with the name in the
    Host header): a second DNS answer cannot send the request elsewhere."""
    _resolving(monkeypatch, "hooks.pinned.test", "127.0.0.1")
    created = subscribe(api(admin_user), project, url=f"http://hooks.pinned.test:{receiver.port}/hooks").json()
    with eager():
        api(admin_user).post(hooks_url(project, f"{created['id']}/test/"))
    (got,) = receiver.requests
    assert got.headers["Host"] == f"hooks.pinned.test:{receiver.port}"
    assert WebhookDelivery.objects.get().state == "succeeded"


def test_redelivery_sends_the_same_event_with_a_new_delivery_id(api, project, admin_user, auditor, receiver, eager):
    created = subscribe(api(admin_user), project, url=receiver.url, actions=["project.updated"]).json()
    with eager():
        api(admin_user).patch(f"/api/v1/projects/{project.slug}/", {"name": "Fraud"}, format="json")
    original = WebhookDelivery.objects.get()
    assert original.state == "succeeded"
    redeliver = hooks_url(project, f"{created['id']}/deliveries/{original.pk}/redeliver/")
    assert api(auditor).post(redeliver).status_code == 403
    with eager():
        again = api(admin_user).post(redeliver)
    assert again.status_code == 202
    assert again.json()["redelivery_of"] == original.pk
    first, second = receiver.requests
    assert first.body == second.body
    assert first.headers["X-Tollgate-Delivery"] != second.headers["X-Tollgate-Delivery"]
    assert first.json["type"] == "project.updated"

    Webhook.objects.update(active=False)
    refused = api(admin_user).post(redeliver)
    assert refused.status_code == 409
    assert "disabled" in refused.json()["error"]["message"]
