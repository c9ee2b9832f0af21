"""The promotion story over HTTP: nothing reaches production until its gates pass."""

import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from governance.audit.models import AuditEvent
from governance.promotion.models import Decision, Deployment, DeploymentHistory, PromotionRequest
from tests.factories import CARD, UserFactory
from tests.governance.registry.test_registry import body, sha, versions_url


def request_promotion(client, project, version=1, environment="production", **extra):
    return client.post(
        f"/api/v1/projects/{project.slug}/promotion-requests/",
        {"model": "fraud-gbm", "version": version, "environment": environment, **extra},
        format="json",
    )


def url(project, path):
    return f"/api/v1/projects/{project.slug}/{path}"


def test_a_fresh_version_is_blocked_with_every_reason(api, project, ml_engineer):
    api(ml_engineer).post(versions_url(project), body(1), format="json")
    dry = api(ml_engineer).get(f"{versions_url(project)}1/gates/", {"environment": "production"}).json()
    assert dry["passed"] is False
    statuses = {gate["kind"]: gate["status"] for gate in dry["gates"]}
    assert statuses == {
        "approvals": "pending", "separation_of_duties": "passed", "model_card": "failed", "provenance": "failed",
        "check": "failed", "risk_tier": "passed",
    }  # fmt: skip
    assert dry["risk_tier"] == "high"  # unconfirmed counts as high
    reasons = {gate["kind"]: gate["reason"] for gate in dry["gates"]}
    assert "not confirmed" in reasons["model_card"]
    assert "no dataset version is linked" in reasons["provenance"]
    assert not AuditEvent.objects.filter(action="gate.evaluated").exists()  # dry runs are not audited


def test_the_whole_promotion_story(api, project, ml_engineer, officer, auditor, ready_version):
    engineer, reviewer = api(ml_engineer), api(officer)
    created = request_promotion(engineer, project, comment="nightly retrain")
    assert created.status_code == 201, created.json()
    request_id = created.json()["id"]
    assert request_promotion(engineer, project).status_code == 409  # one open request per target

    blocked = engineer.post(url(project, f"promotion-requests/{request_id}/execute/"))
    assert blocked.status_code == 409
    assert blocked.json()["error"]["code"] == "gate_failed"
    assert [d["gate"] for d in blocked.json()["error"]["details"]] == ["approvals"]
    assert AuditEvent.objects.filter(action="gate.evaluated", diff__executed=False).exists()

    approved = reviewer.post(
        url(project, f"promotion-requests/{request_id}/approve/"), {"comment": "ok"}, format="json"
    )
    assert approved.status_code == 200, approved.json()
    assert approved.json()["ready_to_execute"] is True

    executed = engineer.post(url(project, f"promotion-requests/{request_id}/execute/"))
    assert executed.status_code == 200, executed.json()
    deployment = executed.json()
    assert (deployment["version"], deployment["state"]) == (1, "active")
    assert deployment["history"][0]["approvers"] == ["officer"]

    # The enforcement point, as a deployment system with an auditor's read-only key sees it.
    enforcement = api(auditor, read_only=True)
    detail = enforcement.get(url(project, "deployments/fraud-gbm/production/")).json()
    assert detail["artifact_sha256"] == sha("artifact 1")
    allowed = enforcement.post(
        url(project, "deployments/fraud-gbm/production/verify/"), {"artifact_sha256": sha("artifact 1")}, format="json"
    )
    assert allowed.json()["allowed"] is True
    upper = enforcement.post(  # a hash in capitals is the same hash (sha256sum prints lowercase, others do not)
        url(project, "deployments/fraud-gbm/production/verify/"),
        {"artifact_sha256": sha("artifact 1").upper()},
        format="json",
    )
    assert upper.json()["allowed"] is True
    refused = enforcement.post(
        url(project, "deployments/fraud-gbm/production/verify/"), {"artifact_sha256": sha("tampered")}, format="json"
    )
    assert refused.json() == {"allowed": False, "reason": refused.json()["reason"], "version": 1}
    assert "not the approved one" in refused.json()["reason"]

    # Suspension: the enforcement point refuses until an officer resumes.
    suspended = reviewer.post(
        url(project, "deployments/fraud-gbm/production/suspend/"), {"reason": "drift"}, format="json"
    )
    assert suspended.json()["state"] == "suspended"
    again = enforcement.post(
        url(project, "deployments/fraud-gbm/production/verify/"), {"artifact_sha256": sha("artifact 1")}, format="json"
    )
    assert again.json()["allowed"] is False and "suspended" in again.json()["reason"]
    assert engineer.post(url(project, "deployments/fraud-gbm/production/resume/"), {}, format="json").status_code == 403
    assert reviewer.post(url(project, "deployments/fraud-gbm/production/resume/"), {}, format="json").status_code == 200

    actions = set(AuditEvent.objects.filter(project=project).values_list("action", flat=True))
    assert {"promotion.requested", "promotion.approved", "gate.evaluated", "deployment.promoted",
            "deployment.suspended", "deployment.resumed"} <= actions  # fmt: skip


