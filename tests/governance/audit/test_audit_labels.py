"""Audit events by what people know (issue 14, item 9): each event's target label, the filters that match it
without a join, the access log's filters by URL, and chain verification across events with and without labels."""

import csv
import io
import json

import pytest
from django.db import transaction
from django.utils import timezone

from governance.accounts.access import Principal
from governance.accounts.models import User
from governance.audit.chain import canonical, checkpoint_all, digest, verify_chain
from governance.audit.db import audit_maintenance
from governance.audit.models import AuditChainHead, AuditEvent, chain_of, label_part
from governance.audit.services import audit_record
from governance.promotion.models import Deployment, PromotionRequest
from governance.provenance.services import dataset_create, dataset_version_register
from governance.registry.models import ModelVersion
from governance.registry.services import model_version_register
from monitoring.services.monitors import monitor_create
from tests.factories import CARD
from tests.governance.promotion.test_promotion import request_promotion, url
from tests.governance.registry.test_registry import SIGNATURE, body, sha, versions_url


@pytest.fixture
def story(api, project, ml_engineer, officer, training_data, outsider, other_project):
    """fraud-gbm 1 (with its card) promoted to production, then suspended; fraud-gbm 2 registered; monitors on
    the deployment and on version 2; a model whose name starts like it; datasets named alike. The other project
    has a fraud-gbm 1 and a customers dataset of its own. Version 1 is registered, described and confirmed over
    HTTP (not with the ``ready_version`` factory): the access log's entries of those requests are asserted."""
    engineer, reviewer = api(ml_engineer), api(officer)
    first = body(1, metrics=[{"name": "auc", "value": 0.91}],
                 datasets=[{"dataset_version": training_data.pk, "role": "trained_on"}])  # fmt: skip
    assert engineer.post(versions_url(project), first, format="json").status_code == 201
    card_url = f"{versions_url(project)}1/model-card/"
    assert engineer.put(card_url, CARD, format="json").status_code == 200
    assert reviewer.post(f"{card_url}confirm-risk-tier/", {"comment": "agreed"}, format="json").status_code == 200
    assert engineer.post(versions_url(project), body(2), format="json").status_code == 201
    assert engineer.post(versions_url(project, "fraud-gbm-v2"), body(3), format="json").status_code == 201
    request_id = request_promotion(engineer, project).json()["id"]
    approve = reviewer.post(url(project, f"promotion-requests/{request_id}/approve/"), {"comment": "ok"}, format="json")
    assert approve.status_code == 200
    assert engineer.post(url(project, f"promotion-requests/{request_id}/execute/")).status_code == 200
    suspend = url(project, "deployments/fraud-gbm/production/suspend/")
    assert reviewer.post(suspend, {"reason": "drift"}, format="json").status_code == 200

    me = Principal(ml_engineer)
    deployment = Deployment.objects.get(project=project)
    version_2 = ModelVersion.objects.get(model__project=project, model__name="fraud-gbm", version=2)
    on_deployment = monitor_create(actor=me, project=project, name="quality", kind="data_quality", config={},
                                   deployment=deployment)  # fmt: skip
    on_version = monitor_create(actor=me, project=project, name="quality-2", kind="data_quality", config={},
                                model_version=version_2)  # fmt: skip
    for name, versions in (("customers", ["1", "2"]), ("customers-eu", ["2"]), ("customers/2", ["1"])):
        dataset = dataset_create(actor=me, project=project, namespace="s3://crm", name=name)
        for label in versions:
            dataset_version_register(actor=me, dataset=dataset, uri=f"s3://crm/{label}", sha256=sha(name + label),
                                     version=label)  # fmt: skip

    theirs = Principal(outsider)
    model_version_register(actor=theirs, project=other_project, model_name="fraud-gbm", artifact_uri="s3://o/1",
                           artifact_sha256=sha("theirs"), signature=SIGNATURE)  # fmt: skip
    dataset = dataset_create(actor=theirs, project=other_project, namespace="s3://crm", name="customers")
    dataset_version_register(actor=theirs, dataset=dataset, uri="s3://crm/theirs", sha256=sha("theirs"), version="2")
    return {"request": request_id, "on_deployment": on_deployment.pk, "on_version": on_version.pk}


def _events(client, project, **params) -> list[tuple[str, str]]:
    response = client.get(f"/api/v1/projects/{project.slug}/audit-events/", {"page_size": 500, **params})
    assert response.status_code == 200, response.content
    return [(event["action"], event["target_label"]) for event in response.json()["results"]]


# --- The labels ---


