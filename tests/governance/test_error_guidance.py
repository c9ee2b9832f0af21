"""Errors that say what to do (issue 14, item 11): a JSON body with a file on the dataset-version upload, a
415, and a key pinned to another project -- each answer names the way out."""

import pytest

from governance.accounts.access import Principal
from governance.accounts.models import Role
from governance.accounts.services import role_grant
from governance.audit.models import AuditEvent, chain_of
from governance.provenance.models import DatasetVersion
from tests.factories import UserFactory
from tests.governance.provenance.test_datasets import make_dataset, url

SHA = "a" * 64


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    return body["error"]


@pytest.mark.postgres
def test_json_sent_to_the_upload_says_uploads_are_multipart_and_json_registers_by_uri(api, project, ml_engineer):
    dataset = make_dataset(project, ml_engineer)
    response = api(ml_engineer).post(url(project, dataset.pk, "versions"), {"file": "train.csv"}, format="json")
    error = _error(response, 400, "upload_not_multipart")
    assert error["message"] == (
        "Uploads are multipart/form-data, with the data in the form field 'file' (curl -F file=@data.csv). "
        "A JSON body registers a version by reference: 'uri' and 'sha256'."
    )
    assert error["details"][0]["field"] == "file"
    assert not DatasetVersion.objects.filter(dataset=dataset).exists()


@pytest.mark.postgres
def test_a_415_names_the_accepted_types(api, project, ml_engineer):
    client = api(ml_engineer)
    error = _error(
        client.post("/api/v1/api-keys/", "name=ci", content_type="text/plain"), 415, "unsupported_media_type"
    )
    assert error["message"] == 'Unsupported media type "text/plain" in request. This endpoint accepts application/json.'
    assert error["details"] == [{"accepted": ["application/json"]}]

    dataset = make_dataset(project, ml_engineer)
    response = client.post(url(project, dataset.pk, "versions"), "uri=s3://b/k", content_type="text/plain")
    error = _error(response, 415, "unsupported_media_type")
    assert error["message"].endswith(
        "This endpoint accepts application/json or multipart/form-data (a file upload: curl -F file=@data.csv)."
    )
    assert not DatasetVersion.objects.filter(dataset=dataset).exists()


@pytest.fixture
def two_project_engineer(project, other_project, admin_user):
    """An ML engineer of ``fraud`` who is also an auditor of ``other``."""
    user = UserFactory(username="twohats")
    role_grant(actor=Principal(admin_user), project=project, principal=user, role=Role.ML_ENGINEER)
    role_grant(actor=Principal.system(), project=other_project, principal=user, role=Role.AUDITOR)
    return user


@pytest.mark.postgres
def test_a_key_pinned_elsewhere_is_told_so_where_its_owner_holds_a_role(
    api, project, other_project, two_project_engineer
):
    pinned = api(two_project_engineer, project=project)
    response = pinned.get("/api/v1/projects/other/models/")
    error = _error(response, 403, "key_pinned")
    assert error["message"] == (
        "This API key is pinned to project 'fraud', so it cannot act in 'other', where you hold a role. "
        "Use a key pinned to 'other', or one pinned to no project."
    )
    assert error["details"] == [{"field": "project", "pinned_to": "fraud"}]
    denied = AuditEvent.objects.get(
        chain=chain_of(other_project.pk), action="access.denied", actor=two_project_engineer
    )
    assert "pinned to project 'fraud'" in denied.diff["reason"]
    # Unpinned, the same user reads it.
    assert api(two_project_engineer).get("/api/v1/projects/other/models/").status_code == 200


@pytest.mark.postgres
def test_a_key_pinned_elsewhere_learns_nothing_of_a_project_where_its_owner_has_no_role(
    api, project, other_project, ml_engineer
):
    pinned = api(ml_engineer, project=project)
    foreign = pinned.get("/api/v1/projects/other/models/")
    missing = pinned.get("/api/v1/projects/nowhere/models/")
    assert _error(foreign, 404, "not_found")["message"] == "No project 'other'."
    assert _error(missing, 404, "not_found")["message"] == "No project 'nowhere'."
    assert not AuditEvent.objects.filter(action="access.denied", actor=ml_engineer).exists()
