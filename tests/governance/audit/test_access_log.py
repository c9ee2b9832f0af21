import datetime
import hashlib
import logging

import pytest
from django.conf import settings
from django.db import DatabaseError, connection
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from governance.accounts.models import RoleBinding
from governance.audit import middleware, tasks
from governance.audit.chain import canonical, digest
from governance.audit.models import SYSTEM_CHAIN, AccessLogEntry, AuditEvent

UTC = datetime.UTC


def _only_entry(**filters) -> AccessLogEntry:
    entries = list(AccessLogEntry.objects.filter(**filters))
    assert len(entries) == 1, entries
    return entries[0]


def _entry(at, *, status=200, project_slug="fraud", path="/api/v1/projects/fraud/", **fields):
    return AccessLogEntry.objects.create(
        at=at, method="GET", path=path, status=status, project_slug=project_slug, **fields
    )


# --- The middleware ---


def test_an_api_request_is_recorded_with_principal_key_object_and_request_id(api, project, auditor):
    binding = RoleBinding.objects.get(principal=auditor, project=project)
    client = api(auditor)
    response = client.get(f"/api/v1/projects/{project.slug}/members/{binding.pk}/", HTTP_X_REQUEST_ID="req-42")
    assert response.status_code == 200

    entry = _only_entry(path=f"/api/v1/projects/{project.slug}/members/{binding.pk}/")
    assert entry.principal == auditor
    assert entry.principal_name == "auditor"
    assert entry.key_prefix == auditor.api_keys.get().prefix
    assert (entry.method, entry.status, entry.project_slug) == ("GET", 200, "fraud")
    assert entry.object == f"member-detail pk={binding.pk}"
    assert entry.request_id == "req-42" == response["X-Request-ID"]
    assert entry.client_address == "127.0.0.1"
    assert entry.detail == ""