def test_every_event_is_labelled_by_what_people_know(story, project, auditor):
    request, monitor = story["request"], story["on_deployment"]
    events = AuditEvent.objects.filter(project=project)
    labels = {action: set(events.filter(action=action).values_list("target_label", flat=True)) for action in (
        "project.created", "role.granted", "policy.published", "model_card.risk_tier_confirmed", "promotion.approved",
        "deployment.suspended", "dataset.created",
    )}  # fmt: skip
    assert labels == {
        "project.created": {"project:fraud"},
        "role.granted": {"member:admin/admin", "member:mlengineer/ml_engineer", "member:officer/governance_officer",
                         "member:auditor/auditor"},
        "policy.published": {"policy:1"},
        "model_card.risk_tier_confirmed": {"model:fraud-gbm/1"},
        "promotion.approved": {f"model:fraud-gbm/1/promotion-request:{request}"},
        "deployment.suspended": {"model:fraud-gbm/deployment:production"},
        "dataset.created": {"dataset:customers", "dataset:customers-eu", "dataset:customers%2F2"},
    }  # fmt: skip
    assert events.get(action="monitor.created", target_id=str(monitor)).target_label == (
        f"model:fraud-gbm/deployment:production/monitor:{monitor}"
    )


def test_a_label_is_hashed_with_its_event(story, project):
    event = AuditEvent.objects.get(action="deployment.promoted")
    body = json.loads(event.payload)
    assert body["v"] == 2
    assert body["target"] == {"type": "deployment", "id": event.target_id, "label": event.target_label}
    assert digest(event.payload) == event.hash


def test_names_are_escaped_so_a_label_splits_back_into_its_parts():
    assert label_part("fraud-gbm") == "fraud-gbm"
    assert label_part("customers/2") == "customers%2F2"
    assert label_part("100% clean data") == "100%25%20clean%20data"
    assert label_part("données\tbrutes") == "données%09brutes"


def test_a_target_without_a_label_of_its_own_is_its_type_and_id(project, admin_user):
    event = audit_record(action="test.noted", actor=Principal(admin_user), project=project, target=("thing", 7))
    assert event.target_label == "thing:7"
    assert audit_record(action="test.noted", actor=Principal(admin_user), project=project).target_label == ""


# --- The filters ---


def test_by_model_its_versions_requests_deployments_and_monitors(api, story, project, auditor):
    request = f"model:fraud-gbm/1/promotion-request:{story['request']}"
    deployment = "model:fraud-gbm/deployment:production"
    assert _events(api(auditor), project, model="fraud-gbm") == [
        ("model.created", "model:fraud-gbm"),
        ("model_version.registered", "model:fraud-gbm/1"),
        ("model_card.edited", "model:fraud-gbm/1"),
        ("model_card.risk_tier_confirmed", "model:fraud-gbm/1"),
        ("model_version.registered", "model:fraud-gbm/2"),
        ("promotion.requested", request),
        ("promotion.approved", request),
        ("gate.evaluated", request),
        ("deployment.promoted", deployment),
        ("deployment.suspended", deployment),
        ("monitor.created", f"{deployment}/monitor:{story['on_deployment']}"),
        ("monitor.created", f"model:fraud-gbm/2/monitor:{story['on_version']}"),
    ]  # neither fraud-gbm-v2 nor the other project's fraud-gbm


def test_by_model_and_version(api, story, project, auditor):
    client, request = api(auditor), f"model:fraud-gbm/1/promotion-request:{story['request']}"
    assert _events(client, project, model="fraud-gbm", version=1) == [
        ("model_version.registered", "model:fraud-gbm/1"),
        ("model_card.edited", "model:fraud-gbm/1"),
        ("model_card.risk_tier_confirmed", "model:fraud-gbm/1"),
        ("promotion.requested", request),
        ("promotion.approved", request),
        ("gate.evaluated", request),
    ]
    assert _events(client, project, model="fraud-gbm", version=2) == [
        ("model_version.registered", "model:fraud-gbm/2"),
        ("monitor.created", f"model:fraud-gbm/2/monitor:{story['on_version']}"),
    ]
    assert _events(client, project, model="fraud-gbm", version=9) == []
    assert _events(client, project, model="fraud-gbm-v2", version=1) == [
        ("model_version.registered", "model:fraud-gbm-v2/1")
    ]


def test_by_promotion_request(api, story, project, auditor):
    request = f"model:fraud-gbm/1/promotion-request:{story['request']}"
    client = api(auditor)
    assert _events(client, project, promotion_request=story["request"]) == [
        ("promotion.requested", request),
        ("promotion.approved", request),
        ("gate.evaluated", request),
    ]
    later = PromotionRequest.objects.order_by("-pk").first().pk + 1
    assert _events(client, project, promotion_request=later) == []