def test_nobody_approves_their_own_work(api, project, ml_engineer, officer, admin_user, ready_version):
    from governance.accounts.access import Principal
    from governance.accounts.services import role_grant

    request_id = request_promotion(api(ml_engineer), project).json()["id"]
    # The engineer who registered the version becomes an officer too: still excluded.
    role_grant(actor=Principal(admin_user), project=project, principal=ml_engineer, role="governance_officer")
    refused = api(ml_engineer).post(url(project, f"promotion-requests/{request_id}/approve/"), {}, format="json")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "separation_of_duties"
    assert "registered the version" in refused.json()["error"]["message"]
    assert AuditEvent.objects.filter(action="access.denied", actor_name="mlengineer").exists()
    assert not Decision.objects.exists()


def test_an_engineer_or_auditor_cannot_approve(api, project, ml_engineer, auditor, ready_version):
    request_id = request_promotion(api(ml_engineer), project).json()["id"]
    member = api(auditor).post(url(project, f"promotion-requests/{request_id}/approve/"), {}, format="json")
    assert member.status_code == 403  # a member without the role is told why
    assert member.json()["error"]["code"] == "permission_denied"
    stranger = api(UserFactory(username="nobody")).post(
        url(project, f"promotion-requests/{request_id}/approve/"), {}, format="json"
    )
    assert stranger.status_code == 404  # someone outside the project does not learn it exists
    assert not Decision.objects.exists()
    assert PromotionRequest.objects.get(pk=request_id).state == "open"


def test_a_changed_card_voids_the_approval(api, project, ml_engineer, officer, ready_version):
    request_id = request_promotion(api(ml_engineer), project).json()["id"]
    api(officer).post(url(project, f"promotion-requests/{request_id}/approve/"), {}, format="json")
    api(ml_engineer).patch(f"{versions_url(project)}1/model-card/", {"limitations": "changed"}, format="json")
    decision = Decision.objects.get()
    assert decision.voided_at is not None
    assert "card_hash" in decision.void_reason
    assert AuditEvent.objects.filter(action="promotion.voided").exists()
    blocked = api(ml_engineer).post(url(project, f"promotion-requests/{request_id}/execute/"))
    assert blocked.status_code == 409
    # The edit voided the tier's confirmation too (the tier counts as high until an officer confirms the new
    # revision); the officer confirms it and decides again.
    assert [d["gate"] for d in blocked.json()["error"]["details"]][:2] == ["approvals", "model_card"]
    confirm = api(officer).post(
        f"{versions_url(project)}1/model-card/confirm-risk-tier/", {"comment": "still limited"}, format="json"
    )
    assert confirm.status_code == 200
    assert (
        api(officer).post(url(project, f"promotion-requests/{request_id}/approve/"), {}, format="json").status_code
        == 200
    )
    assert api(ml_engineer).post(url(project, f"promotion-requests/{request_id}/execute/")).status_code == 200


def test_a_reject_is_final(api, project, ml_engineer, officer, officer2, ready_version):
    request_id = request_promotion(api(ml_engineer), project).json()["id"]
    rejected = api(officer).post(
        url(project, f"promotion-requests/{request_id}/reject/"), {"comment": "no"}, format="json"
    )
    assert rejected.json()["state"] == "rejected"
    late = api(officer2).post(url(project, f"promotion-requests/{request_id}/approve/"), {}, format="json")
    assert late.status_code == 409
    assert api(ml_engineer).post(url(project, f"promotion-requests/{request_id}/execute/")).status_code == 409
    assert not Deployment.objects.exists()


def test_one_decision_per_reviewer(api, project, ml_engineer, officer, ready_version):
    request_id = request_promotion(api(ml_engineer), project).json()["id"]
    assert (
        api(officer).post(url(project, f"promotion-requests/{request_id}/approve/"), {}, format="json").status_code
        == 200
    )
    assert (
        api(officer).post(url(project, f"promotion-requests/{request_id}/approve/"), {}, format="json").status_code
        == 409
    )


