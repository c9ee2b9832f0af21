"""API conventions (DESIGN §8): one error shape, JSON only, body limits, capped pages, throttling, slashes."""

import json
import re

import pytest
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.test import Client, override_settings

from governance.accounts.access import Principal
from governance.accounts.models import ApiKey, Project
from governance.accounts.services import project_create


def _assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], list)
    if code is not None:
        assert body["error"]["code"] == code
    return body["error"]


def test_it_refuses_a_body_that_is_not_json_with_415(api, ml_engineer):
    response = api(ml_engineer).post("/api/v1/api-keys/", "name=ci", content_type="text/plain")
    _assert_error(response, 415, "unsupported_media_type")
    assert not ApiKey.objects.filter(owner=ml_engineer, name="ci").exists()


def test_it_refuses_a_form_encoded_body_with_415(api, ml_engineer):
    response = api(ml_engineer).post("/api/v1/api-keys/", "name=ci", content_type="application/x-www-form-urlencoded")
    _assert_error(response, 415, "unsupported_media_type")
    assert not ApiKey.objects.filter(owner=ml_engineer, name="ci").exists()


def test_it_answers_malformed_json_with_400_in_the_error_shape(api, ml_engineer):
    response = api(ml_engineer).post("/api/v1/api-keys/", '{"name": ', content_type="application/json")
    _assert_error(response, 400, "parse_error")


@override_settings(TOLLGATE_MAX_JSON_BODY_BYTES=1024)
def test_it_refuses_a_json_body_over_the_limit_with_413(api, ml_engineer):
    body = json.dumps({"name": "ci", "padding": "x" * 2000})
    response = api(ml_engineer).post("/api/v1/api-keys/", body, content_type="application/json")
    error = _assert_error(response, 413, "payload_too_large")
    assert "1024" in error["message"]
    assert not ApiKey.objects.filter(owner=ml_engineer, name="ci").exists()


@override_settings(TOLLGATE_MAX_JSON_BODY_BYTES=1024)
def test_it_accepts_a_json_body_under_the_limit(api, ml_engineer):
    body = json.dumps({"name": "c" * 100})
    response = api(ml_engineer).post("/api/v1/api-keys/", body, content_type="application/json")
    assert response.status_code == 201, response.json()


@override_settings(TOLLGATE_MAX_JSON_BODY_BYTES=1024)
def test_the_413_comes_before_authentication(db):
    response = Client().post("/api/v1/api-keys/", "x" * 5000, content_type="application/json")
    _assert_error(response, 413, "payload_too_large")


@override_settings(TOLLGATE_MAX_PAGE_SIZE=2, TOLLGATE_PAGE_SIZE=1)
def test_it_caps_the_page_size(api, staff, admin_user):
    for slug in ("alpha", "beta", "gamma"):
        project_create(actor=Principal(staff), slug=slug, name=slug, admin=admin_user)
    client = api(staff)

    default = client.get("/api/v1/projects/").json()
    assert default["count"] == 3
    assert [p["slug"] for p in default["results"]] == ["alpha"]

    capped = client.get("/api/v1/projects/", {"page_size": 1000}).json()
    assert [p["slug"] for p in capped["results"]] == ["alpha", "beta"]
    assert capped["next"] is not None
    second = client.get(capped["next"]).json()
    assert [p["slug"] for p in second["results"]] == ["gamma"]


def test_pages_are_ordered_by_a_stable_key(api, staff, admin_user):
    for slug in ("zulu", "alpha", "mike"):
        project_create(actor=Principal(staff), slug=slug, name=slug, admin=admin_user)
    slugs = [p["slug"] for p in api(staff).get("/api/v1/projects/").json()["results"]]
    assert slugs == ["alpha", "mike", "zulu"]
    assert list(Project.objects.values_list("slug", flat=True)) == slugs


