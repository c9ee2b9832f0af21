"""Persona fixtures and the rules for tests that need the real services.

Tests marked ``postgres`` or ``redis`` (or ``worker``) are skipped with a reason when the service is not
configured, and fail instead of skipping when ``CI=true``.
"""

import os

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from governance.accounts.access import Principal
from governance.accounts.models import Role
from governance.accounts.services import api_key_issue, project_create, role_grant
from tests.factories import CARD, DatasetVersionFactory, RegisteredVersionFactory, UserFactory

pytest_plugins = ["tests.worker", "tests.schema_statuses"]

IN_CI = os.environ.get("CI", "").lower() == "true"


def _require(item, marker: str, available: bool, reason: str) -> None:
    if item.get_closest_marker(marker) is None or available:
        return
    if IN_CI:
        pytest.fail(f"{reason}; CI=true never skips it", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session", autouse=True)
def _flush_in_audit_maintenance():
    """Django empties every table between transactional tests; the audit table's triggers refuse that
    except in maintenance mode, which this flush -- and nothing in the application -- enters."""
    from django.db.backends.base.operations import BaseDatabaseOperations

    from governance.audit.db import audit_maintenance

    original = BaseDatabaseOperations.execute_sql_flush

    def execute_sql_flush(self, sql_list):
        with audit_maintenance(self.connection):
            original(self, sql_list)

    BaseDatabaseOperations.execute_sql_flush = execute_sql_flush
    yield
    BaseDatabaseOperations.execute_sql_flush = original


@pytest.fixture(autouse=True)
def _private_storage(settings, tmp_path):
    """Each test gets its own storage folder: files (checkpoints, uploads) never leak between tests."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {**settings.STORAGES["default"], "OPTIONS": {"location": str(tmp_path / "storage")}},
    }


def _has_browser() -> bool:
    import importlib.util
    import shutil

    return bool(shutil.which("chromium")) and importlib.util.find_spec("playwright") is not None


def pytest_runtest_setup(item):
    on_postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    _require(item, "postgres", on_postgres, "needs PostgreSQL: set DATABASE_URL")
    _require(item, "redis", bool(settings.REDIS_URL), "needs Redis: set REDIS_URL")
    _require(item, "worker", bool(settings.REDIS_URL), "needs Redis for a real Celery worker: set REDIS_URL")
    _require(item, "browser", _has_browser(), "needs Chromium and Playwright: apt-get install chromium")


@pytest.fixture
def staff(db):
    return UserFactory(username="staff", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_user(db):
    return UserFactory(username="admin")


@pytest.fixture
def project(db, staff, admin_user):
    return project_create(actor=Principal(staff), slug="fraud", name="Fraud detection", admin=admin_user)


def _member(project, admin_user, username, role):
    user = UserFactory(username=username)
    role_grant(actor=Principal(admin_user), project=project, principal=user, role=role)
    return user


@pytest.fixture
def ml_engineer(project, admin_user):
    return _member(project, admin_user, "mlengineer", Role.ML_ENGINEER)


@pytest.fixture
def officer(project, admin_user):
    return _member(project, admin_user, "officer", Role.GOVERNANCE_OFFICER)


@pytest.fixture
def officer2(project, admin_user):
    return _member(project, admin_user, "officer2", Role.GOVERNANCE_OFFICER)


@pytest.fixture
def auditor(project, admin_user):
    return _member(project, admin_user, "auditor", Role.AUDITOR)


@pytest.fixture
def other_project(db, staff):
    other_admin = UserFactory(username="other-admin")
    return project_create(actor=Principal(staff), slug="other", name="Other team", admin=other_admin)


@pytest.fixture
def outsider(other_project):
    """An ML engineer of another project: everything in ``project`` must be invisible to them."""
    user = UserFactory(username="outsider")
    role_grant(actor=Principal.system(), project=other_project, principal=user, role=Role.ML_ENGINEER)
    return user


@pytest.fixture
def training_data(project, ml_engineer):
    """Version 1 of the project's dataset ``train`` (``s3://fraud/train.parquet``), owned by the engineer."""
    return DatasetVersionFactory(project=project, created_by=ml_engineer)


@pytest.fixture
def ready_version(project, ml_engineer, officer, training_data):
    """fraud-gbm v1, registered by the engineer with the training data and an AUC of 0.91, a complete card
    (``CARD``, limited risk), its tier confirmed by the officer: its production gates pass but the approvals."""
    return RegisteredVersionFactory(
        project=project, created_by=ml_engineer, trained_on=training_data, card=CARD, confirmed_by=officer
    )


@pytest.fixture
def api():
    """``api(user, project=None, read_only=False)``: an API client sending a fresh Bearer key of ``user``."""

    def make(user=None, *, project=None, read_only=False):
        client = APIClient()
        if user is not None:
            _, raw_key = api_key_issue(
                actor=Principal(user), owner=user, project=project, name="test", read_only=read_only, expires_at=None
            )
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
        return client

    return make


@pytest.fixture(autouse=True)
def _generous_throttles(settings):
    """Throttle counters outlive a test (they sit in the cache for a minute) and user ids repeat between
    tests, so a long run would trip the production rates. Throttling tests set their own with override_settings."""
    settings.TOLLGATE_THROTTLE_USER = "1000000/min"
    settings.TOLLGATE_THROTTLE_ANON = "1000000/min"