def test_the_refusal_to_execute_states_who_may(api, project, admin_user, ml_engineer, officer, officer2, auditor,
                                               ready_version):  # fmt: skip
    from governance.accounts.access import Principal
    from governance.accounts.services import role_grant

    request_id = request_promotion(api(ml_engineer), project).json()["id"]
    api(officer).post(url(project, f"promotion-requests/{request_id}/approve/"), {}, format="json")
    colleague = UserFactory(username="colleague")
    role_grant(actor=Principal(admin_user), project=project, principal=colleague, role="ml_engineer")
    rule = (
        "Only its requester (mlengineer, while an ml_engineer or governance_officer of the project) or a "
        "project's governance_officer may execute this promotion."
    )
    for user in (auditor, colleague):
        refused = api(user).post(url(project, f"promotion-requests/{request_id}/execute/"))
        assert refused.status_code == 403
        assert refused.json()["error"] == {"code": "permission_denied", "message": rule, "details": []}
        assert AuditEvent.objects.filter(action="access.denied", actor_name=user.username).exists()
    assert not Deployment.objects.exists()
    # An officer who did not request it executes it, as the rule says (the requester could as well).
    executed = api(officer2).post(url(project, f"promotion-requests/{request_id}/execute/"))
    assert executed.status_code == 200, executed.json()
    assert Deployment.objects.get().model_version.version == 1
    assert DeploymentHistory.objects.get().executed_by == officer2


def test_withdraw_and_the_officer_queue(api, project, ml_engineer, officer, ready_version, other_project, outsider):
    request_id = request_promotion(api(ml_engineer), project).json()["id"]
    queue = api(officer).get("/api/v1/promotion-requests/", {"state": "open"}).json()["results"]
    assert [r["id"] for r in queue] == [request_id]
    assert api(outsider).get("/api/v1/promotion-requests/", {"state": "open"}).json()["results"] == []
    assert api(officer).post(url(project, f"promotion-requests/{request_id}/withdraw/")).status_code == 403
    withdrawn = api(ml_engineer).post(url(project, f"promotion-requests/{request_id}/withdraw/"))
    assert withdrawn.json()["state"] == "withdrawn"
    assert request_promotion(api(ml_engineer), project).status_code == 201  # a new one may be opened


def test_policy_is_published_by_officers_and_validated(api, project, ml_engineer, officer):
    policy_url = url(project, "policies/")
    assert api(officer).get(f"{policy_url}current/").json()["version"] == 1
    bad = api(officer).post(
        policy_url,
        {"source": "environments:\n  production:\n    limited:\n      - kind: approvals\n        min: 0\n"
                   "      - kind: metric\n        name: auc\n      - kind: teleport\n"},
        format="json",
    )  # fmt: skip
    assert bad.status_code == 400
    fields = {d["field"] for d in bad.json()["error"]["details"]}
    assert fields == {"environments.production.limited[0].min", "environments.production.limited[1].min",
                      "environments.production.limited[2].kind"}  # fmt: skip
    good = {"environments": {"production": {"limited": [{"kind": "metric", "name": "auc", "min": 0.95}]}}}
    assert api(ml_engineer).post(policy_url, {"document": good}, format="json").status_code == 403
    published = api(officer).post(policy_url, {"document": good, "comment": "stricter"}, format="json")
    assert published.status_code == 201
    assert published.json()["version"] == 2
    assert api(officer).get(f"{policy_url}current/").json()["version"] == 2


def test_suspend_on_failed_check_names_environment_kinds(api, project, officer):
    policy_url = url(project, "policies/")
    assert api(officer).get(f"{policy_url}current/").json()["document"]["suspend_on_failed_check"] == ["production"]
    gates = {"production": {"limited": [{"kind": "approvals", "min": 1}]}}
    for wrong, why in ((["data_drift"], '"data_drift" is not an environment kind'),
                       (["production", "qa", "check"], '"qa", "check" are not environment kinds'),
                       ("production", 'got "production", not a list')):  # fmt: skip
        refused = api(officer).post(
            policy_url, {"document": {"environments": gates, "suspend_on_failed_check": wrong}}, format="json"
        )
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "invalid_policy"
        assert refused.json()["error"]["details"] == [{
            "field": "suspend_on_failed_check",
            "message": "a list of the environment kinds whose deployments a failed check suspends, each one of "
                       f"staging, production (an empty list suspends none); {why}",
        }]  # fmt: skip
    assert api(officer).get(f"{policy_url}current/").json()["version"] == 1  # nothing was published
    # Left out, it is the default's; [] turns automatic suspension off.
    published = api(officer).post(policy_url, {"document": {"environments": gates}}, format="json").json()
    assert published["document"]["suspend_on_failed_check"] == ["production"]
    off = {"environments": gates, "suspend_on_failed_check": []}
    assert api(officer).post(policy_url, {"document": off}, format="json").json()["document"] == off