def test_by_deployment(api, story, project, auditor):
    deployment = "model:fraud-gbm/deployment:production"
    client = api(auditor)
    assert _events(client, project, deployment="fraud-gbm/production") == [
        ("deployment.promoted", deployment),
        ("deployment.suspended", deployment),
        ("monitor.created", f"{deployment}/monitor:{story['on_deployment']}"),
    ]
    assert _events(client, project, deployment="fraud-gbm/staging") == []


def test_by_dataset_and_dataset_version(api, story, project, auditor):
    client = api(auditor)
    assert _events(client, project, dataset="customers") == [
        ("dataset.created", "dataset:customers"),
        ("dataset_version.registered", "dataset:customers/1"),
        ("dataset_version.registered", "dataset:customers/2"),
    ]  # neither customers-eu, nor customers/2, nor the other project's customers
    assert _events(client, project, dataset="customers", dataset_version="2") == [
        ("dataset_version.registered", "dataset:customers/2")
    ]
    assert _events(client, project, dataset="customers/2") == [
        ("dataset.created", "dataset:customers%2F2"),
        ("dataset_version.registered", "dataset:customers%2F2/1"),
    ]


def test_filters_combine_and_stay_in_their_project(api, story, project, other_project, auditor):
    assert _events(api(auditor), project, model="fraud-gbm", version=1, promotion_request=story["request"]) == [
        ("promotion.requested", f"model:fraud-gbm/1/promotion-request:{story['request']}"),
        ("promotion.approved", f"model:fraud-gbm/1/promotion-request:{story['request']}"),
        ("gate.evaluated", f"model:fraud-gbm/1/promotion-request:{story['request']}"),
    ]
    assert _events(api(auditor), project, model="fraud-gbm", dataset="customers") == []
    theirs = api(User.objects.get(username="other-admin"))
    assert _events(theirs, other_project, model="fraud-gbm") == [
        ("model.created", "model:fraud-gbm"),
        ("model_version.registered", "model:fraud-gbm/1"),
    ]
    assert _events(theirs, other_project, dataset="customers", dataset_version="2") == [
        ("dataset_version.registered", "dataset:customers/2")
    ]


def test_the_exact_label_filters_too_and_the_export_carries_it(api, story, project, auditor):
    client = api(auditor)
    assert _events(client, project, target_label="model:fraud-gbm/2") == [
        ("model_version.registered", "model:fraud-gbm/2")
    ]
    response = client.get(f"/api/v1/projects/{project.slug}/audit-events/", {"format": "csv", "dataset": "customers"})
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row["target_label"] for row in rows] == ["dataset:customers", "dataset:customers/1", "dataset:customers/2"]


GIVE_MODEL = "Give model too: ?model=<name>&version=<version>."
GIVE_DATASET = "Give dataset too: ?dataset=<name>&dataset_version=<version>."
AT_LEAST_ONE = "Ensure this value is greater than or equal to 1."


@pytest.mark.parametrize(
    "params, field, message, code",
    [
        ({"version": "1"}, "version", GIVE_MODEL, "invalid"),
        ({"dataset_version": "2"}, "dataset_version", GIVE_DATASET, "invalid"),
        ({"model": "fraud-gbm", "version": "one"}, "version", "Enter a whole number.", "invalid"),
        ({"model": "fraud-gbm", "version": "0"}, "version", AT_LEAST_ONE, "min_value"),
        ({"promotion_request": "x"}, "promotion_request", "Enter a whole number.", "invalid"),
        ({"deployment": "fraud-gbm"}, "deployment", "Enter a valid value.", "invalid"),
    ],
)
def test_a_bad_filter_is_400_naming_it(api, project, auditor, params, field, message, code):
    response = api(auditor).get(f"/api/v1/projects/{project.slug}/audit-events/", params)
    assert response.status_code == 400
    assert response.json()["error"]["details"] == [{"field": field, "message": message, "code": code}]


def test_the_filtered_list_has_a_fixed_number_of_queries(api, story, project, auditor, django_assert_max_num_queries):
    client = api(auditor)
    client.get(f"/api/v1/projects/{project.slug}/audit-events/")
    with django_assert_max_num_queries(7):  # key, project, roles, the page; the access log's savepoint and insert
        assert len(_events(client, project, model="fraud-gbm", deployment="fraud-gbm/production")) == 3


# --- The access log, by the URL a request named ---


def _requests(client, project, **params) -> list[tuple[str, str]]:
    response = client.get(f"/api/v1/projects/{project.slug}/access-log/", {"page_size": 500, **params})
    assert response.status_code == 200, response.content
    return [(entry["method"], entry["object"]) for entry in reversed(response.json()["results"])]


