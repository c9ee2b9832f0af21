"""Every status the test suite sees an API operation answer is one its OpenAPI schema names (DESIGN §8).

A pytest plugin (``pytest_plugins`` in tests/conftest.py): every response of Django's test client (and so of
DRF's ``APIClient``) during the session is recorded as (method, route template, status), and so is every
response of the schemathesis run (``record()``). At the end of the session the statuses are checked against
``/api/schema/``: a status an operation answered that its schema does not list fails the run, naming the
operation, the status and the first test that saw it. A method the schema does not document for a path may
only be refused (401, 403, 405, ...): a success there is an operation the schema is missing.

Only paths of the schema are checked (the console, the docs and the schema itself are not in it). The check
is in-process and costs one schema generation per run.
"""

from __future__ import annotations

import re

import pytest
from django.test.client import Client

# What a path answers for a method it does not have, before or instead of a handler (authentication and
# permissions run first; the URL checks before them; then DRF's 405).
REFUSALS_OF_UNDOCUMENTED_METHODS = {400, 401, 403, 405, 406, 411, 413, 429, 503}
SKIPPED_METHODS = {"HEAD", "OPTIONS"}
# A 500 is a fault, never an outcome an operation promises: the tests that cause one on purpose (a trigger that
# refuses an insert) assert it themselves, and schemathesis's own checks fail on any other.
UNDOCUMENTED_STATUSES = {500}

_ROUTE_PARAMETER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
_observed: dict[tuple[str, str], dict[int, str]] = {}
_current_test = {"nodeid": "(outside a test)"}


def template_of(route: str) -> str:
    """A Django route (``api/v1/projects/<slug:project>/datasets/<int:pk>/``) as the schema names its path
    (``/api/v1/projects/{project}/datasets/{id}/``: drf-spectacular calls ``pk`` ``id``)."""
    path = "/" + _ROUTE_PARAMETER.sub(lambda match: "{" + match[1] + "}", route)
    return path.replace("{pk}", "{id}")


def record(method: str, template: str, status: int, where: str | None = None) -> None:
    method = method.upper()
    if method in SKIPPED_METHODS or int(status) in UNDOCUMENTED_STATUSES:
        return
    statuses = _observed.setdefault((method, template), {})
    statuses.setdefault(int(status), where or _current_test["nodeid"])


def _record_response(request: dict, response) -> None:
    try:
        route = response.resolver_match.route
    except Exception:  # noqa: BLE001 - a path that resolves to nothing is no operation
        return
    if route is None:
        return
    record(request.get("REQUEST_METHOD", "GET"), template_of(route), response.status_code)


_original_request = Client.request


def _recording_request(self, **request):
    response = _original_request(self, **request)
    _record_response(request, response)
    return response


def pytest_configure(config):
    Client.request = _recording_request


def pytest_unconfigure(config):
    Client.request = _original_request


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    _current_test["nodeid"] = item.nodeid
    yield
    _current_test["nodeid"] = "(outside a test)"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    _current_test["nodeid"] = item.nodeid
    yield


def missing_statuses(schema: dict, observed: dict | None = None) -> list[str]:
    """What the session saw (or ``observed``) that ``schema`` does not say, one line each."""
    problems = []
    for (method, template), statuses in sorted((_observed if observed is None else observed).items()):
        item = schema["paths"].get(template)
        if item is None:
            continue
        operation = item.get(method.lower())
        for status, where in sorted(statuses.items()):
            if operation is None:
                if status not in REFUSALS_OF_UNDOCUMENTED_METHODS:
                    problems.append(
                        f"{method} {template}: answered {status}, but the schema has no {method} here ({where})"
                    )
            elif str(status) not in operation.get("responses", {}) and "default" not in operation["responses"]:
                problems.append(f"{method} {template}: answered {status}, not in its schema's responses ({where})")
    return problems


def _schema() -> dict:
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    if not _observed:
        return
    session.config._schema_status_problems = problems = missing_statuses(_schema())
    session.config._schema_status_count = sum(len(statuses) for statuses in _observed.values())
    if problems and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    problems = getattr(config, "_schema_status_problems", None)
    if problems is None:
        return
    count = config._schema_status_count
    if problems:
        terminalreporter.section("statuses missing from the OpenAPI schema", red=True)
        for line in problems:
            terminalreporter.line(line)
        terminalreporter.line(
            f"{len(problems)} observed statuses are not in the schema: document them (controlplane/api/schema.py, "
            "or the view's error_statuses / extend_schema)."
        )
    else:
        terminalreporter.line(f"schema statuses: the {count} (operation, status) pairs observed are all in the schema")
