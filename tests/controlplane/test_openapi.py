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