def test_the_access_log_by_model_version_request_and_deployment(api, story, project, auditor):
    client, request = api(auditor), story["request"]
    assert _requests(client, project, model="fraud-gbm", version=1) == [
        ("PUT", "model-card model=fraud-gbm version=1"),
        ("POST", "model-card-confirm-risk-tier model=fraud-gbm version=1"),
    ]
    assert _requests(client, project, model="fraud-gbm") == [
        ("POST", "model-version-list model=fraud-gbm"),
        ("PUT", "model-card model=fraud-gbm version=1"),
        ("POST", "model-card-confirm-risk-tier model=fraud-gbm version=1"),
        ("POST", "model-version-list model=fraud-gbm"),
        ("POST", "deployment-suspend model=fraud-gbm environment=production"),
    ]  # not fraud-gbm-v2's
    assert _requests(client, project, promotion_request=request) == [
        ("POST", f"promotion-approve pk={request}"),
        ("POST", f"promotion-execute pk={request}"),
    ]
    assert _requests(client, project, deployment="fraud-gbm/production") == [
        ("POST", "deployment-suspend model=fraud-gbm environment=production"),
    ]


def test_a_bad_access_log_filter_is_400(api, project, auditor):
    response = api(auditor).get(f"/api/v1/projects/{project.slug}/access-log/", {"version": "3"})
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "version"


# --- Verification across events with and without labels ---


def _record_without_label(project, user, action, target_type, target_id) -> AuditEvent:
    """An event exactly as written before labels existed: body version 1, no label, an empty column."""
    chain = chain_of(project.pk)
    with transaction.atomic():
        head = AuditChainHead.objects.select_for_update().get(chain=chain)
        occurred_at = timezone.now()
        body = {
            "v": 1, "chain": chain, "sequence": head.sequence + 1, "occurred_at": occurred_at.isoformat(),
            "project": {"id": project.pk, "slug": project.slug},
            "actor": {"id": user.pk, "name": user.username, "role": "admin", "key": None},
            "action": action, "target": {"type": target_type, "id": target_id}, "request_id": "",
            "client_address": "", "diff": {}, "prev_hash": head.hash,
        }  # fmt: skip
        payload = canonical(body)
        event = AuditEvent.objects.create(
            chain=chain, sequence=body["sequence"], occurred_at=occurred_at, project=project, actor_id=user.pk,
            actor_name=user.username, actor_role="admin", action=action, target_type=target_type,
            target_id=target_id, diff={}, prev_hash=head.hash, hash=digest(payload), payload=payload,
        )  # fmt: skip
        head.sequence, head.hash = event.sequence, event.hash
        head.save(update_fields=["sequence", "hash"])
    return event


@pytest.fixture
def mixed_chain(project, admin_user):
    """Events from before the upgrade (no label), then labelled ones, in one chain."""
    old = [_record_without_label(project, admin_user, "model.created", "registeredmodel", "41") for _ in range(3)]
    model_version_register(actor=Principal(admin_user), project=project, model_name="fraud-gbm",
                           artifact_uri="s3://m/1", artifact_sha256=sha("m1"), signature=SIGNATURE)  # fmt: skip
    return chain_of(project.pk), old


def test_a_chain_with_and_without_labels_verifies(mixed_chain, project):
    chain, old = mixed_chain
    assert [e.target_label for e in old] == ["", "", ""]
    assert AuditEvent.objects.filter(chain=chain, target_label="model:fraud-gbm/1").exists()
    checkpoint_all()
    result = verify_chain(chain)
    assert result["ok"], result
    assert result["events_checked"] == AuditEvent.objects.filter(chain=chain).count()


def test_a_changed_label_is_caught(mixed_chain):
    chain, _ = mixed_chain
    checkpoint_all()
    labelled = AuditEvent.objects.get(chain=chain, target_label="model:fraud-gbm/1")
    with audit_maintenance():
        AuditEvent.objects.filter(pk=labelled.pk).update(target_label="model:other/1")
    failure = verify_chain(chain)["first_failure"]
    assert (failure["sequence"], failure["reason"]) == (
        labelled.sequence,
        "the column 'target_label' disagrees with the hashed bytes",
    )


def test_a_label_added_to_an_old_event_is_caught(mixed_chain):
    """Old events cannot be relabelled after the fact: their bytes say they have none."""
    chain, old = mixed_chain
    checkpoint_all()
    with audit_maintenance():
        AuditEvent.objects.filter(pk=old[1].pk).update(target_label="model:fraud-gbm")
    failure = verify_chain(chain)["first_failure"]
    assert (failure["sequence"], failure["reason"]) == (
        old[1].sequence,
        "the column 'target_label' disagrees with the hashed bytes",
    )
