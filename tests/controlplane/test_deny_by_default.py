"""Deny by default (DESIGN §6): every route needs authentication except the public ones.

The routes come from walking the URL resolver, so a route added later is covered without touching this file.
"""

import re
import uuid
from urllib.parse import urlsplit

import pytest
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse
from django.urls.resolvers import RoutePattern

from controlplane.urls import PUBLIC_URL_NAMES
from governance.accounts.models import ApiKey, Project

# Values tried, in order, for each path converter; the first one its regex accepts is used.
_SAMPLES = ["fraud", "1", str(uuid.UUID(int=1)), "fraud/1"]
_CONVERTER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<parameter>[^>]+)>")


def _fill(route: str, converters: dict) -> str:
    def sample(match):
        converter = converters[match["parameter"]]
        for value in _SAMPLES:
            if re.fullmatch(converter.regex, value):
                return converter.to_url(converter.to_python(value))
        raise AssertionError(f"no sample value fits <{match[0]}>: add one to _SAMPLES")

    return _CONVERTER.sub(sample, route)


def _walk(resolver, prefix="", namespace=None):
    for entry in resolver.url_patterns:
        if not isinstance(entry.pattern, RoutePattern):
            raise AssertionError(
                f"{prefix}{entry.pattern} is a regex route; teach this test to fill it before adding it"
            )
        path = prefix + _fill(str(entry.pattern), entry.pattern.converters)
        if isinstance(entry, URLResolver):
            inner = entry.namespace if entry.namespace else None
            yield from _walk(entry, path, ":".join(filter(None, [namespace, inner])) or None)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}" if namespace and entry.name else entry.name
            yield name, "/" + path


ROUTES = sorted(set(_walk(get_resolver())), key=lambda route: route[1])
PROTECTED = [(name, path) for name, path in ROUTES if name not in PUBLIC_URL_NAMES]


def test_the_walk_finds_every_public_route_and_the_api():
    names = {name for name, _ in ROUTES}
    assert PUBLIC_URL_NAMES <= names, f"public names without a route: {PUBLIC_URL_NAMES - names}"
    assert len(PROTECTED) >= 15
    assert any(path.startswith("/api/v1/projects/fraud/") for _, path in PROTECTED)


@pytest.mark.parametrize(("name", "path"), ROUTES, ids=[path for _, path in ROUTES])
def test_each_sample_path_resolves_to_its_own_route(name, path):
    match = resolve(path)
    assert (match.view_name if name else None) == name


def _assert_refused(response, path: str, method: str) -> None:
    where = f"anonymous {method} {path}"
    if path.startswith("/api/"):
        assert response.status_code == 401, f"{where} answered {response.status_code}"
        assert response["WWW-Authenticate"].startswith("Bearer"), where
        assert response.json()["error"]["code"] == "not_authenticated", where
        return
    if method == "GET" and response.status_code == 405:
        return  # a POST-only console page (logout) refuses GET before doing anything
    assert response.status_code == 302, f"{where} answered {response.status_code}"
    assert urlsplit(response["Location"]).path == reverse("console:login"), where


@pytest.mark.parametrize(("name", "path"), PROTECTED, ids=[path for _, path in PROTECTED])
@override_settings(TOLLGATE_THROTTLE_ANON="100000/min")
def test_it_refuses_anonymous_requests_to_every_non_public_route(name, path, project, ml_engineer):
    client = Client()
    _assert_refused(client.get(path), path, "GET")
    _assert_refused(client.post(path, {"name": "x"}, content_type="application/json"), path, "POST")
    if path.startswith("/api/"):
        for method in ("head", "put", "patch", "delete", "options"):
            response = getattr(client, method)(path, content_type="application/json")
            assert response.status_code == 401, f"anonymous {method.upper()} {path} answered {response.status_code}"
            assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("name", "path"), PROTECTED, ids=[path for _, path in PROTECTED])
def test_it_refuses_a_bad_api_key_on_every_non_public_route(name, path, project, ml_engineer):
    client = Client(HTTP_AUTHORIZATION="Bearer tg_00000000_not-a-real-key-not-a-real-key-not-a-re")
    for method in ("get", "post"):
        response = getattr(client, method)(path, content_type="application/json")
        if path.startswith("/api/"):
            assert response.status_code == 401, f"{method.upper()} {path} answered {response.status_code}"
            assert response.json()["error"]["code"] == "authentication_failed"
        else:
            _assert_refused(response, path, method.upper())


def test_an_anonymous_post_changes_nothing(project):
    client = Client()
    before = (Project.objects.count(), ApiKey.objects.count())
    client.post("/api/v1/projects/", {"slug": "x", "name": "X", "admin": "admin"}, content_type="application/json")
    client.post("/api/v1/api-keys/", {"name": "x"}, content_type="application/json")
    assert (Project.objects.count(), ApiKey.objects.count()) == before


@pytest.mark.parametrize("name", sorted(PUBLIC_URL_NAMES))
def test_the_public_routes_answer_anonymous_callers(name, db):
    response = Client().get(reverse(name))
    assert response.status_code == 200, f"{name} answered {response.status_code}"
