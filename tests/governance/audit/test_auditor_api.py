import csv
import datetime
import io
import json

import pytest
from rest_framework.test import APIClient

from governance.accounts.access import Principal
from governance.audit.chain import digest
from governance.audit.models import AccessLogEntry, AuditEvent, chain_of
from governance.audit.services import audit_record

UTC = datetime.UTC


@pytest.fixture
def events(project, admin_user, officer, auditor):
    """A few more events in the project's chain, by two actors, about two targets."""
    for n in range(6):
        actor = admin_user if n % 2 else officer
        audit_record(
            action="test.marked" if n % 3 == 0 else "test.noted",
            actor=Principal(actor),
            project=project,
            target=("thing", n),
            diff={"n": n},
        )
    return AuditEvent.objects.filter(chain=chain_of(project.pk)).order_by("sequence")


def _url(project, what="audit-events"):
    return f"/api/v1/projects/{project.slug}/{what}/"


def _all_pages(client, url, **params) -> list[dict]:
    results, response = [], client.get(url, params)
    while True:
        assert response.status_code == 200, response.content
        body = response.json()
        results += body["results"]
        if not body["next"]:
            return results
        response = client.get(body["next"])


def _streamed(response) -> str:
    assert response.status_code == 200
    assert response.streaming
    return b"".join(response.streaming_content).decode("utf-8")


# --- Who sees it ---


@pytest.mark.parametrize("who", ["auditor", "admin_user"])
def test_auditors_and_admins_read_the_chain_in_sequence_order(request, api, project, events, who):
    client = api(request.getfixturevalue(who))
    results = _all_pages(client, _url(project), page_size=2)
    assert [e["sequence"] for e in results] == list(events.values_list("sequence", flat=True))
    assert results[-1]["diff"] == {"n": 5}
    assert {"payload", "hash"}.isdisjoint(results[0])


def test_an_ml_engineer_is_refused_and_the_refusal_is_audited(api, project, ml_engineer):
    client = api(ml_engineer)
    for url in (_url(project), _url(project, "access-log"), f"{_url(project)}1/"):
        response = client.get(url)
        assert response.status_code == 403, url
        assert response.json()["error"]["code"] == "permission_denied"

    denied = AuditEvent.objects.filter(chain=chain_of(project.pk), action="access.denied", actor=ml_engineer)
    assert denied.count() == 3
    assert denied.first().diff["operation"] == f"GET {_url(project)}"


def test_a_refused_export_answers_in_json(api, project, ml_engineer):
    response = api(ml_engineer).get(_url(project), {"format": "csv"})
    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "permission_denied"


def test_an_outsider_gets_404(api, project, outsider):
    client = api(outsider)
    assert client.get(_url(project)).status_code == 404
    assert client.get(_url(project, "access-log"), {"format": "jsonl"}).status_code == 404


def test_anonymous_gets_401(project):
    response = APIClient().get(_url(project))
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


# --- The audit events ---


def test_one_event_with_its_hashed_bytes(api, project, auditor, events):
    last = events.last()
    response = api(auditor).get(f"{_url(project)}{last.sequence}/")
    assert response.status_code == 200
    body = response.json()
    assert body["sequence"] == last.sequence
    assert body["hash"] == digest(body["payload"]) == last.hash
    assert body["prev_hash"] == events.get(sequence=last.sequence - 1).hash
    assert json.loads(body["payload"])["diff"] == {"n": 5}


def test_an_unknown_sequence_is_404(api, project, other_project, auditor):
    client = api(auditor)
    assert client.get(f"{_url(project)}9999/").status_code == 404
    # The other project's first event has sequence 1 too, but it is not in this chain.
    assert AuditEvent.objects.filter(project=other_project, sequence=1).exists()
    assert client.get(f"{_url(project)}1/").json()["target_type"] == "project"