def test_the_floor_holds_under_any_policy(api, project, ml_engineer, officer, ready_version):
    lax = {"environments": {"production": {"limited": []}}}
    api(officer).post(url(project, "policies/"), {"document": lax}, format="json")
    dry = api(ml_engineer).get(f"{versions_url(project)}1/gates/", {"environment": "production"}).json()
    kinds = [gate["kind"] for gate in dry["gates"]]
    assert kinds == ["approvals", "separation_of_duties", "risk_tier"]
    assert dry["passed"] is False
    # An unacceptable tier never reaches production.
    api(ml_engineer).patch(
        f"{versions_url(project)}1/model-card/", {"proposed_risk_tier": "unacceptable"}, format="json"
    )
    api(officer).post(f"{versions_url(project)}1/model-card/confirm-risk-tier/", {"comment": "agreed"}, format="json")
    dry = api(ml_engineer).get(f"{versions_url(project)}1/gates/", {"environment": "production"}).json()
    assert {g["kind"]: g["status"] for g in dry["gates"]}["risk_tier"] == "failed"


def test_a_metric_gate_and_its_exception(api, project, ml_engineer, officer, officer2, ready_version):
    strict = {"environments": {"production": {"limited": [
        {"kind": "approvals", "min": 1}, {"kind": "metric", "name": "auc", "min": 0.95}]}}}  # fmt: skip
    api(officer).post(url(project, "policies/"), {"document": strict}, format="json")
    request_id = request_promotion(api(ml_engineer), project).json()["id"]
    api(officer).post(url(project, f"promotion-requests/{request_id}/approve/"), {}, format="json")
    blocked = api(ml_engineer).post(url(project, f"promotion-requests/{request_id}/execute/"))
    assert [(d["gate"], "0.91 does not meet" in d["reason"]) for d in blocked.json()["error"]["details"]] == [
        ("metric", True)
    ]
    waiver = {
        "model": "fraud-gbm", "version": 1, "environment": "production", "gate": "metric", "target": "auc",
        "name": "AUC waiver", "justification": "Holiday traffic", "requested_by": "mlengineer",
        "expires_at": (timezone.now() + timedelta(days=7)).isoformat(),
    }  # fmt: skip
    floor = api(officer2).post(url(project, "exceptions/"), {**waiver, "gate": "approvals"}, format="json")
    assert floor.status_code == 400
    assert api(ml_engineer).post(url(project, "exceptions/"), waiver, format="json").status_code == 403
    granted = api(officer2).post(url(project, "exceptions/"), waiver, format="json")
    assert granted.status_code == 201, granted.json()
    executed = api(ml_engineer).post(url(project, f"promotion-requests/{request_id}/execute/"))
    assert executed.status_code == 200, executed.json()
    assert AuditEvent.objects.filter(action="exception.granted").exists()


def test_the_history_answers_what_ran_when(api, project, ml_engineer, officer, ready_version, training_data):
    engineer = api(ml_engineer)
    first = request_promotion(engineer, project).json()["id"]
    api(officer).post(url(project, f"promotion-requests/{first}/approve/"), {}, format="json")
    engineer.post(url(project, f"promotion-requests/{first}/execute/"))
    between = timezone.now()

    engineer.post(versions_url(project), body(2, metrics=[{"name": "auc", "value": 0.93}],
                  datasets=[{"dataset_version": training_data.pk, "role": "trained_on"}]), format="json")  # fmt: skip
    engineer.put(f"{versions_url(project)}2/model-card/", CARD, format="json")
    api(officer).post(f"{versions_url(project)}2/model-card/confirm-risk-tier/", {"comment": "agreed"}, format="json")
    second = request_promotion(engineer, project, version=2).json()["id"]
    api(officer).post(url(project, f"promotion-requests/{second}/approve/"), {}, format="json")
    assert engineer.post(url(project, f"promotion-requests/{second}/execute/")).status_code == 200

    then = engineer.get(url(project, "deployments/history/"), {"at": between.isoformat(), "environment": "production"})
    rows = then.json()["results"]
    assert [(r["version"], r["approvers"], r["policy_version"]) for r in rows] == [(1, ["officer"], 1)]
    now = engineer.get(url(project, "deployments/history/"), {"at": timezone.now().isoformat()}).json()["results"]
    assert [r["version"] for r in now] == [2]
    assert DeploymentHistory.objects.filter(to_at__isnull=True).count() == 1
    assert engineer.get(url(project, "deployments/history/"), {"at": "yesterday"}).status_code == 400