def test_an_anonymous_request_is_recorded_with_no_principal(project):
    response = APIClient().get(f"/api/v1/projects/{project.slug}/", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 401

    entry = _only_entry(path=f"/api/v1/projects/{project.slug}/")
    assert entry.principal is None
    assert (entry.principal_name, entry.key_prefix) == ("", "")
    assert (entry.status, entry.project_slug, entry.object) == (401, "fraud", "project-detail")
    assert entry.client_address == "203.0.113.9"


def test_a_refused_request_and_an_unknown_url_are_recorded(api, project, ml_engineer):
    client = api(ml_engineer)
    before = RoleBinding.objects.count()
    refused = client.post(f"/api/v1/projects/{project.slug}/members/", {}, format="json")
    assert refused.status_code == 400  # the body is checked first; the role check is the service's
    assert RoleBinding.objects.count() == before
    assert client.get("/api/v1/no-such-thing/").status_code == 404

    assert _only_entry(method="POST").principal == ml_engineer
    unknown = _only_entry(path="/api/v1/no-such-thing/")
    assert (unknown.status, unknown.object, unknown.project_slug) == (404, "", "")


def test_a_console_page_is_recorded_with_the_session_user(project, auditor):
    client = Client()
    client.force_login(auditor)
    assert client.get("/console/").status_code == 200

    entry = _only_entry(path="/console/")
    assert (entry.principal, entry.key_prefix, entry.object, entry.status) == (auditor, "", "console:home", 200)


def test_health_probes_and_static_files_are_not_recorded(db):
    client = Client()
    client.get("/healthz")
    client.get("/readyz")
    client.get(f"/{settings.STATIC_URL.strip('/')}/console/console.css")
    assert not AccessLogEntry.objects.exists()


def test_a_long_path_is_truncated(api, auditor):
    path = "/api/v1/" + "x" * 700
    assert api(auditor).get(path).status_code == 404
    assert len(_only_entry(status=404).path) == 500


def test_a_failed_console_login_is_marked_for_a_known_account(auditor):
    response = Client().post("/console/login/", {"username": "auditor", "password": "wrong"})
    assert response.status_code == 200  # the form again, with an error

    entry = _only_entry(method="POST", path="/console/login/")
    assert entry.principal is None
    assert entry.detail == "login_failed user=auditor"
    assert not AuditEvent.objects.filter(action="auth.login").exists()


def test_a_failed_login_under_an_unknown_name_does_not_repeat_the_name(db):
    Client().post("/console/login/", {"username": "hunter2-typed-here", "password": "x"})
    entry = _only_entry(method="POST", path="/console/login/")
    assert entry.detail == "login_failed unknown_user"
    assert "hunter2" not in entry.detail


def test_a_successful_login_is_not_marked_and_is_audited(auditor):
    response = Client().post("/console/login/", {"username": "auditor", "password": "correct horse battery staple"})
    assert response.status_code == 302
    entry = _only_entry(method="POST", path="/console/login/")
    assert (entry.detail, entry.principal) == ("", auditor)
    assert AuditEvent.objects.filter(action="auth.login", actor=auditor, chain=SYSTEM_CHAIN).exists()


def test_a_failed_write_never_breaks_the_response(api, project, auditor, monkeypatch, caplog):
    def broken(entry, **kwargs):
        raise DatabaseError("disk full")

    monkeypatch.setattr(middleware, "_insert", broken)
    with caplog.at_level(logging.ERROR, logger="governance.audit.middleware"):
        response = api(auditor).get(f"/api/v1/projects/{project.slug}/")
    assert response.status_code == 200
    assert "access log: could not record GET" in caplog.text
    monkeypatch.undo()
    assert not AccessLogEntry.objects.exists()
    # The test's transaction is still usable: the failed insert was inside a savepoint.
    assert api(auditor).get(f"/api/v1/projects/{project.slug}/").status_code == 200
    assert AccessLogEntry.objects.count() == 1


# --- Retention ---


def test_prune_deletes_entries_older_than_the_retention_in_batches(db, settings, monkeypatch):
    settings.TOLLGATE_ACCESS_LOG_RETENTION_DAYS = 30
    monkeypatch.setattr(tasks, "ACCESS_LOG_PRUNE_BATCH", 2)
    now = timezone.now()
    for days in (400, 200, 31, 31, 31):
        _entry(now - datetime.timedelta(days=days))
    kept = [_entry(now - datetime.timedelta(days=29)), _entry(now)]

    assert tasks.access_log_prune() == 5
    assert sorted(AccessLogEntry.objects.values_list("pk", flat=True)) == [e.pk for e in kept]


def test_prune_keeps_yesterday_for_its_digest_whatever_the_setting(db, settings):
    settings.TOLLGATE_ACCESS_LOG_RETENTION_DAYS = 1
    today = timezone.now().astimezone(UTC).date()
    start_of_yesterday = datetime.datetime.combine(today - datetime.timedelta(days=1), datetime.time.min, tzinfo=UTC)
    before = _entry(start_of_yesterday - datetime.timedelta(seconds=1))
    yesterday = _entry(start_of_yesterday + datetime.timedelta(seconds=1))

    assert tasks.access_log_prune() == 1
    assert not AccessLogEntry.objects.filter(pk=before.pk).exists()
    assert AccessLogEntry.objects.filter(pk=yesterday.pk).exists()


# --- The daily digest ---


def _expected_sha(entries) -> str:
    sha = hashlib.sha256()
    for e in sorted(entries, key=lambda e: e.pk):
        e.refresh_from_db()
        row = [
            e.pk,
            e.at.astimezone(UTC).isoformat(),
            e.principal_id,
            e.principal_name,
            e.key_prefix,
            e.method,
            e.path,
            e.project_slug,
            e.object,
            e.status,
            e.request_id,
            e.client_address,
            e.detail,
        ]
        sha.update(canonical(row).encode() + b"\n")
    return sha.hexdigest()


def test_the_digest_goes_into_the_system_chain_once_per_day(db, auditor):
    day = datetime.date(2026, 1, 10)
    noon = datetime.datetime(2026, 1, 10, 12, tzinfo=UTC)
    entries = [
        _entry(noon, principal=auditor, principal_name="auditor", request_id="r1"),
        _entry(noon, status=201),
        _entry(noon, status=404, project_slug="other"),
        _entry(noon, status=401, project_slug=""),
        _entry(datetime.datetime(2026, 1, 10, 0, 0, tzinfo=UTC), status=403),
        _entry(datetime.datetime(2026, 1, 10, 23, 59, 59, 999999, tzinfo=UTC), status=500, project_slug="email-spam"),
    ]
    _entry(datetime.datetime(2026, 1, 9, 23, 59, 59, tzinfo=UTC))  # the day before
    _entry(datetime.datetime(2026, 1, 11, 0, 0, tzinfo=UTC))  # the day after

    assert tasks.access_log_digest(day.isoformat()) == "written"
    assert tasks.access_log_digest(day.isoformat()) == "exists"

    event = AuditEvent.objects.get(action="access_log.digest")
    assert (event.chain, event.project_id, event.actor_name) == (SYSTEM_CHAIN, None, "system")
    assert (event.target_type, event.target_id) == ("access_log_day", "2026-01-10")
    assert event.hash == digest(event.payload)
    assert event.diff == {
        "day": "2026-01-10",
        "entries": 6,
        "sha256": _expected_sha(entries),
        "by_status": {"2xx": 2, "4xx": 3, "5xx": 1},
        "by_project": [
            {"project": None, "entries": 1},
            {"project": "email-spam", "entries": 1},  # not redacted although the slug says "email"
            {"project": "fraud", "entries": 3},
            {"project": "other", "entries": 1},
        ],
    }


def test_the_digest_changes_when_an_entry_does(db):
    day = datetime.date(2026, 1, 10)
    entry = _entry(datetime.datetime(2026, 1, 10, 12, tzinfo=UTC))
    before = tasks.access_log_day_summary(day)["sha256"]
    AccessLogEntry.objects.filter(pk=entry.pk).update(status=200, principal_name="someone-else")
    assert tasks.access_log_day_summary(day)["sha256"] != before


def test_the_digest_defaults_to_yesterday_and_covers_an_empty_day(db):
    yesterday = timezone.now().astimezone(UTC).date() - datetime.timedelta(days=1)
    assert tasks.access_log_digest() == "written"
    event = AuditEvent.objects.get(action="access_log.digest")
    assert event.target_id == yesterday.isoformat()
    assert event.diff["entries"] == 0
    assert event.diff["sha256"] == hashlib.sha256(b"").hexdigest()
    assert tasks.access_log_digest() == "exists"


def test_beat_runs_the_digest_and_the_prune_daily():
    tasks_scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"governance.tasks.access_log_digest", "governance.tasks.access_log_prune"} <= tasks_scheduled


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_requests_are_recorded_outside_any_transaction(api, project, auditor):
    """In autocommit mode (production) the entry is one INSERT, committed on its own."""
    assert not connection.in_atomic_block
    response = api(auditor).get(f"/api/v1/projects/{project.slug}/")
    assert response.status_code == 200
    assert _only_entry(path=f"/api/v1/projects/{project.slug}/").principal == auditor
    # The insert commits asynchronously; the connection's own setting is untouched for what follows.
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"