def test_events_filter_by_actor_action_target_and_time(api, project, auditor, events):
    client = api(auditor)
    url = _url(project)

    by_officer = _all_pages(client, url, actor="officer")
    assert by_officer and {e["actor"] for e in by_officer} == {"officer"}
    assert len(by_officer) == events.filter(actor_name="officer").count()

    published = _all_pages(client, url, action="test.marked")
    assert [e["target_id"] for e in published] == ["0", "3"]

    assert [e["diff"] for e in _all_pages(client, url, target_type="thing", target_id="4")] == [{"n": 4}]

    middle = events[len(events) // 2]
    since = _all_pages(client, url, since=middle.occurred_at.isoformat())
    assert [e["sequence"] for e in since] == list(
        events.filter(occurred_at__gte=middle.occurred_at).values_list("sequence", flat=True)
    )
    until = _all_pages(client, url, until=middle.occurred_at.isoformat())
    assert [e["sequence"] for e in until] == list(
        events.filter(occurred_at__lt=middle.occurred_at).values_list("sequence", flat=True)
    )


@pytest.mark.parametrize("param", ["since", "until"])
def test_a_bad_time_is_400(api, project, auditor, param):
    response = api(auditor).get(_url(project), {param: "yesterday-ish"})
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == param


def test_the_page_size_is_capped(api, project, auditor, events, settings):
    settings.TOLLGATE_MAX_PAGE_SIZE = 3
    body = api(auditor).get(_url(project), {"page_size": 1000}).json()
    assert len(body["results"]) == 3
    assert body["next"]


def test_the_events_export_as_csv(api, project, auditor, events):
    response = api(auditor).get(_url(project), {"format": "csv"})
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="fraud-audit-events-')
    assert response["Content-Disposition"].endswith('.csv"')
    rows = list(csv.DictReader(io.StringIO(_streamed(response))))

    assert [int(r["sequence"]) for r in rows] == list(events.values_list("sequence", flat=True))
    last = rows[-1]
    assert (last["actor"], last["action"], last["target_id"]) == ("admin", "test.noted", "5")
    assert json.loads(last["diff"]) == {"n": 5}
    assert digest(last["payload"]) == last["hash"] == events.last().hash  # verifiable offline
    assert all(r["prev_hash"] == p["hash"] for p, r in zip(rows, rows[1:], strict=False))


def test_the_events_export_as_jsonl_by_accept_header_with_filters(api, project, auditor, events):
    response = api(auditor).get(_url(project), {"actor": "officer"}, HTTP_ACCEPT="application/x-ndjson")
    assert response["Content-Type"] == "application/x-ndjson; charset=utf-8"
    assert response["Content-Disposition"].endswith('.jsonl"')
    rows = [json.loads(line) for line in _streamed(response).splitlines()]
    assert [r["sequence"] for r in rows] == list(events.filter(actor_name="officer").values_list("sequence", flat=True))
    assert {r["actor"] for r in rows} == {"officer"}
    assert datetime.datetime.fromisoformat(rows[0]["occurred_at"]).tzinfo is not None
    assert rows[0]["diff"] == {"n": 0}


def test_the_csv_export_defuses_spreadsheet_formulas(api, project, auditor, admin_user):
    audit_record(action="dataset.registered", actor=Principal(admin_user), project=project, target=("x", "=1+2"))
    rows = list(csv.DictReader(io.StringIO(_streamed(api(auditor).get(_url(project), {"format": "csv"})))))
    assert rows[-1]["target_id"] == "'=1+2"
    jsonl = _streamed(api(auditor).get(_url(project), {"format": "jsonl"}))
    assert json.loads(jsonl.splitlines()[-1])["target_id"] == "=1+2"


def test_the_events_list_has_a_fixed_number_of_queries(api, project, auditor, events, django_assert_max_num_queries):
    client = api(auditor)
    client.get(_url(project))  # the key's last-use stamp is written once a minute, not per request
    # key, project, roles, the page, and the access log INSERT (in a savepoint inside the test's transaction)
    expected = events.count()
    with django_assert_max_num_queries(7):
        assert len(client.get(_url(project), {"page_size": 100}).json()["results"]) == expected
    with django_assert_max_num_queries(7):
        assert _streamed(client.get(_url(project), {"format": "csv"}))


# --- The access log ---


@pytest.fixture
def log_entries(project, other_project, auditor):
    noon = datetime.datetime(2026, 1, 10, 12, tzinfo=UTC)

    def entry(minutes, **fields):
        fields = {"method": "GET", "path": "/api/v1/projects/fraud/", "status": 200, "project_slug": "fraud", **fields}
        return AccessLogEntry.objects.create(at=noon + datetime.timedelta(minutes=minutes), **fields)

    return [
        entry(0, principal=auditor, principal_name="auditor"),
        entry(1, principal=auditor, principal_name="auditor", method="POST", path="/api/v1/projects/fraud/members/"),
        entry(2, status=401),
        entry(3, principal_name="admin", status=404, path="/api/v1/projects/fraud/models/x/"),
        entry(4, principal_name="admin", status=403, path="/api/v1/projects/fraud/members/", method="DELETE"),
        entry(5, principal_name="outsider", project_slug="other", path="/api/v1/projects/other/"),
    ]


def test_the_access_log_lists_the_projects_requests_newest_first(api, project, auditor, log_entries):
    results = _all_pages(api(auditor), _url(project, "access-log"), page_size=2)
    fraud = [e.pk for e in log_entries if e.project_slug == "fraud"]
    assert [r["id"] for r in results] == sorted(fraud, reverse=True)
    assert results[-1]["principal"] == "auditor"
    assert results[-1]["project"] == "fraud"


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"principal": "auditor"}, [0, 1]),
        ({"principal": "-"}, [2]),
        ({"method": "post"}, [1]),
        ({"status": "404"}, [3]),
        ({"status": "4xx"}, [2, 3, 4]),
        ({"path": "/api/v1/projects/fraud/members/"}, [1, 4]),
        ({"since": "2026-01-10T12:03:00Z"}, [3, 4]),
        ({"until": "2026-01-10T12:01:00+00:00"}, [0]),
        ({"principal": "admin", "method": "DELETE"}, [4]),
    ],
)
def test_the_access_log_filters(api, project, auditor, log_entries, params, expected):
    results = _all_pages(api(auditor), _url(project, "access-log"), **params)
    assert sorted(r["id"] for r in results) == [log_entries[i].pk for i in expected]


