"""The session's check that every status an operation answers is in its schema (tests/schema_statuses.py)."""

from rest_framework.test import APIClient

from tests import schema_statuses


def test_the_recorder_sees_every_test_client_response_by_its_route_template(db):
    APIClient().get("/api/v1/projects/fraud/datasets/7/versions/")
    assert 401 in schema_statuses._observed[("GET", "/api/v1/projects/{project}/datasets/{id}/versions/")]
    assert schema_statuses.template_of("api/v1/x/<int:pk>/y/<slug:name>/") == "/api/v1/x/{id}/y/{name}/"


def test_it_names_a_status_the_schema_omits_and_a_success_of_an_undocumented_method():
    schema = {"paths": {"/api/v1/me/": {"get": {"responses": {"200": {}, "401": {}}}}}}
    observed = {
        ("GET", "/api/v1/me/"): {200: "test_a", 401: "test_a", 418: "test_b"},
        ("DELETE", "/api/v1/me/"): {405: "test_c"},
        ("PUT", "/api/v1/me/"): {200: "test_d"},
        ("GET", "/not/in/the/schema/"): {500: "test_e"},
    }
    assert schema_statuses.missing_statuses(schema, observed) == [
        "GET /api/v1/me/: answered 418, not in its schema's responses (test_b)",
        "PUT /api/v1/me/: answered 200, but the schema has no PUT here (test_d)",
    ]
