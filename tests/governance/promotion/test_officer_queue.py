"""The officer's queue (``GET /api/v1/promotion-requests/``): each request with its risk tier and a summary of its
gates, evaluated together when the list is read, in a number of queries that does not grow with the requests."""

from datetime import timedelta

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from governance.accounts.access import Principal
from tests.factories import CARD, PromotionRequestFactory, RegisteredVersionFactory
from tests.governance.promotion.test_promotion import request_promotion, url
from tests.governance.provenance.lineage_events import dataset, ingest, model_facet, run_event
from tests.governance.registry.test_registry import versions_url

QUEUE = "/api/v1/promotion-requests/"
UNCONFIRMED = "unconfirmed — counts as high"
QUEUE_QUERIES = 26


def register(project, ml_engineer, training_data, *, card=True):
    """The next version of fraud-gbm, trained on ``training_data``, with ``CARD`` unless ``card`` is False; its
    tier unconfirmed."""
    return RegisteredVersionFactory(
        project=project, created_by=ml_engineer, trained_on=training_data, card=CARD if card else None, metrics=[]
    )


def counts_on_the_request_page(client, project, request_id):
    gates = client.get(url(project, f"promotion-requests/{request_id}/")).json()["gates"]["gates"]
    statuses = [gate["status"] for gate in gates]
    return {status: statuses.count(status) for status in ("passed", "failed", "pending", "waived")}


def test_the_queue_carries_the_risk_tier_and_a_gate_summary(
    api, project, ml_engineer, officer, ready_version, training_data
):
    engineer, reviewer = api(ml_engineer), api(officer)
    confirmed = request_promotion(engineer, project, version=1).json()["id"]
    register(project, ml_engineer, training_data, card=False)
    unconfirmed = request_promotion(engineer, project, version=2).json()["id"]
    withdrawn = request_promotion(engineer, project, version=2, environment="staging").json()["id"]
    assert engineer.post(url(project, f"promotion-requests/{withdrawn}/withdraw/")).status_code == 200

    before = timezone.now()
    listed = reviewer.get(QUEUE)
    assert listed.status_code == 200
    rows = {row["id"]: row for row in listed.json()["results"]}
    assert list(rows) == [confirmed, unconfirmed, withdrawn]  # oldest first

    first = rows[confirmed]
    assert first["risk_tier"] == {"effective": "limited", "confirmed": "limited", "label": "limited", "note": ""}
    summary = first["gate_summary"]
    assert parse_datetime(summary["evaluated_at"]) >= before  # evaluated as the list was read, not stored
    assert {key: summary[key] for key in ("policy_version", "ready_to_execute", "counts", "failing_kinds")} == {
        "policy_version": 1, "ready_to_execute": False,
        "counts": {"passed": 4, "failed": 0, "pending": 1, "waived": 0}, "failing_kinds": ["approvals"],
    }  # fmt: skip

    second = rows[unconfirmed]
    assert second["risk_tier"] == {"effective": "high", "confirmed": "", "label": UNCONFIRMED, "note": ""}
    assert second["gate_summary"]["counts"] == {"passed": 3, "failed": 3, "pending": 1, "waived": 0}
    assert second["gate_summary"]["failing_kinds"] == ["approvals", "model_card", "check"]
    for request_id in (confirmed, unconfirmed):  # the same evaluation as the request's page
        assert rows[request_id]["gate_summary"]["counts"] == counts_on_the_request_page(reviewer, project, request_id)

    assert rows[withdrawn]["state"] == "withdrawn"
    assert rows[withdrawn]["gate_summary"] is None  # only open requests have gates to pass
    assert rows[withdrawn]["risk_tier"]["label"] == UNCONFIRMED

    assert reviewer.post(url(project, f"promotion-requests/{confirmed}/approve/"), {}, format="json").status_code == 200
    open_only = reviewer.get(QUEUE, {"state": "open"}).json()["results"]
    assert [row["id"] for row in open_only] == [confirmed, unconfirmed]
    now_ready = open_only[0]["gate_summary"]
    assert (now_ready["ready_to_execute"], now_ready["counts"]["pending"], now_ready["failing_kinds"]) == (True, 0, [])


def test_a_confirmation_that_does_not_count_says_why(api, project, admin_user, ml_engineer, officer, ready_version):
    from governance.accounts.services import role_grant

    # The officer who confirmed version 1's tier becomes an engineer too and requests its promotion: separation
    # of duties now excludes them, so their confirmation no longer counts.
    role_grant(actor=Principal(admin_user), project=project, principal=officer, role="ml_engineer")
    request_promotion(api(officer), project, version=1)
    risk_tier = api(officer).get(QUEUE).json()["results"][0]["risk_tier"]
    assert (risk_tier["effective"], risk_tier["confirmed"], risk_tier["label"]) == ("high", "", UNCONFIRMED)
    assert risk_tier["note"] == "officer's confirmation does not count: they requested its promotion"


def test_the_queue_costs_the_same_queries_for_one_request_and_for_many(
    api,
    project,
    admin_user,
    ml_engineer,
    officer,
    officer2,
    training_data,
    django_assert_num_queries,
):
    """Every request with all the gate kinds (unconfirmed tiers count as high: the check gates too), an
    approval and a training run reported through OpenLineage, so each bulk query has rows to load."""
    from governance.promotion.services import exception_grant
    from governance.registry.models import ModelVersion

    reviewer = api(officer)

    def requested(n, environment="production"):
        version = register(project, ml_engineer, training_data)
        ingest(Principal(ml_engineer), project, run_event(
            "train", inputs=[dataset("train", version="1")], run_facets=model_facet("fraud-gbm", n)))  # fmt: skip
        return PromotionRequestFactory(version=version, environment=environment, approved_by=[officer]).pk

    ids = [requested(1)]
    queue_reader = api(officer2)
    with django_assert_num_queries(QUEUE_QUERIES):
        assert len(queue_reader.get(QUEUE, {"state": "open"}).json()["results"]) == 1

    ids += [requested(n, environment) for n, environment in ((2, "production"), (3, "staging"), (4, "production"))]
    api(officer2).post(f"{versions_url(project)}2/model-card/confirm-risk-tier/", {"comment": "agreed"}, format="json")
    exception_grant(
        actor=Principal(officer2), version=ModelVersion.objects.get(version=4), environment=project.environments.get(
            name="production"), gate="check", name="no data yet", justification="first release",
        requested_by=ml_engineer, expires_at=timezone.now() + timedelta(days=3),
    )  # fmt: skip
    queue_reader = api(officer2)
    with django_assert_num_queries(QUEUE_QUERIES):
        rows = queue_reader.get(QUEUE, {"state": "open"}).json()["results"]
    assert len(rows) == len(ids)
    assert rows[1]["risk_tier"]["label"] == "limited"
    assert rows[3]["gate_summary"]["counts"]["waived"] == 2  # both check gates, by the exception
    for row in rows:  # evaluated together, the same as each request's page evaluated alone
        assert row["gate_summary"]["counts"] == counts_on_the_request_page(reviewer, project, row["id"])
