"""Models, versions, metrics and dataset links through the API, as a retrying pipeline uses them."""

import hashlib
import threading

import pytest
from django.db import connections

from governance.audit.models import AuditEvent
from governance.provenance.models import Dataset, DatasetVersion
from governance.registry.models import Metric, ModelVersion, RegisteredModel
from tests.factories import DatasetVersionFactory

SIGNATURE = {
    "inputs": [{"name": "amount", "type": "float"}, {"name": "country", "type": "string"}],
    "outputs": [{"name": "score", "type": "float"}],
}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def body(n=1, **extra):
    return {
        "artifact_uri": f"s3://models/fraud/{n}/model.onnx",
        "artifact_sha256": sha(f"artifact {n}"),
        "framework": "sklearn",
        "signature": SIGNATURE,
        "params": {"max_depth": 6},
        "tags": ["gbm"],
        **extra,
    }


@pytest.fixture
def dataset_version(project, ml_engineer):
    """The training data, without a licence or a classification."""
    return DatasetVersionFactory(
        project=project, created_by=ml_engineer, dataset__license="", dataset__classification=""
    )


@pytest.fixture
def stored_version(dataset_version, ml_engineer):
    return DatasetVersion.objects.create(
        dataset=dataset_version.dataset, version="2", kind="uploaded", sha256=sha("ref"),
        storage_path="projects/fraud/datasets/1/ref.parquet", created_by=ml_engineer,
    )  # fmt: skip


def versions_url(project, model="fraud-gbm"):
    return f"/api/v1/projects/{project.slug}/models/{model}/versions/"


def test_an_engineer_registers_versions_with_metrics_and_datasets(api, project, ml_engineer, dataset_version):
    client = api(ml_engineer)
    first = client.post(
        versions_url(project),
        body(
            1,
            metrics=[
                {"name": "auc", "value": 0.91, "dataset_version": dataset_version.pk},
                {"name": "auc", "value": 0.87, "dataset_version": dataset_version.pk, "subgroup": "country=FR"},
            ],
            datasets=[{"dataset_version": dataset_version.pk, "role": "trained_on"}],
        ),
        format="json",
    )
    assert first.status_code == 201, first.json()
    assert first.json()["version"] == 1
    assert {m["subgroup"] for m in first.json()["metrics"]} == {"", "country=FR"}
    assert first.json()["datasets"][0]["role"] == "trained_on"
    assert first.json()["risk_tier"]["effective"] == "high"

    second = client.post(versions_url(project), body(2), format="json")
    assert second.json()["version"] == 2
    assert RegisteredModel.objects.get(project=project, name="fraud-gbm").owner == ml_engineer
    actions = list(AuditEvent.objects.filter(project=project).values_list("action", flat=True))
    assert actions.count("model_version.registered") == 2
    assert actions.count("model.created") == 1


def test_a_retry_returns_the_existing_version(api, project, ml_engineer, dataset_version):
    client = api(ml_engineer)
    payload = body(1, metrics=[{"name": "auc", "value": 0.9}])
    assert client.post(versions_url(project), payload, format="json").status_code == 201
    again = client.post(versions_url(project), payload, format="json")
    assert again.status_code == 200
    assert again.json()["version"] == 1
    assert ModelVersion.objects.count() == 1
    assert Metric.objects.count() == 1
    assert AuditEvent.objects.filter(action="model_version.registered").count() == 1


def test_immutable_fields_cannot_change_on_a_retry(api, project, ml_engineer):
    client = api(ml_engineer)
    client.post(versions_url(project), body(1), format="json")
    changed = client.post(versions_url(project), body(1, artifact_uri="s3://models/other.onnx"), format="json")
    assert changed.status_code == 409
    assert changed.json()["error"]["details"] == [{"field": "artifact_uri"}]
    other_metric = client.post(versions_url(project), body(1, metrics=[{"name": "auc", "value": 0.1}]), format="json")
    assert other_metric.status_code == 201 or other_metric.status_code == 200
    conflict = client.post(versions_url(project), body(1, metrics=[{"name": "auc", "value": 0.2}]), format="json")
    assert conflict.status_code == 409
    patch = client.patch(f"{versions_url(project)}1/", {"artifact_sha256": sha("x")}, format="json")
    assert patch.status_code == 409
    assert (
        client.patch(f"{versions_url(project)}1/", {"tags": ["x"], "colour": "red"}, format="json").status_code == 400
    )
    assert ModelVersion.objects.get().artifact_uri == "s3://models/fraud/1/model.onnx"


@pytest.mark.parametrize(
    "uri",
    ["file:///etc/passwd", "s3://bucket/../secrets", "s3://bucket/a\\b", "javascript:alert(1)", "s3://b/%252e%252e/x"],
)
def test_unsafe_artifact_uris_are_refused(api, project, ml_engineer, uri):
    response = api(ml_engineer).post(versions_url(project), body(1, artifact_uri=uri), format="json")
    assert response.status_code == 400, response.json()
    assert not ModelVersion.objects.exists()