@override_settings(TOLLGATE_THROTTLE_USER="3/min")
def test_it_throttles_a_caller_with_429_and_retry_after(api, ml_engineer):
    cache.delete(f"throttle_user_{ml_engineer.pk}")
    client = api(ml_engineer)
    try:
        statuses = [client.get("/api/v1/me/").status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        response = client.get("/api/v1/me/")
        _assert_error(response, 429, "throttled")
        assert int(response["Retry-After"]) > 0
    finally:
        cache.delete(f"throttle_user_{ml_engineer.pk}")


def test_on_redis_the_window_is_one_sorted_set_written_in_one_round_trip(api, ml_engineer):
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        pytest.skip("needs Redis (REDIS_URL)")
    name = f"throttle_user_{ml_engineer.pk}"
    redis = backend._cache.get_client(write=True)
    cache.set(name, [1.0, 2.0])  # a window DRF's own implementation left: replaced, not an error
    client = api(ml_engineer)
    try:
        assert [client.get("/api/v1/me/").status_code for _ in range(2)] == [200, 200]
        assert redis.type(backend.make_key(name)) == b"zset"
        assert redis.zcard(backend.make_key(name)) == 2
    finally:
        cache.delete(name)


@override_settings(TOLLGATE_THROTTLE_USER="1/min")
def test_throttling_counts_each_caller_separately(api, ml_engineer, officer):
    for user in (ml_engineer, officer):
        cache.delete(f"throttle_user_{user.pk}")
    try:
        assert api(ml_engineer).get("/api/v1/me/").status_code == 200
        assert api(officer).get("/api/v1/me/").status_code == 200
    finally:
        for user in (ml_engineer, officer):
            cache.delete(f"throttle_user_{user.pk}")


@override_settings(
    TOLLGATE_THROTTLE_USER="1/min",
    CACHES={
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    },
)
def test_throttling_lets_requests_through_when_its_cache_is_down(api, ml_engineer):
    client = api(ml_engineer)
    assert [client.get("/api/v1/me/").status_code for _ in range(3)] == [200, 200, 200]


def test_an_unknown_url_is_404_in_the_error_shape(api, ml_engineer):
    _assert_error(api(ml_engineer).get("/api/v1/no-such-thing/"), 404, "not_found")


def test_an_unknown_url_is_404_for_anonymous_callers_too(client, db):
    _assert_error(client.get("/api/v2/projects/"), 404, "not_found")


def test_a_wrong_method_is_405_in_the_error_shape(api, ml_engineer):
    response = api(ml_engineer).delete("/api/v1/projects/")
    _assert_error(response, 405, "method_not_allowed")
    assert "GET" in response["Allow"]


def test_a_validation_error_is_400_and_names_the_field(api, ml_engineer):
    response = api(ml_engineer).post("/api/v1/api-keys/", {"read_only": "perhaps"}, format="json")
    error = _assert_error(response, 400, "invalid")
    fields = {detail["field"] for detail in error["details"]}
    assert {"name", "read_only"} <= fields
    assert all(detail["message"] for detail in error["details"])


def test_a_domain_error_is_400_and_names_the_field(api, ml_engineer):
    response = api(ml_engineer).post(
        "/api/v1/api-keys/", {"name": "ci", "expires_at": "2000-01-01T00:00:00Z"}, format="json"
    )
    error = _assert_error(response, 400)
    assert [detail["field"] for detail in error["details"]] == ["expires_at"]
    assert not ApiKey.objects.filter(owner=ml_engineer, name="ci").exists()


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_path_without_its_trailing_slash_is_404_not_a_redirect(api, ml_engineer, method):
    response = getattr(api(ml_engineer), method)("/api/v1/api-keys", {"name": "ci"}, format="json")
    _assert_error(response, 404, "not_found")
    assert not ApiKey.objects.filter(owner=ml_engineer, name="ci").exists()


def test_it_echoes_the_callers_request_id(api, ml_engineer):
    response = api(ml_engineer).get("/api/v1/me/", HTTP_X_REQUEST_ID="ci-run-42.step_3")
    assert response["X-Request-ID"] == "ci-run-42.step_3"


def test_it_echoes_the_request_id_on_errors_too(client, db):
    response = client.get("/api/v1/me/", HTTP_X_REQUEST_ID="abc-123")
    assert response.status_code == 401
    assert response["X-Request-ID"] == "abc-123"


def test_it_replaces_an_unsafe_request_id_with_its_own(api, ml_engineer):
    response = api(ml_engineer).get("/api/v1/me/", HTTP_X_REQUEST_ID="evil\tid; <script>" + "x" * 80)
    generated = response["X-Request-ID"]
    assert "evil" not in generated
    assert len(generated) == 32 and int(generated, 16) >= 0


def test_it_gives_every_request_an_id(api, ml_engineer):
    client = api(ml_engineer)
    first, second = client.get("/api/v1/me/")["X-Request-ID"], client.get("/api/v1/me/")["X-Request-ID"]
    assert first and second and first != second


@override_settings(TOLLGATE_THROTTLE_ANON="2/min")
def test_anonymous_callers_of_public_api_views_are_throttled_by_address(db):
    client = Client(REMOTE_ADDR="192.0.2.21")
    cache.delete("throttle_anon_192.0.2.21")
    try:
        statuses = [client.get("/api/schema/").status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
    finally:
        cache.delete("throttle_anon_192.0.2.21")


@override_settings(TOLLGATE_THROTTLE_ANON="2/min")
def test_an_anonymous_caller_cannot_dodge_the_throttle_with_x_forwarded_for(db):
    client = Client(REMOTE_ADDR="192.0.2.22")
    statuses = [client.get("/api/schema/", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}").status_code for n in range(1, 4)]
    for n in range(1, 4):
        cache.delete(f"throttle_anon_198.51.100.{n}")
    cache.delete("throttle_anon_192.0.2.22")
    assert statuses[-1] == 429


def test_a_content_length_that_is_not_a_number_is_400(api, ml_engineer):
    response = api(ml_engineer).post("/api/v1/api-keys/", {"name": "ci"}, format="json", CONTENT_LENGTH="lots")
    _assert_error(response, 400, "bad_request")
    assert not ApiKey.objects.filter(owner=ml_engineer, name="ci").exists()


def test_options_answers_every_api_route_without_a_server_error(api, project, ml_engineer):
    """OPTIONS on each route (including views without a serializer) is never a 500."""
    from django.urls import URLPattern, URLResolver, get_resolver

    def walk(patterns, prefix=""):
        for entry in patterns:
            if isinstance(entry, URLResolver):
                yield from walk(entry.url_patterns, prefix + str(entry.pattern))
            elif isinstance(entry, URLPattern):
                yield prefix + str(entry.pattern)

    client = api(ml_engineer)
    routes = [r for r in walk(get_resolver().url_patterns) if r.startswith("api/v1/")]
    assert len(routes) > 50
    for route in routes:
        path = "/" + route
        for converter, value in (
            ("<slug:project>", project.slug),
            ("<str:model>", "m"),
            ("<slug:environment>", "production"),
        ):
            path = path.replace(converter, value)
        path = re.sub(r"<int:\w+>", "1", path)
        path = re.sub(r"<(?:str|slug|uuid):\w+>", "x", path)
        response = client.options(path)
        assert response.status_code < 500, (path, response.status_code)