def test_an_emergency_rollback(api, project, ml_engineer, officer, officer2, ready_version, training_data):
    engineer = api(ml_engineer)
    first = request_promotion(engineer, project).json()["id"]
    api(officer).post(url(project, f"promotion-requests/{first}/approve/"), {}, format="json")
    engineer.post(url(project, f"promotion-requests/{first}/execute/"))
    engineer.post(versions_url(project), body(2), format="json")
    refused = request_promotion(engineer, project, version=2, emergency=True)
    assert refused.status_code == 400  # only versions that already ran there

    # Version 2 went out by a normal promotion; now roll back to 1 in an emergency.
    Deployment.objects.update(model_version=Deployment.objects.get().model.versions.get(version=2))
    rollback = request_promotion(engineer, project, version=1, emergency=True, comment="v2 misbehaves")
    assert rollback.status_code == 201
    assert AuditEvent.objects.filter(action="promotion.emergency_requested").exists()
    request_id = rollback.json()["id"]
    api(officer).post(url(project, f"promotion-requests/{request_id}/approve/"), {}, format="json")
    blocked = engineer.post(url(project, f"promotion-requests/{request_id}/execute/"))
    assert [d["gate"] for d in blocked.json()["error"]["details"]] == ["approvals"]  # two officers needed
    api(officer2).post(url(project, f"promotion-requests/{request_id}/approve/"), {}, format="json")
    assert engineer.post(url(project, f"promotion-requests/{request_id}/execute/")).status_code == 200


def test_environments(api, project, admin_user, officer):
    admin = api(admin_user)
    names = [e["name"] for e in admin.get(url(project, "environments/")).json()]
    assert names == ["production", "staging"]
    assert admin.delete(url(project, "environments/production/")).status_code == 409
    created = admin.post(url(project, "environments/"), {"name": "eu-prod", "kind": "production"}, format="json")
    assert created.status_code == 201
    assert (
        api(officer).post(url(project, "environments/"), {"name": "x", "kind": "staging"}, format="json").status_code
        == 403
    )
    assert admin.patch(url(project, "environments/eu-prod/"), {"kind": "staging"}, format="json").status_code == 405
    assert admin.delete(url(project, "environments/eu-prod/")).status_code == 204


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_executions_have_one_winner(staff, admin_user):
    """Two approved requests for one deployment executed at once: one wins, the other gets 409, never 500."""
    from rest_framework.test import APIClient

    from governance.accounts.access import Principal
    from governance.accounts.services import api_key_issue, project_create, role_grant

    project = project_create(actor=Principal(staff), slug="race", name="Race", admin=admin_user)
    engineer, reviewer = UserFactory(username="eng"), UserFactory(username="off")
    role_grant(actor=Principal(admin_user), project=project, principal=engineer, role="ml_engineer")
    role_grant(actor=Principal(admin_user), project=project, principal=reviewer, role="governance_officer")

    def client(user):
        _, key = api_key_issue(actor=Principal(user), owner=user, project=project, name="t", read_only=False,
                               expires_at=None)  # fmt: skip
        c = APIClient()
        c.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        return c

    eng, off = client(engineer), client(reviewer)
    lax = {"environments": {"staging": {"high": []}}}
    assert off.post(url(project, "policies/"), {"document": lax}, format="json").status_code == 201
    ids = []
    for n in (1, 2, 3):
        assert eng.post(versions_url(project), body(n), format="json").status_code == 201
        ids.append(request_promotion(eng, project, version=n, environment="staging").json()["id"])
    statuses, barrier = [], threading.Barrier(len(ids))

    def execute(request_id):
        c = client(engineer)
        barrier.wait()
        statuses.append(c.post(url(project, f"promotion-requests/{request_id}/execute/")).status_code)
        connections.close_all()

    threads = [threading.Thread(target=execute, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 500 not in statuses
    assert sorted(statuses) == [200, 409, 409]
    assert Deployment.objects.filter(project=project).count() == 1
    assert DeploymentHistory.objects.filter(deployment__project=project, to_at__isnull=True).count() == 1
    assert DeploymentHistory.objects.filter(deployment__project=project).count() == 1