@pytest.mark.parametrize("params", [{"status": "4x"}, {"status": "600"}, {"since": "not-a-time"}])
def test_a_bad_access_log_filter_is_400(api, project, auditor, params):
    assert api(auditor).get(_url(project, "access-log"), params).status_code == 400


def test_the_access_log_exports_as_csv_and_jsonl(api, project, auditor, log_entries):
    client = api(auditor)
    day = {"until": "2026-01-11T00:00:00Z"}  # not the entries of this test's own requests
    rows = list(
        csv.DictReader(io.StringIO(_streamed(client.get(_url(project, "access-log"), {"format": "csv", **day}))))
    )
    fraud = sorted((e.pk for e in log_entries if e.project_slug == "fraud"), reverse=True)
    assert [int(r["id"]) for r in rows] == fraud
    assert rows[-1]["principal"] == "auditor"
    assert rows[-1]["at"] == "2026-01-10T12:00:00+00:00"

    response = client.get(_url(project, "access-log"), {"status": "4xx", **day}, HTTP_ACCEPT="text/csv")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert {r["status"] for r in csv.DictReader(io.StringIO(_streamed(response)))} == {"401", "403", "404"}

    response = client.get(_url(project, "access-log"), {"format": "jsonl", "principal": "admin", **day})
    assert response["Content-Disposition"].startswith('attachment; filename="fraud-access-log-')
    lines = [json.loads(line) for line in _streamed(response).splitlines()]
    assert [(r["method"], r["status"]) for r in lines] == [("DELETE", 403), ("GET", 404)]


def test_the_access_log_has_a_fixed_number_of_queries(
    api, project, auditor, log_entries, django_assert_max_num_queries
):
    client = api(auditor)
    client.get(_url(project, "access-log"))
    with django_assert_max_num_queries(7):
        assert client.get(_url(project, "access-log")).status_code == 200
    with django_assert_max_num_queries(7):
        assert _streamed(client.get(_url(project, "access-log"), {"format": "jsonl"}))