# --- Every request names its principal; a refusal names its error code ---


def _key_of(user) -> str:
    return user.api_keys.get().prefix


def test_a_bad_export_format_is_400_naming_the_formats_and_logged_with_its_principal(api, project, auditor):
    url = f"/api/v1/projects/{project.slug}/audit-events/"
    response = api(auditor).get(url, {"format": "xml"})

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["message"] == "There is no format 'xml' here: ?format= takes json, csv or jsonl."
    assert error["details"] == [{"field": "format", "message": error["message"], "code": "invalid_choice"}]

    entry = _only_entry(path=url)
    assert (entry.principal, entry.principal_name, entry.key_prefix) == (auditor, "auditor", _key_of(auditor))
    assert (entry.status, entry.detail) == (400, "invalid")


def test_a_bad_format_elsewhere_names_that_endpoints_formats(api, project, auditor):
    response = api(auditor).get(f"/api/v1/projects/{project.slug}/models/", {"format": "csv"})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "There is no format 'csv' here: ?format= takes json."


def test_an_unacceptable_accept_header_is_406_naming_the_types_and_logged_with_its_principal(api, project, auditor):
    url = f"/api/v1/projects/{project.slug}/audit-events/"
    response = api(auditor).get(url, HTTP_ACCEPT="application/xml")

    assert response.status_code == 406
    assert response.json()["error"] == {
        "code": "not_acceptable",
        "message": "The Accept header names no type this endpoint answers with: application/json, text/csv or "
        "application/x-ndjson.",
        "details": [],
    }
    entry = _only_entry(path=url)
    assert (entry.principal, entry.key_prefix, entry.detail) == (auditor, _key_of(auditor), "not_acceptable")


def test_a_bad_format_with_a_session_is_logged_with_the_session_user(project, auditor):
    client = APIClient()
    client.force_login(auditor)
    url = f"/api/v1/projects/{project.slug}/access-log/"
    assert client.get(url, {"format": "pdf"}).status_code == 400
    entry = _only_entry(path=url)
    assert (entry.principal, entry.key_prefix, entry.detail) == (auditor, "", "invalid")


