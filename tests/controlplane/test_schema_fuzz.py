"""Schemathesis generates requests from the OpenAPI schema for every operation: none may answer 500, and
every status they get is recorded for the session's check that the schema names it (tests/schema_statuses.py)."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from controlplane.wsgi import application
from governance.accounts.access import Principal
from governance.accounts.services import api_key_issue
from tests.schema_statuses import record

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


@pytest.fixture
def in_test_transaction():
    """Calls go straight to the WSGI app; like Django's test client, keep the test's connection (and its
    transaction) open across them instead of closing it when each request finishes."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def key(project, ml_engineer, in_test_transaction):
    """An ML engineer's key pinned to the demo project: requests reach the views, not only the 401."""
    _, raw_key = api_key_issue(
        actor=Principal(ml_engineer), owner=ml_engineer, project=project, name="fuzz", read_only=False, expires_at=None
    )
    return raw_key


@schema.parametrize()
@hypothesis_settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_generated_request_is_a_server_error(case, key, settings):
    settings.TOLLGATE_THROTTLE_USER = "1000000/min"
    if "project" in (case.path_parameters or {}):
        case.path_parameters["project"] = "fraud"
    response = case.call(headers={"Authorization": f"Bearer {key}"})
    record(case.method, case.path, response.status_code, where=f"schemathesis {case.method} {case.formatted_path}")
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code}"