def test_bad_bodies_change_nothing(api, project, ml_engineer):
    client = api(ml_engineer)
    cases = [
        body(1, artifact_sha256="not-a-hash"),
        body(1, signature={"inputs": [], "outputs": [{"name": "s", "type": "float"}]}),
        body(1, signature={"inputs": [{"name": "a", "type": "complex"}], "outputs": [{"name": "s", "type": "float"}]}),
        body(1, metrics=[{"name": "auc", "value": "high"}]),
        body(1, metrics=[{"name": "auc", "value": 0.9}, {"name": "auc", "value": 0.8}]),
        body(1, datasets=[{"dataset_version": 999999, "role": "trained_on"}]),
        body(1, tags=["has space"]),
    ]
    for case in cases:
        response = client.post(versions_url(project), case, format="json")
        assert response.status_code == 400, (case, response.json())
        assert response.json()["error"]["details"]
    assert client.post(versions_url(project), "[1]", content_type="text/plain").status_code == 415
    assert not ModelVersion.objects.exists()
    assert not RegisteredModel.objects.exists()


def test_reference_data_must_be_stored(api, project, ml_engineer, dataset_version, stored_version):
    client = api(ml_engineer)
    refused = client.post(
        versions_url(project), body(1, datasets=[{"dataset_version": dataset_version.pk, "role": "reference"}]),
        format="json",
    )  # fmt: skip
    assert refused.status_code == 400
    accepted = client.post(
        versions_url(project), body(1, datasets=[{"dataset_version": stored_version.pk, "role": "reference"}]),
        format="json",
    )  # fmt: skip
    assert accepted.status_code == 201


def test_another_projects_dataset_cannot_be_linked(api, project, ml_engineer, other_project):
    foreign = Dataset.objects.create(project=other_project, namespace="s3://x", name="theirs")
    version = DatasetVersion.objects.create(dataset=foreign, version="1", kind="uri", uri="s3://x/y", sha256=sha("y"))
    response = api(ml_engineer).post(
        versions_url(project), body(1, datasets=[{"dataset_version": version.pk, "role": "trained_on"}]), format="json"
    )
    assert response.status_code == 400
    assert not ModelVersion.objects.exists()


def test_who_may_register(api, project, officer, auditor, outsider):
    assert api(officer).post(versions_url(project), body(1), format="json").status_code == 403
    assert api(auditor).post(versions_url(project), body(1), format="json").status_code == 403
    assert api(outsider).post(versions_url(project), body(1), format="json").status_code == 404
    assert AuditEvent.objects.filter(project=project, action="access.denied").count() == 2


def test_a_service_account_registers(api, project, admin_user):
    from governance.accounts.access import Principal
    from governance.accounts.services import service_account_create

    account, _, raw_key = service_account_create(
        actor=Principal(admin_user), project=project, name="ci", role="ml_engineer"
    )
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    response = client.post(versions_url(project), body(1), format="json")
    assert response.status_code == 201
    assert response.json()["created_by"] == account.username


def test_search_and_filters(api, project, ml_engineer):
    client = api(ml_engineer)
    client.post(
        versions_url(project), body(1, tags=["gbm", "nightly"], metrics=[{"name": "auc", "value": 0.80}]), format="json"
    )
    client.post(versions_url(project), body(2, tags=["gbm"], metrics=[{"name": "auc", "value": 0.92}]), format="json")
    client.post(versions_url(project, "churn"), body(3, tags=["nightly"]), format="json")
    listed = client.get(versions_url(project), {"metric": "auc", "metric_min": 0.9}).json()["results"]
    assert [v["version"] for v in listed] == [2]
    listed = client.get(versions_url(project), {"tag": "nightly"}).json()["results"]
    assert [v["version"] for v in listed] == [1]
    listed = client.get(versions_url(project), {"created_by": "nobody"}).json()["results"]
    assert listed == []
    assert client.get(versions_url(project), {"metric": "auc", "metric_min": "x"}).status_code == 400
    models = client.get(f"/api/v1/projects/{project.slug}/models/", {"q": "fraud"}).json()["results"]
    assert [(m["name"], m["version_count"]) for m in models] == [("fraud-gbm", 2)]
    models = client.get(f"/api/v1/projects/{project.slug}/models/", {"tag": "nightly"}).json()["results"]
    assert models == []


def test_list_query_counts_do_not_grow_with_rows(
    api, project, ml_engineer, dataset_version, django_assert_max_num_queries
):
    client = api(ml_engineer)
    for n in range(1, 8):
        client.post(
            versions_url(project),
            body(
                n,
                metrics=[{"name": "auc", "value": 0.8}, {"name": "f1", "value": 0.7}],
                datasets=[{"dataset_version": dataset_version.pk, "role": "trained_on"}],
            ),
            format="json",
        )
    with django_assert_max_num_queries(11):  # one of them prefetches every version's lineage runs
        response = client.get(versions_url(project))
    assert response.json()["count"] == 7
    with django_assert_max_num_queries(7):
        assert client.get(f"/api/v1/projects/{project.slug}/models/").status_code == 200


