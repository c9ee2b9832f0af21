"""The audit lists cost a fixed number of queries: the same with a few rows as with more than twenty.

Every request pays five queries: the key, its ``last_used_at``, and the access log's savepoint, insert and
release; a project's list adds the project (six before the list's own). Both lists are cursor-paginated (no
COUNT)."""

import datetime

import factory

from governance.accounts.access import Principal
from governance.audit.models import AccessLogEntry, AuditEvent
from governance.audit.services import audit_record
from tests.factories import AccessLogEntryFactory, bulk
from tests.list_queries import queries_of

MANY = 22
EVENTS = 8  # the six, the caller's roles, the page
ACCESS_LOG = 8  # the six, the caller's roles, the page
NOON = datetime.datetime(2026, 1, 10, 12, tzinfo=datetime.UTC)
BEFORE = {"until": "2026-01-11T00:00:00Z"}  # not the entries of this test's own requests


def test_the_audit_lists(api, project, admin_user, officer, auditor, django_assert_max_num_queries):
    def lists():
        def count(path, pinned, rows, params=None):
            return queries_of(django_assert_max_num_queries, api(auditor), path, pinned, rows=rows, params=params)

        p = f"/api/v1/projects/{project.slug}/"
        events = AuditEvent.objects.filter(project=project).count()
        return [
            count(f"{p}audit-events/", EVENTS, events),
            count(f"{p}access-log/", ACCESS_LOG, entries(), BEFORE),
        ]

    def entries():
        return AccessLogEntry.objects.filter(
            project_slug=project.slug, at__lt=NOON + datetime.timedelta(days=1)
        ).count()

    def record(n):
        for i in range(n):
            audit_record(action="test.noted", actor=Principal(admin_user if i % 2 else officer), project=project,
                         target=("thing", i), diff={"n": i})  # fmt: skip

    record(2)
    AccessLogEntryFactory(principal=auditor, at=NOON)
    AccessLogEntryFactory(principal=None, at=NOON, status=401)
    few = lists()
    record(MANY)
    bulk(AccessLogEntryFactory, MANY, principal=factory.Iterator([auditor, officer, admin_user]),
         at=factory.Sequence(lambda n: NOON + datetime.timedelta(minutes=n)))  # fmt: skip
    assert entries() > MANY and AuditEvent.objects.filter(project=project).count() > MANY
    assert lists() == few
