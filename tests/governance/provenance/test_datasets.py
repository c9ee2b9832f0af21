"""Datasets and their immutable versions: registration by URI and by upload, idempotent retries, immutability,
audit events, scoping (DESIGN §4, §6, §8)."""

import hashlib
import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from controlplane.api.errors import domain_error_status
from controlplane.exceptions import DomainError
from governance.accounts.access import Principal
from governance.accounts.models import Role
from governance.accounts.services import role_grant, service_account_create
from governance.audit.models import AccessLogEntry, AuditEvent
from governance.provenance.models import Dataset, DatasetVersion
from governance.provenance.services import dataset_create, dataset_version_register, dataset_version_upload
from governance.provenance.storage import HashingUploadHandler, UploadTooLarge

SHA_A = "a" * 64
SHA_B = "b" * 64
CSV = b"amount,merchant_category,country,hour,is_fraud,seen_at\n" + b"".join(
    f"{i * 1.5},grocery,{'DE' if i % 2 else 'FR'},{i % 24},{i % 7 == 0:d},2026-10-0{i % 9 + 1}T10:00:00\n".encode()
    for i in range(40)
)


def url(project, *parts) -> str:
    return "/".join([f"/api/v1/projects/{project.slug}/datasets", *map(str, parts)]) + "/"


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("sequence"))


def make_dataset(project, user, **fields) -> Dataset:
    defaults = {"namespace": "s3://fraud-raw", "name": "transactions", "classification": "confidential"}
    return dataset_create(actor=Principal(user), project=project, **{**defaults, **fields})


def csv_upload(content: bytes = CSV, name: str = "train.csv", content_type: str = "text/csv"):
    return SimpleUploadedFile(name, content, content_type=content_type)


def parquet_bytes() -> bytes:
    table = pa.table({"score": pa.array([0.1, 0.9, 0.5]), "label": pa.array([True, False, True])})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


# --- Datasets ---