MODELS = "/api/v1/projects/fraud/models/"
# (what, method, path, request arguments, status, error code): one refusal of each kind, to an authenticated key.
REFUSALS = [
    ("unknown url", "get", "/api/v1/no-such-thing/", {}, 404, "not_found"),
    ("unknown model", "get", f"{MODELS}nope/", {}, 404, "not_found"),
    ("bad filter", "get", "/api/v1/projects/fraud/datasets/", {"data": {"classification": "secret"}}, 400,
     "invalid_query_parameter"),
    ("bad url", "get", MODELS, {"data": {"q": "\x00"}}, 400, "bad_request"),
    ("not json", "post", MODELS, {"data": "name=m", "content_type": "text/plain"}, 415, "unsupported_media_type"),
    ("too large", "post", MODELS, {"data": {"name": "m", "description": "x" * 4000}, "format": "json"}, 413,
     "payload_too_large"),
    ("forbidden", "get", "/api/v1/projects/fraud/audit-events/", {}, 403, "permission_denied"),
]  # fmt: skip


@pytest.mark.parametrize("what, method, path, arguments, status, code", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_a_refused_request_names_its_principal_key_and_error_code(
    api, project, ml_engineer, settings, what, method, path, arguments, status, code
):
    settings.TOLLGATE_MAX_JSON_BODY_BYTES = 1024
    response = getattr(api(ml_engineer), method)(path, **arguments)
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code

    (entry,) = AccessLogEntry.objects.all()
    assert (entry.principal, entry.principal_name) == (ml_engineer, "mlengineer")
    assert entry.key_prefix == _key_of(ml_engineer)
    assert (entry.status, entry.detail) == (status, code)


def test_a_throttled_request_names_its_principal_and_code(api, project, ml_engineer, settings):
    from django.core.cache import cache

    settings.TOLLGATE_THROTTLE_USER = "1/min"
    cache.delete(f"throttle_user_{ml_engineer.pk}")
    client = api(ml_engineer)
    try:
        assert client.get("/api/v1/me/").status_code == 200
        assert client.get("/api/v1/me/").status_code == 429
    finally:
        cache.delete(f"throttle_user_{ml_engineer.pk}")
    throttled = _only_entry(status=429)
    assert (throttled.principal, throttled.key_prefix, throttled.detail) == (
        ml_engineer,
        _key_of(ml_engineer),
        "throttled",
    )
    assert _only_entry(status=200).detail == ""


@pytest.mark.postgres
def test_a_server_error_names_its_principal_and_code(api, project, ml_engineer):
    """A real fault: PostgreSQL refuses the insert (a trigger, dropped with the test's transaction)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION test_refuse_models() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$; "
            "CREATE TRIGGER test_refuse_models BEFORE INSERT ON governance_registeredmodel "
            "FOR EACH ROW EXECUTE FUNCTION test_refuse_models();"
        )
    client = api(ml_engineer)
    client.raise_request_exception = False
    response = client.post(f"/api/v1/projects/{project.slug}/models/", {"name": "m"}, format="json")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "server_error"

    entry = _only_entry(status=500)
    assert (entry.principal, entry.key_prefix, entry.detail) == (ml_engineer, _key_of(ml_engineer), "server_error")


def test_a_refused_key_is_anonymous_and_its_prefix_is_noted(api, ml_engineer):
    client = api(ml_engineer)
    key = ml_engineer.api_keys.get()
    assert client.post(f"/api/v1/api-keys/{key.pk}/revoke/").status_code == 200
    AccessLogEntry.objects.all().delete()

    response = client.get("/api/v1/me/")
    assert response.status_code == 401
    entry = _only_entry(path="/api/v1/me/")
    assert (entry.principal, entry.principal_name, entry.key_prefix) == (None, "", "")
    assert entry.detail == f"authentication_failed key={key.prefix}"


def test_a_key_is_checked_once_per_request(api, project, auditor, django_assert_max_num_queries):
    """The access log reuses the authenticator's check; only a request no view saw has its key looked up."""
    client = api(auditor)
    client.get("/api/v1/me/")  # the key's last-use stamp is written once a minute
    with django_assert_max_num_queries(4):  # the key (checked by the access log); its savepoint, insert, release
        assert client.get("/api/v1/no-such-thing/").status_code == 404
    with django_assert_max_num_queries(4):  # the key (checked by DRF); the access log's savepoint, insert, release
        assert client.get(f"/api/v1/projects/{project.slug}/models/", {"format": "xml"}).status_code == 400
