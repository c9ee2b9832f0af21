"""Query strings (issue 14, item 8): one mechanism for every list. An unknown parameter, a filter given twice
and a value a filter does not accept are each a 400 in the one error shape that names them; every filter a
list takes is in its schema, and the schema names exactly the parameters the list accepts."""

import pytest
from drf_spectacular.generators import SchemaGenerator

from controlplane.api.filters import allowed_parameters
from governance.management.commands._demo_registry import MODEL
from governance.management.commands.seed_demo import PROJECT
from governance.promotion.models import DeploymentHistory, PromotionRequest
from tests.controlplane.test_hostile_urls import _fill, _operations, demo  # noqa: F401

BASE = f"/api/v1/projects/{PROJECT}"


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code, body
    return body["error"]


def _list_operations():
    """(template, documented query parameters) of every GET that takes a query string: the lists (they
    paginate) and the GETs with filters."""
    for method, template, _path_parameters, query in _operations():
        if method == "get" and query and set(query) - {"format"}:
            yield template, query


@pytest.mark.postgres
def test_a_misspelt_state_is_a_400_naming_it_not_an_empty_queue(demo):  # noqa: F811
    client, _ = demo
    for path in ("/api/v1/promotion-requests/", f"{BASE}/promotion-requests/"):
        error = _error(client.get(path, {"state": "opne"}), 400, "invalid_query_parameter")
        assert error["message"].startswith("Invalid value 'opne' for query parameter 'state': ")
        assert "opne is not one of the available choices" in error["message"]
        assert error["details"][0]["field"] == "state"
    assert client.get("/api/v1/promotion-requests/", {"state": "open"}).status_code == 200


@pytest.mark.postgres
def test_an_unknown_parameter_is_a_400_that_lists_what_the_list_takes(demo):  # noqa: F811
    client, _ = demo
    error = _error(client.get(f"{BASE}/promotion-requests/", {"status": "open"}), 400, "unknown_query_parameter")
    assert error["message"] == (
        "Unknown query parameter 'status'. This endpoint takes 'state', 'environment', 'model', 'page', 'page_size'."
    )
    assert error["details"] == [{"field": "status", "message": "Unknown query parameter.", "code": "unknown"}]


@pytest.mark.postgres
def test_every_list_refuses_an_unknown_parameter(demo):  # noqa: F811
    """Walks every GET of the schema that takes a query string, as the demo project's admin."""
    client, values = demo
    checked = []
    for template, _query in _list_operations():
        path = _fill(template, values)
        response = client.get(path, {"no_such_filter": "1"})
        if response.status_code == 403:  # users/: staff only; refused before anything is read
            continue
        error = _error(response, 400, "unknown_query_parameter")
        assert "'no_such_filter'" in error["message"], template
        checked.append(template)
    assert len(checked) >= 25, checked


@pytest.mark.postgres
def test_a_filter_given_twice_and_a_bad_page_are_400s(demo):  # noqa: F811
    client, _ = demo
    error = _error(client.get(f"{BASE}/deployments/?model=a&model=b"), 400, "invalid_query_parameter")
    assert error["message"] == "Query parameter 'model' is given 2 times; give it once."
    error = _error(client.get(f"{BASE}/models/", {"page": "abc"}), 400, "invalid_query_parameter")
    assert error["message"] == "Query parameter 'page' must be a positive integer, not 'abc'."
    error = _error(client.get(f"{BASE}/models/", {"page_size": "0"}), 400, "invalid_query_parameter")
    assert "'page_size'" in error["message"]


@pytest.mark.postgres
def test_invalid_values_name_the_parameter(demo):  # noqa: F811
    client, _ = demo
    error = _error(client.get(f"{BASE}/check-runs/", {"version": "1.5"}), 400, "invalid_query_parameter")
    assert error["message"].startswith("Invalid value '1.5' for query parameter 'version': ")
    error = _error(
        client.get(f"{BASE}/deployments/history/", {"at": "2026-01-01T00:00:00"}), 400, "invalid_query_parameter"
    )
    assert "with a zone" in error["message"]
    error = _error(client.get(f"{BASE}/monitors/", {"active": "maybe"}), 400, "invalid_query_parameter")
    assert error["details"][0]["field"] == "active"


@pytest.mark.postgres
def test_model_filters_the_deployment_history(demo):  # noqa: F811
    """(The alerts' filters: tests/monitoring/api/test_alert_filters.py.)"""
    client, _ = demo
    history = DeploymentHistory.objects.filter(deployment__model__name=MODEL).count()
    assert history
    for path in (f"{BASE}/deployments/history/", f"{BASE}/deployments/"):
        assert client.get(path, {"model": MODEL}).json()["count"] >= 1, path
        assert client.get(path, {"model": "another-model"}).json()["count"] == 0, path
    assert client.get(f"{BASE}/deployments/history/", {"model": MODEL}).json()["count"] == history


@pytest.mark.postgres
def test_an_at_with_its_zone_answers_what_ran_then(demo):  # noqa: F811
    client, _ = demo
    first = DeploymentHistory.objects.order_by("from_at").first()
    # A '+' sent unencoded arrives as a space: the zone is still understood.
    at = first.from_at.isoformat().replace("+00:00", " 00:00")
    response = client.get(f"{BASE}/deployments/history/?at={at}&model={MODEL}")
    assert response.status_code == 200, response.content
    assert [row["version"] for row in response.json()["results"]] == [first.model_version.version]


@pytest.mark.postgres
def test_the_queue_filters_by_state(demo):  # noqa: F811
    client, _ = demo
    states = set(PromotionRequest.objects.values_list("state", flat=True))
    for state in states:
        rows = client.get("/api/v1/promotion-requests/", {"state": state}).json()["results"]
        assert rows and {row["state"] for row in rows} == {state}


def test_the_schema_names_exactly_the_parameters_each_list_accepts(db):
    generator = SchemaGenerator()
    schema = generator.get_schema(request=None, public=True)
    compared = 0
    for path, _regex, method, callback in generator.endpoints:
        if method != "GET" or path not in schema["paths"]:
            continue
        view = generator.create_view(callback, method)
        takes_query = getattr(view, "filterset_class", None) is not None or hasattr(view, "scoped_queryset")
        documented = {p["name"] for p in schema["paths"][path]["get"].get("parameters", []) if p["in"] == "query"}
        if takes_query:
            assert documented == set(allowed_parameters(view)), path
            compared += 1
    assert compared >= 25
    queue = schema["paths"]["/api/v1/projects/{project}/promotion-requests/"]["get"]["parameters"]
    state = next(p for p in queue if p["name"] == "state")
    assert set(state["schema"]["enum"]) == set(PromotionRequest.State.values)