def test_an_engineer_creates_a_dataset_and_it_is_audited(api, project, ml_engineer):
    response = api(ml_engineer).post(
        url(project),
        {
            "namespace": "s3://fraud-raw",
            "name": "transactions",
            "license": "proprietary",
            "classification": "confidential",
            "contains_pii": True,
            "pii_justification": "Card holders' country is needed to detect cross-border fraud.",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["owner"] == "mlengineer"
    assert body["version_count"] == 0
    dataset = Dataset.objects.get(pk=body["id"])
    assert (dataset.project, dataset.owner, dataset.contains_pii) == (project, ml_engineer, True)
    [event] = events("dataset.created")
    assert event.target_id == str(dataset.pk)
    assert event.diff["name"] == "transactions"


def test_a_duplicate_dataset_is_a_conflict(api, project, ml_engineer):
    make_dataset(project, ml_engineer)
    response = api(ml_engineer).post(
        url(project), {"namespace": "s3://fraud-raw", "name": "transactions"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert Dataset.objects.count() == 1


def test_unknown_fields_and_bad_classifications_are_400(api, project, ml_engineer):
    client = api(ml_engineer)
    response = client.post(url(project), {"namespace": "n", "name": "x", "owner": "someone"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "owner"
    response = client.post(url(project), {"namespace": "n", "name": "x", "classification": "secret"}, format="json")
    assert response.status_code == 400


def test_an_update_is_audited_with_a_field_diff(api, project, ml_engineer):
    dataset = make_dataset(project, ml_engineer)
    response = api(ml_engineer).patch(
        url(project, dataset.pk),
        {"namespace": "s3://fraud-raw", "classification": "restricted", "contains_pii": True, "description": "raw"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["classification"] == "restricted"
    [event] = events("dataset.updated")
    assert event.diff == {
        "classification": {"from": "confidential", "to": "restricted"},
        "contains_pii": {"from": False, "to": True},
        "description": {"from": "", "to": "raw"},
    }
    # The same PATCH again changes nothing and records nothing.
    api(ml_engineer).patch(url(project, dataset.pk), {"classification": "restricted"}, format="json")
    assert len(events("dataset.updated")) == 1


def test_renaming_a_dataset_is_a_conflict(api, project, ml_engineer):
    dataset = make_dataset(project, ml_engineer)
    response = api(ml_engineer).patch(url(project, dataset.pk), {"name": "renamed"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["details"] == [{"field": "name"}]
    assert Dataset.objects.get().name == "transactions"


def test_lists_filter_and_search(api, project, ml_engineer):
    make_dataset(project, ml_engineer)
    make_dataset(project, ml_engineer, name="cards", classification="internal", contains_pii=True)
    make_dataset(project, ml_engineer, namespace="s3://features", name="training", description="derived features")
    client = api(ml_engineer)

    def names(**params):
        response = client.get(url(project), params)
        assert response.status_code == 200, response.json()
        return [d["name"] for d in response.json()["results"]]

    assert names() == ["training", "cards", "transactions"]  # by namespace, then name
    assert names(namespace="s3://fraud-raw") == ["cards", "transactions"]
    assert names(contains_pii="true") == ["cards"]
    assert names(contains_pii="false") == ["training", "transactions"]
    assert names(classification="internal") == ["cards"]
    assert names(q="DERIVED") == ["training"]
    assert client.get(url(project), {"classification": "secret"}).status_code == 400


def test_the_dataset_list_makes_a_fixed_number_of_queries(api, project, ml_engineer, django_assert_max_num_queries):
    for index in range(8):
        dataset = make_dataset(project, ml_engineer, name=f"d{index}")
        dataset_version_register(actor=Principal(ml_engineer), dataset=dataset, uri="s3://b/k", sha256=SHA_A)
    client = api(ml_engineer)
    client.get(url(project))  # warm the key's last-use stamp
    with django_assert_max_num_queries(7):  # key, project, count, page; the access log's savepoint and insert
        response = client.get(url(project))
    assert len(response.json()["results"]) == 8
    assert {d["version_count"] for d in response.json()["results"]} == {1}


# --- Registration by URI ---


def test_a_version_is_registered_by_uri_and_audited(api, project, ml_engineer):
    dataset = make_dataset(project, ml_engineer)
    response = api(ml_engineer).post(
        url(project, dataset.pk, "versions"),
        {
            "uri": "s3://fraud-raw/transactions/2026-10.parquet",
            "sha256": SHA_A.upper(),
            "row_count": 1200,
            "schema": [{"name": "amount", "type": "float"}, {"name": "country", "type": "string"}],
            "motivation": "Monthly extract for the fraud model.",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["version"] == "1"
    assert (body["kind"], body["sha256"], body["row_count"], body["storage_path"]) == ("uri", SHA_A, 1200, "")
    assert body["created_by"] == "mlengineer"
    [event] = events("dataset_version.registered")
    assert event.diff["sha256"] == SHA_A and event.diff["uri"] == body["uri"]


def test_labels_count_up_when_not_given(api, project, ml_engineer):
    dataset = make_dataset(project, ml_engineer)
    client = api(ml_engineer)
    labels = []
    for sha in (SHA_A, SHA_B, "c" * 64):
        response = client.post(url(project, dataset.pk, "versions"), {"uri": "s3://b/k", "sha256": sha}, format="json")
        labels.append(response.json()["version"])
    assert labels == ["1", "2", "3"]
    listed = client.get(url(project, dataset.pk, "versions")).json()["results"]
    assert [v["version"] for v in listed] == ["3", "2", "1"]
    assert [
        v["version"] for v in client.get(url(project, dataset.pk, "versions"), {"sha256": SHA_B}).json()["results"]
    ] == ["2"]


def test_a_retry_with_the_same_sha256_returns_the_existing_version(api, project, ml_engineer):
    dataset = make_dataset(project, ml_engineer)
    client = api(ml_engineer)
    body = {"uri": "s3://fraud-raw/t.parquet", "sha256": SHA_A, "version": "2026-10"}
    first = client.post(url(project, dataset.pk, "versions"), body, format="json")
    again = client.post(url(project, dataset.pk, "versions"), body, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert DatasetVersion.objects.count() == 1
    assert len(events("dataset_version.registered")) == 1
    # Without a label, the same bytes are still the same version.
    unlabelled = client.post(url(project, dataset.pk, "versions"), {"uri": "s3://x/y", "sha256": SHA_A}, format="json")
    assert unlabelled.status_code == 200 and unlabelled.json()["id"] == first.json()["id"]


def test_a_label_that_exists_with_another_hash_is_a_conflict(api, project, ml_engineer):
    dataset = make_dataset(project, ml_engineer)
    client = api(ml_engineer)
    client.post(
        url(project, dataset.pk, "versions"), {"uri": "s3://b/k", "sha256": SHA_A, "version": "v1"}, format="json"
    )
    response = client.post(
        url(project, dataset.pk, "versions"), {"uri": "s3://b/k", "sha256": SHA_B, "version": "v1"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "version_exists"
    # The same bytes under another label are a conflict too: they already are v1.
    response = client.post(
        url(project, dataset.pk, "versions"), {"uri": "s3://b/k", "sha256": SHA_A, "version": "v2"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "already_registered"
    assert DatasetVersion.objects.count() == 1


def test_registering_an_observed_version_gives_it_its_hash(api, project, ml_engineer):
    dataset = make_dataset(project, ml_engineer)
    observed = DatasetVersion.objects.create(dataset=dataset, version="2026-11", kind="observed")
    response = api(ml_engineer).post(
        url(project, dataset.pk, "versions"),
        {"uri": "s3://fraud-raw/t.parquet", "sha256": SHA_A, "version": "2026-11"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["id"] == observed.pk  # the same row, so lineage edges to it stay
    observed.refresh_from_db()
    assert (observed.kind, observed.sha256) == ("uri", SHA_A)
    assert events("dataset_version.registered")[0].diff["was_observed"] is True


def test_a_bad_sha256_is_400(api, project, ml_engineer):
    dataset = make_dataset(project, ml_engineer)
    response = api(ml_engineer).post(
        url(project, dataset.pk, "versions"), {"uri": "s3://b/k", "sha256": "abc"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "sha256"


@pytest.mark.parametrize(
    "uri",
    [
        "s3://bucket/a/../../etc/passwd",
        "s3://bucket/a/%2e%2e/b",
        "s3://bucket/a/%252e%252e/b",
        "s3://bucket\\a",
        "file:///etc/passwd",
        "ftp://host/x.csv",
        "storage://projects/other/datasets/x.parquet",
    ],
)
def test_path_trick_uris_are_400(api, project, ml_engineer, uri):
    dataset = make_dataset(project, ml_engineer)
    response = api(ml_engineer).post(url(project, dataset.pk, "versions"), {"uri": uri, "sha256": SHA_A}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "uri"
    assert not DatasetVersion.objects.exists()


def test_a_storage_uri_in_the_projects_prefix_is_readable_by_workers(api, project, ml_engineer):
    dataset = make_dataset(project, ml_engineer)
    response = api(ml_engineer).post(
        url(project, dataset.pk, "versions"),
        {"uri": "storage://projects/fraud/landing/2026-10.parquet", "sha256": SHA_A},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["storage_path"] == "projects/fraud/landing/2026-10.parquet"


def test_the_datasheet_is_editable_and_audited_but_nothing_else(api, project, ml_engineer):
    dataset = make_dataset(project, ml_engineer)
    client = api(ml_engineer)
    created = client.post(
        url(project, dataset.pk, "versions"),
        {"uri": "s3://b/k", "sha256": SHA_A, "schema": [{"name": "a", "type": "integer"}]},
        format="json",
    ).json()
    detail = url(project, dataset.pk, "versions", created["id"])

    # The whole body sent back with a datasheet edit: the unchanged immutable fields are fine.
    unchanged = {k: created[k] for k in ("uri", "sha256", "version", "schema", "row_count")}
    response = client.patch(detail, {**unchanged, "known_biases": "Few rows from small merchants."}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["known_biases"] == "Few rows from small merchants."
    [event] = events("dataset_version.updated")
    assert event.diff == {"known_biases": {"from": "", "to": "Few rows from small merchants."}}

    for field, value in [
        ("sha256", SHA_B),
        ("uri", "s3://b/other"),
        ("version", "9"),
        ("row_count", 5),
        ("schema", [{"name": "a", "type": "string"}]),
    ]:
        response = client.patch(detail, {field: value, "motivation": "x"}, format="json")
        assert response.status_code == 409, field
        assert response.json()["error"]["details"] == [{"field": field}]
    version = DatasetVersion.objects.get()
    assert (version.sha256, version.motivation) == (SHA_A, "")
    assert len(events("dataset_version.updated")) == 1


# --- Uploads ---


def test_a_csv_upload_is_stored_as_parquet_under_the_project_prefix(api, project, ml_engineer):
    dataset = make_dataset(project, ml_engineer)
    response = api(ml_engineer).post(
        url(project, dataset.pk, "versions"),
        {"file": csv_upload(), "version": "train-1", "composition": "40 synthetic rows"},
        format="multipart",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    sha = hashlib.sha256(CSV).hexdigest()
    path = f"projects/fraud/datasets/{dataset.pk}/{sha}.parquet"
    assert (body["kind"], body["sha256"], body["storage_path"]) == ("uploaded", sha, path)
    assert body["uri"] == f"storage://{path}"
    assert (body["row_count"], body["size_bytes"], body["composition"]) == (40, len(CSV), "40 synthetic rows")
    assert body["schema"] == [
        {"name": "amount", "type": "float"},
        {"name": "merchant_category", "type": "string"},
        {"name": "country", "type": "string"},
        {"name": "hour", "type": "integer"},
        {"name": "is_fraud", "type": "integer"},
        {"name": "seen_at", "type": "datetime"},
    ]
    with default_storage.open(path, "rb") as stored:
        table = pq.read_table(stored)
    assert table.num_rows == 40
    assert table.column("country").to_pylist()[:2] == ["FR", "DE"]
    [event] = events("dataset_version.registered")
    assert event.diff["kind"] == "uploaded" and event.diff["sha256"] == sha


def test_the_same_upload_again_returns_the_existing_version(api, project, ml_engineer):
    dataset = make_dataset(project, ml_engineer)
    client = api(ml_engineer)
    first = client.post(url(project, dataset.pk, "versions"), {"file": csv_upload()}, format="multipart")
    again = client.post(url(project, dataset.pk, "versions"), {"file": csv_upload()}, format="multipart")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert DatasetVersion.objects.count() == 1
    assert len(events("dataset_version.registered")) == 1


def test_a_parquet_upload_is_stored_as_is(api, project, ml_engineer):
    dataset = make_dataset(project, ml_engineer)
    content = parquet_bytes()
    response = api(ml_engineer).post(
        url(project, dataset.pk, "versions"),
        {"file": SimpleUploadedFile("scores.parquet", content, content_type="application/octet-stream")},
        format="multipart",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    assert body["row_count"] == 3
    assert body["schema"] == [{"name": "score", "type": "float"}, {"name": "label", "type": "boolean"}]
    with default_storage.open(body["storage_path"], "rb") as stored:
        assert stored.read() == content


def test_an_upload_with_the_wrong_expected_hash_is_refused(api, project, ml_engineer):
    dataset = make_dataset(project, ml_engineer)
    response = api(ml_engineer).post(
        url(project, dataset.pk, "versions"), {"file": csv_upload(), "sha256": SHA_A}, format="multipart"
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "sha256"


@pytest.mark.parametrize(
    ("name", "content", "content_type", "says"),
    [
        ("bad.csv", b"a,b\n1,2\n3,4,5\n", "text/csv", "CSV"),
        ("bad.csv", b"a,b\n" + b"1,2\n" * 3 + b"\xff\xfe,x\n", "text/csv", "CSV"),
        ("empty.csv", b"", "text/csv", "empty"),
        ("header-only-bad.csv", b"\xff\xfe\n", "text/csv", "UTF-8"),
        ("broken.parquet", b"PAR1 not really parquet", "application/octet-stream", "Parquet"),
        ("model.pkl", b"\x80\x04\x95 pickle", "application/octet-stream", "Parquet file or a CSV"),
    ],
)
def test_unreadable_uploads_are_400_naming_the_problem(api, project, ml_engineer, name, content, content_type, says):
    dataset = make_dataset(project, ml_engineer)
    response = api(ml_engineer).post(
        url(project, dataset.pk, "versions"),
        {"file": SimpleUploadedFile(name, content, content_type=content_type)},
        format="multipart",
    )
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert says in error["message"] + error["details"][0]["message"]
    assert error["details"][0]["field"] == "file"
    assert not DatasetVersion.objects.exists()
    assert (
        not default_storage.exists(f"projects/fraud/datasets/{dataset.pk}")
        or not default_storage.listdir(f"projects/fraud/datasets/{dataset.pk}")[1]
    )


def test_a_csv_column_empty_at_first_is_read_as_text(api, project, ml_engineer):
    dataset = make_dataset(project, ml_engineer)
    rows = b"a,note\n" + b"1,\n" * 5 + b"2,late remark\n"
    version, created = dataset_version_upload(
        actor=Principal(ml_engineer), dataset=dataset, file=ContentFile(rows, name="notes.csv")
    )
    assert created and version.row_count == 6
    assert version.schema == [{"name": "a", "type": "integer"}, {"name": "note", "type": "string"}]
    assert version.sha256 == hashlib.sha256(rows).hexdigest()


def test_an_upload_over_the_limit_is_413(api, project, ml_engineer, settings):
    dataset = make_dataset(project, ml_engineer)
    settings.TOLLGATE_MAX_UPLOAD_BYTES = 512
    response = api(ml_engineer).post(
        url(project, dataset.pk, "versions"), {"file": csv_upload(CSV * 4)}, format="multipart"
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert not DatasetVersion.objects.exists()


def test_the_upload_handler_stops_at_the_limit_without_content_length(settings):
    """The handler stops at the limit by itself, whatever length the request announced."""
    settings.TOLLGATE_MAX_UPLOAD_BYTES = 100
    handler = HashingUploadHandler()
    handler.new_file("file", "big.csv", "text/csv", None)
    handler.receive_data_chunk(b"x" * 60, 0)
    with pytest.raises(UploadTooLarge) as caught:
        handler.receive_data_chunk(b"x" * 60, 60)
    assert domain_error_status(caught.value) == 413
    assert handler.file.closed


def test_the_upload_handler_hashes_what_it_streams(settings):
    handler = HashingUploadHandler()
    handler.new_file("file", "a.csv", "text/csv", None)
    for start in range(0, len(CSV), 100):
        handler.receive_data_chunk(CSV[start : start + 100], start)
    uploaded = handler.file_complete(len(CSV))
    assert uploaded.sha256 == hashlib.sha256(CSV).hexdigest()
    assert uploaded.temporary_file_path()  # on disk, not in memory
    uploaded.close()


def test_other_content_types_are_415(api, project, ml_engineer):
    dataset = make_dataset(project, ml_engineer)
    client = api(ml_engineer)
    response = client.post(url(project, dataset.pk, "versions"), "uri=s3://b/k", content_type="text/plain")
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    # Multipart is accepted by the versions endpoint only; the JSON endpoints refuse it.
    response = client.post(url(project), {"namespace": "n", "name": "x"}, format="multipart")
    assert response.status_code == 415
    response = client.patch(url(project, dataset.pk), {"description": "x"}, format="multipart")
    assert response.status_code == 415


# --- Who may do what ---


def test_an_auditor_reads_but_cannot_write(api, project, ml_engineer, auditor):
    dataset = make_dataset(project, ml_engineer)
    client = api(auditor)
    assert client.get(url(project, dataset.pk)).status_code == 200
    assert client.get(url(project, dataset.pk, "versions")).status_code == 200
    assert client.post(url(project), {"namespace": "n", "name": "x"}, format="json").status_code == 403
    assert client.patch(url(project, dataset.pk), {"description": "x"}, format="json").status_code == 403
    response = client.post(url(project, dataset.pk, "versions"), {"uri": "s3://b/k", "sha256": SHA_A}, format="json")
    assert response.status_code == 403
    response = client.post(url(project, dataset.pk, "versions"), {"file": csv_upload()}, format="multipart")
    assert response.status_code == 403
    assert not DatasetVersion.objects.exists()
    assert events("access.denied")


def test_an_officer_cannot_register_either(api, project, ml_engineer, officer):
    response = api(officer).post(url(project), {"namespace": "n", "name": "x"}, format="json")
    assert response.status_code == 403


def test_an_admin_may_write(api, project, admin_user):
    response = api(admin_user).post(url(project), {"namespace": "n", "name": "x"}, format="json")
    assert response.status_code == 201


def test_a_service_account_registers_with_its_key(api, project, admin_user):
    _, _, raw_key = service_account_create(actor=Principal(admin_user), project=project, name="ci", role="ml_engineer")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    created = client.post(url(project), {"namespace": "n", "name": "x"}, format="json")
    assert created.status_code == 201
    assert created.json()["owner"] == "ci@fraud"


def test_a_read_only_key_cannot_write(api, project, ml_engineer):
    client = api(ml_engineer, project=project, read_only=True)
    assert client.post(url(project), {"namespace": "n", "name": "x"}, format="json").status_code == 403


def test_an_outsider_sees_nothing(api, project, ml_engineer, outsider, other_project):
    dataset = make_dataset(project, ml_engineer)
    version, _ = dataset_version_register(actor=Principal(ml_engineer), dataset=dataset, uri="s3://b/k", sha256=SHA_A)
    client = api(outsider)
    assert client.get(url(project)).status_code == 404
    assert client.get(url(project, dataset.pk)).status_code == 404
    assert client.get(url(project, dataset.pk, "versions", version.pk)).status_code == 404
    # Their own project's URLs do not reach our rows either.
    assert client.get(url(other_project)).json()["results"] == []
    assert client.get(url(other_project, dataset.pk)).status_code == 404
    assert client.get(url(other_project, dataset.pk, "versions")).status_code == 404
    assert (
        client.post(
            url(other_project, dataset.pk, "versions"), {"uri": "s3://b/k", "sha256": SHA_B}, format="json"
        ).status_code
        == 404
    )


def test_another_projects_dataset_is_404_under_this_project(api, project, ml_engineer, other_project):
    role_grant(actor=Principal.system(), project=other_project, principal=ml_engineer, role=Role.ML_ENGINEER)
    theirs = make_dataset(other_project, ml_engineer, name="theirs")
    ours = make_dataset(project, ml_engineer)
    client = api(ml_engineer)
    assert client.get(url(project, theirs.pk)).status_code == 404
    assert client.get(url(other_project, ours.pk)).status_code == 404
    version, _ = dataset_version_register(actor=Principal(ml_engineer), dataset=theirs, uri="s3://b/k", sha256=SHA_A)
    assert client.get(url(project, ours.pk, "versions", version.pk)).status_code == 404


def test_reads_appear_in_the_access_log(api, project, ml_engineer):
    dataset = make_dataset(project, ml_engineer)
    api(ml_engineer).get(url(project, dataset.pk))
    entry = AccessLogEntry.objects.get(path=url(project, dataset.pk))
    assert (entry.principal_name, entry.status, entry.project_slug) == ("mlengineer", 200, "fraud")


def test_services_refuse_bad_input_directly(project, ml_engineer):
    dataset = make_dataset(project, ml_engineer)
    with pytest.raises(DomainError):
        dataset_version_register(
            actor=Principal(ml_engineer), dataset=dataset, uri="s3://b/k", sha256=SHA_A, schema=[{"name": "a"}]
        )
    with pytest.raises(DomainError):
        dataset_version_register(
            actor=Principal(ml_engineer), dataset=dataset, uri="s3://b/k", sha256=SHA_A, row_count=-1
        )


def test_the_version_list_makes_a_fixed_number_of_queries(api, project, ml_engineer, django_assert_max_num_queries):
    dataset = make_dataset(project, ml_engineer)
    for index in range(8):
        dataset_version_register(actor=Principal(ml_engineer), dataset=dataset, uri="s3://b/k", sha256=f"{index:064x}")
    client = api(ml_engineer)
    client.get(url(project, dataset.pk, "versions"))
    with django_assert_max_num_queries(8):  # key, project, dataset, count, page; the access log's three
        response = client.get(url(project, dataset.pk, "versions"))
    assert [v["created_by"] for v in response.json()["results"]] == ["mlengineer"] * 8


def test_the_demo_datasets_seed_twice_to_the_same_versions(project, ml_engineer):
    from governance.management.commands._demo_datasets import seed_datasets

    source, training = seed_datasets(project, ml_engineer)
    assert (source.kind, source.uri) == ("uri", "s3://fraud-raw/transactions/2026-10.parquet")
    assert (training.kind, training.row_count) == ("uploaded", 500)
    assert training.schema == [
        {"name": "amount", "type": "float"},
        {"name": "merchant_category", "type": "string"},
        {"name": "country", "type": "string"},
        {"name": "hour", "type": "integer"},
        {"name": "is_fraud", "type": "integer"},
    ]
    assert default_storage.exists(training.storage_path)
    assert [v.pk for v in seed_datasets(project, ml_engineer)] == [source.pk, training.pk]
    assert DatasetVersion.objects.count() == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_registrations_get_distinct_labels(project, ml_engineer):
    """Labels are numbered under the dataset's row lock: no duplicates, no 500s."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    dataset = make_dataset(project, ml_engineer)

    def register(index):
        try:
            version, _ = dataset_version_register(
                actor=Principal(ml_engineer), dataset=dataset, uri="s3://b/k", sha256=f"{index:064x}"
            )
            return version.version
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=6) as pool:
        labels = list(pool.map(register, range(12)))
    assert sorted(labels, key=int) == [str(n) for n in range(1, 13)]


def test_a_console_session_uploads_through_the_hashing_handler(project, ml_engineer, monkeypatch):
    """Session authentication's CSRF check reads the body before the view runs: the handler is in place by then."""
    ml_engineer.set_password("a long demo password")
    ml_engineer.save()
    dataset = make_dataset(project, ml_engineer)
    client = Client(enforce_csrf_checks=True)
    assert client.login(username="mlengineer", password="a long demo password")
    client.cookies["csrftoken"] = token = "t" * 32
    hashed = []
    complete = HashingUploadHandler.file_complete
    monkeypatch.setattr(
        HashingUploadHandler, "file_complete", lambda self, size: hashed.append(size) or complete(self, size)
    )

    response = client.post(url(project, dataset.pk, "versions"), {"file": csv_upload()}, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 201, response.json()
    assert hashed == [len(CSV)]
    assert client.post(url(project, dataset.pk, "versions"), {"file": csv_upload(b"a\n1\n")}).status_code == 403


def test_a_refused_upload_leaves_no_file_behind(api, project, ml_engineer):
    dataset = make_dataset(project, ml_engineer)
    dataset_version_register(actor=Principal(ml_engineer), dataset=dataset, uri="s3://b/k", sha256=SHA_A, version="v1")
    response = api(ml_engineer).post(
        url(project, dataset.pk, "versions"), {"file": csv_upload(), "version": "v1"}, format="multipart"
    )
    assert response.status_code == 409
    folder = f"projects/fraud/datasets/{dataset.pk}"
    assert not default_storage.exists(folder) or default_storage.listdir(folder) == ([], [])