def test_an_outsider_sees_no_models(api, project, ml_engineer, outsider):
    api(ml_engineer).post(versions_url(project), body(1), format="json")
    client = api(outsider)
    assert client.get(f"/api/v1/projects/{project.slug}/models/").status_code == 404
    assert client.get(f"{versions_url(project)}1/").status_code == 404


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_registrations_never_share_a_number(staff, admin_user):
    from governance.accounts.access import Principal
    from governance.accounts.models import Role
    from governance.accounts.services import project_create, role_grant
    from tests.factories import UserFactory

    project = project_create(actor=Principal(staff), slug="race", name="Race", admin=admin_user)
    engineer = UserFactory(username="racer")
    role_grant(actor=Principal(admin_user), project=project, principal=engineer, role=Role.ML_ENGINEER)
    from rest_framework.test import APIClient

    from governance.accounts.services import api_key_issue

    _, raw_key = api_key_issue(
        actor=Principal(engineer), owner=engineer, project=project, name="t", read_only=False, expires_at=None
    )
    statuses, barrier = [], threading.Barrier(8)

    def register(n):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
        barrier.wait()
        # Half the threads send the same artifact: a retry storm must still yield one version for it.
        statuses.append(client.post(versions_url(project, "racer"), body(n % 5), format="json").status_code)
        connections.close_all()

    threads = [threading.Thread(target=register, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(set(statuses)) <= [200, 201], statuses
    numbers = sorted(ModelVersion.objects.filter(model__project=project).values_list("version", flat=True))
    assert numbers == [1, 2, 3, 4, 5]


def test_a_hash_in_capitals_is_stored_lowercase_and_names_the_same_version(api, project, ml_engineer):
    client = api(ml_engineer)
    upper = body(7, artifact_sha256=sha("artifact 7").upper())
    created = client.post(versions_url(project), upper, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["artifact_sha256"] == sha("artifact 7")
    again = client.post(versions_url(project), body(7), format="json")  # the retry, in lowercase
    assert again.status_code == 200, again.json()
    assert again.json()["version"] == created.json()["version"]
    assert ModelVersion.objects.get(artifact_sha256=sha("artifact 7")).version == created.json()["version"]


def test_a_new_versions_answer_is_what_a_read_of_it_answers(api, project, ml_engineer, dataset_version, stored_version):
    """The registration answers from what it wrote, without reading the version back: byte for byte what a
    read answers, JSON as stored (PostgreSQL orders an object's keys, and writes 1e20 as an integer)."""
    client = api(ml_engineer)
    params = {"n_estimators": 200, "a": 1.5, "big": 1e20, "nested": {"long_name": [1, 2], "b": None}}
    created = client.post(
        versions_url(project),
        body(
            1,
            params=params,
            signature={"outputs": SIGNATURE["outputs"], "inputs": SIGNATURE["inputs"]},
            metrics=[
                {"name": "f1", "value": 0.7},
                {"name": "auc", "value": 0.8, "subgroup": "b"},
                {"name": "auc", "value": 0.81, "subgroup": "a", "dataset_version": dataset_version.pk},
            ],
            datasets=[
                {"dataset_version": stored_version.pk, "role": "validated_on"},
                {"dataset_version": dataset_version.pk, "role": "trained_on"},
                {"dataset_version": stored_version.pk, "role": "reference"},
            ],
        ),
        format="json",
    )
    assert created.status_code == 201, created.json()
    read = client.get(f"{versions_url(project)}1/")
    assert created.content == read.content
    assert [m["name"] for m in created.json()["metrics"]] == ["auc", "auc", "f1"]


@pytest.mark.postgres  # the counts are PostgreSQL's: other databases take the ORM's way, in more statements
def test_registering_a_version_takes_a_handful_of_statements(
    api, project, ml_engineer, dataset_version, django_assert_max_num_queries
):
    """Pinned: authentication (key, project, roles), the artifact link lock, one statement that numbers and
    inserts the version, the lineage node, the audit event with its chain head, the webhooks and the access
    log; in a test, savepoints (two pairs) stand for the transaction's BEGIN and COMMIT. Datasets and metrics
    add four: one read of their dataset versions, one insert each, and the dataset nodes' edges. Nothing is
    read back after the commit."""
    client = api(ml_engineer)
    assert client.post(versions_url(project), body(1), format="json").status_code == 201
    with django_assert_max_num_queries(13):
        assert client.post(versions_url(project), body(2), format="json").status_code == 201
    with django_assert_max_num_queries(17):
        response = client.post(
            versions_url(project),
            body(
                3,
                metrics=[{"name": "auc", "value": 0.8}, {"name": "f1", "value": 0.7}],
                datasets=[{"dataset_version": dataset_version.pk, "role": "trained_on"}],
            ),
            format="json",
        )
    assert response.status_code == 201
