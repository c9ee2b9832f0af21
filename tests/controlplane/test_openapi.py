"""OpenAPI (DESIGN §8): a public schema documenting the one error shape, and docs served without a CDN."""

import re

import pytest
from django.core.management import call_command
from django.test import Client


@pytest.fixture
def schema(db):
    response = Client().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_the_schema_is_public_json(db):
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.")


def test_the_schema_documents_the_error_shape(schema):
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    assert set(error["properties"]["error"]["required"]) == {"code", "message", "details"}


def test_every_api_operation_documents_401_and_404_with_the_error_shape(schema):
    operations = [
        (path, method, operation)
        for path, item in schema["paths"].items()
        if path.startswith("/api/v1/")
        for method, operation in item.items()
    ]
    assert len(operations) >= 15
    for path, method, operation in operations:
        for status in ("401", "404"):
            content = operation["responses"][status]["content"]["application/json"]
            assert content["schema"] == {"$ref": "#/components/schemas/Error"}, f"{method} {path} {status}"
        if method in {"post", "put", "patch"}:
            assert {"400", "409", "411", "413"} <= set(operation["responses"]), f"{method} {path}"
            if "requestBody" in operation:
                assert "415" in operation["responses"], f"{method} {path}"


def test_the_schema_documents_bearer_authentication(schema):
    scheme = schema["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert {"bearerAuth": []} in schema["paths"]["/api/v1/projects/"]["get"]["security"]


def test_the_schema_never_documents_the_secret_as_writable(schema):
    created = schema["components"]["schemas"]["ApiKeyCreated"]
    assert created["properties"]["key"]["readOnly"] is True
    assert "hashed" not in created["properties"]


def test_the_schema_documents_lists_as_pages(schema):
    operation = schema["paths"]["/api/v1/projects/"]["get"]
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    page = schema["components"]["schemas"][ok["$ref"].rsplit("/", 1)[1]]
    assert page["properties"]["results"]["type"] == "array"
    assert {"page", "page_size"} <= {p["name"] for p in operation.get("parameters", [])}


def test_the_schema_generates_without_warnings(db, tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))


def test_the_docs_are_public_and_use_local_assets(db):
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", html), "the docs page loads something from another host"
    for cdn in ("cdn.jsdelivr.net", "unpkg.com", "cdnjs", "googleapis"):
        assert cdn not in html
    assets = re.findall(r"(?:src|href)=\"(/static/[^\"]+)\"", html)
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
    for asset in assets:
        served = Client().get(asset)
        assert served.status_code == 200, asset


# --- The docs a new user reads (issue 14, item 12) ---

TAGS = {"accounts", "datasets", "models", "lineage", "promotion", "deployments", "monitoring", "audit", "webhooks"}
# Words of notes for developers, which a docstring may hold but a description in /api/docs/ must not.
DEVELOPER_NOTES = ("DESIGN", "STYLE", "``", "queryset", "selector", "serializer", "schema generator", "TODO", "self.")


def _all_operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_every_operation_has_a_summary_and_one_tag_per_concern(schema):
    declared = {tag["name"] for tag in schema["tags"]}
    assert declared == TAGS | {"health"}
    used = set()
    for path, method, operation in _all_operations(schema):
        assert operation.get("summary"), f"{method} {path}: add its summary to controlplane/api/schema.py SUMMARIES"
        assert len(operation["tags"]) == 1 and operation["tags"][0] in declared, f"{method} {path}: {operation['tags']}"
        used.add(operation["tags"][0])
    assert used == declared
    summaries = [operation["summary"] for _, _, operation in _all_operations(schema)]
    assert len(summaries) == len(set(summaries)), "two operations share a summary"


def test_no_note_for_developers_leaks_into_a_description(schema):
    for path, method, operation in _all_operations(schema):
        description = operation.get("description", "")
        for note in DEVELOPER_NOTES:
            assert note not in description, f"{method} {path}: {note!r} in {description!r}"
    monitors = schema["paths"]["/api/v1/projects/{project}/models/"]["get"]
    assert "scoped_queryset" not in monitors.get("description", "")  # the shared list base's docstring


def test_every_operation_names_the_errors_it_can_answer(schema):
    for path, method, operation in _all_operations(schema):
        responses = operation["responses"]
        assert {"400", "503"} <= set(responses), f"{method} {path}"
        if path.startswith("/api/v1/"):
            assert {"401", "403", "404", "429"} <= set(responses), f"{method} {path}"
    queue = schema["paths"]["/api/v1/projects/{project}/promotion-requests/"]["get"]["responses"]["400"]
    assert "query parameter" in queue["description"]
    upload = schema["paths"]["/api/v1/projects/{project}/datasets/{id}/versions/"]["post"]["responses"]["415"]
    assert upload["description"] == "Unsupported content type: send application/json or multipart/form-data."
    download = schema["paths"]["/api/v1/projects/{project}/batches/{id}/download/"]["get"]["responses"]
    assert "410" in download and "406" not in download  # it answers whatever is accepted
    run_now = schema["paths"]["/api/v1/projects/{project}/check-runs/"]
    assert "410" in run_now["post"]["responses"] and "410" not in run_now["get"]["responses"]
