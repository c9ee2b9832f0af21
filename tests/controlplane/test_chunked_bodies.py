"""Chunked request bodies (``Transfer-Encoding: chunked``, no Content-Length) against the web process as
``make web`` starts it (gunicorn): read whole, within the same size limits as bodies with a length; a body
whose length cannot be found out is a 411. Django's test client cannot send a chunked body, hence gunicorn."""

import gzip
import hashlib
import http.client
import json
import socket

import pytest

from governance.accounts.access import Principal
from governance.accounts.models import Project
from governance.accounts.services import api_key_issue
from governance.provenance.models import DatasetVersion
from tests.governance.provenance.test_datasets import CSV, make_dataset
from tests.servers import WebServer
from tests.worker import _test_database_url

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

JSON_LIMIT = 2048
UPLOAD_LIMIT = 16384
BOUNDARY = "tollgate-boundary"


@pytest.fixture(scope="module")
def web(django_db_setup, tmp_path_factory):
    """``make web`` against the test database, with small body limits."""
    folder = tmp_path_factory.mktemp("web")
    server = WebServer(
        _test_database_url(),
        folder / "web.log",
        TOLLGATE_MAX_JSON_BODY_BYTES=str(JSON_LIMIT),
        TOLLGATE_MAX_UPLOAD_BYTES=str(UPLOAD_LIMIT),
        TOLLGATE_VAR_DIR=str(folder / "var"),
    )
    server.start()
    yield server
    server.stop()


def _key(user) -> dict:
    _, raw = api_key_issue(actor=Principal(user), owner=user, project=None, name="t", read_only=False, expires_at=None)
    return {"Authorization": f"Bearer {raw}"}


def _chunks(data: bytes, size: int = 100):
    return iter([data[start : start + size] for start in range(0, len(data), size)])


def _send_chunked(web, path: str, data: bytes, content_type: str, headers: dict, coding: str = "chunked"):
    headers = {**headers, "Content-Type": content_type, "Transfer-Encoding": coding}
    return web.request("POST", path, _chunks(data), headers, encode_chunked=True)


def _project_body(name: str = "Payments") -> bytes:
    return json.dumps({"slug": "payments", "name": name, "admin": "admin"}).encode()


def _multipart(filename: str, content: bytes) -> bytes:
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
    return f"{head}Content-Type: text/csv\r\n\r\n".encode() + content + f"\r\n--{BOUNDARY}--\r\n".encode()


def _error(response, status: int) -> dict:
    assert response.status == status, response.body
    assert response.getheader("Content-Type") == "application/json"
    return json.loads(response.body)["error"]


def test_a_chunked_json_body_is_read_whole(web, staff, admin_user):
    response = _send_chunked(web, "/api/v1/projects/", _project_body(), "application/json", _key(staff))

    assert response.status == 201, response.body
    assert json.loads(response.body)["slug"] == "payments"
    assert Project.objects.get(slug="payments").name == "Payments"


def test_a_chunked_upload_is_read_whole(web, project, ml_engineer):
    dataset = make_dataset(project, ml_engineer)
    path = f"/api/v1/projects/{project.slug}/datasets/{dataset.pk}/versions/"
    content_type = f"multipart/form-data; boundary={BOUNDARY}"

    response = _send_chunked(web, path, _multipart("train.csv", CSV), content_type, _key(ml_engineer))

    assert response.status == 201, response.body
    version = DatasetVersion.objects.get(dataset=dataset)
    assert (version.sha256, version.row_count) == (hashlib.sha256(CSV).hexdigest(), 40)


def test_a_chunked_json_body_over_the_limit_is_413_and_changes_nothing(web, staff, admin_user):
    body = _project_body("x" * JSON_LIMIT)

    response = _send_chunked(web, "/api/v1/projects/", body, "application/json", _key(staff))

    error = _error(response, 413)
    assert error["code"] == "payload_too_large"
    assert error["message"] == f"The request body is more than {JSON_LIMIT} bytes, the limit for this kind of body."
    assert not Project.objects.filter(slug="payments").exists()


def test_a_chunked_upload_over_the_upload_limit_is_413_and_stores_nothing(web, project, ml_engineer):
    dataset = make_dataset(project, ml_engineer)
    path = f"/api/v1/projects/{project.slug}/datasets/{dataset.pk}/versions/"
    content_type = f"multipart/form-data; boundary={BOUNDARY}"
    body = _multipart("train.csv", CSV * (UPLOAD_LIMIT // len(CSV) + 1))

    response = _send_chunked(web, path, body, content_type, _key(ml_engineer))

    error = _error(response, 413)
    assert error["message"] == f"The request body is more than {UPLOAD_LIMIT} bytes, the limit for this kind of body."
    assert not DatasetVersion.objects.exists()


def test_a_body_in_a_transfer_coding_it_cannot_read_is_411_and_changes_nothing(web, staff, admin_user):
    """gunicorn passes ``gzip, chunked`` on undecoded: its length is unknown, so the answer asks for one."""
    body = gzip.compress(_project_body())
    response = _send_chunked(web, "/api/v1/projects/", body, "application/json", _key(staff), "gzip, chunked")

    error = _error(response, 411)
    assert error["code"] == "length_required"
    assert "Content-Length" in error["message"]
    assert not Project.objects.filter(slug="payments").exists()


def test_a_malformed_chunk_is_400_and_changes_nothing(web, staff, admin_user):
    headers = "".join(f"{name}: {value}\r\n" for name, value in _key(staff).items())
    request = (
        "POST /api/v1/projects/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Transfer-Encoding: chunked\r\n{headers}Connection: close\r\n\r\n"
        '10\r\n{"slug": "paymen\r\nzz\r\nts"}\r\n0\r\n\r\n'
    )
    with socket.create_connection(("127.0.0.1", web.port), timeout=30) as connection:
        connection.sendall(request.encode())
        response = http.client.HTTPResponse(connection)
        response.begin()
        response.body = response.read()

    assert _error(response, 400) == {
        "code": "bad_request",
        "message": "The chunked request body could not be read.",
        "details": [],
    }
    assert not Project.objects.filter(slug="payments").exists()
