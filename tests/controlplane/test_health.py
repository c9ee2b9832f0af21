"""Liveness and readiness probes (DESIGN §8): public, and readiness names what is down."""

import pytest
from django.test import Client, override_settings


def test_healthz_answers_anonymous_callers(db):
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz_ignores_a_bad_api_key(db):
    response = Client().get("/healthz", HTTP_AUTHORIZATION="Bearer tg_00000000_garbage")
    assert response.status_code == 200


def test_readyz_reports_each_check(db, settings):
    response = Client().get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"] == ("ok" if settings.REDIS_URL else "eager")


@pytest.mark.redis
def test_readyz_pings_the_configured_broker(db):
    assert Client().get("/readyz").json()["checks"]["broker"] == "ok"


@override_settings(REDIS_URL="redis://127.0.0.1:1/0")
def test_readyz_answers_503_naming_the_broker_when_it_is_down(db):
    response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("error")


@override_settings(TOLLGATE_THROTTLE_ANON="1/min")
def test_probes_are_never_throttled(db):
    client = Client()
    assert {client.get(path).status_code for path in ["/healthz", "/readyz"] * 5} == {200}
