"""The accounts lists cost a fixed number of queries: the same with two rows as with twenty-two.

Every request pays five of them: the key, its ``last_used_at``, and the access log's savepoint, insert and
release; a project's list adds the project and the caller's roles in it."""

import pytest

from governance.accounts.access import Principal
from governance.accounts.models import Role
from governance.accounts.services import (
    api_key_issue,
    project_create,
    service_account_create,
    service_account_key_create,
)
from tests.factories import MemberFactory, UserFactory
from tests.list_queries import queries_of

MANY = 22
PROJECTS = 8  # the five, the count, the page, the caller's roles in them
MEMBERS = 9  # the five, the project, the caller's roles, the count, the page (bindings with their users)
SERVICE_ACCOUNTS = 10  # the five, the project, roles, the count, the page, its role bindings (prefetched)
SERVICE_ACCOUNT_KEYS = 11  # the five, the project, roles, the account, its bindings, the count, the page (+owner)
API_KEYS = 7  # the five, the count, the page (keys with their project and owner)
USERS = 7  # the five, the count, the page


@pytest.fixture
def count(api, django_assert_max_num_queries):
    def measure(user, path, pinned, *, rows, params=None):
        return queries_of(django_assert_max_num_queries, api(user), path, pinned, rows=rows, params=params)

    return measure


def test_projects(count, staff, admin_user, project):
    def more(n):
        for i in range(n):
            project_create(actor=Principal(staff), slug=f"team-{i}-{n}", name=f"Team {i}", admin=admin_user)

    more(1)
    few = count(admin_user, "/api/v1/projects/", PROJECTS, rows=2)
    more(MANY - 2)
    assert count(admin_user, "/api/v1/projects/", PROJECTS, rows=MANY) == few


def test_members(count, project, admin_user):
    path = f"/api/v1/projects/{project.slug}/members/"
    MemberFactory(project=project, role=Role.AUDITOR)
    few = count(admin_user, path, MEMBERS, rows=2)
    for i in range(MANY - 2):
        MemberFactory(project=project, role=[Role.ML_ENGINEER, Role.GOVERNANCE_OFFICER][i % 2])
    assert count(admin_user, path, MEMBERS, rows=MANY) == few


def test_service_accounts_and_their_keys(count, project, admin_user):
    actor = Principal(admin_user)
    accounts = [service_account_create(actor=actor, project=project, name=f"ci-{i}", role=Role.ML_ENGINEER)[0]
                for i in range(2)]  # fmt: skip
    path = f"/api/v1/projects/{project.slug}/service-accounts/"
    few = count(admin_user, path, SERVICE_ACCOUNTS, rows=2)
    keys_path = f"{path}{accounts[0].pk}/keys/"
    service_account_key_create(actor=actor, service_account=accounts[0], name="second")
    few_keys = count(admin_user, keys_path, SERVICE_ACCOUNT_KEYS, rows=2)
    for i in range(2, MANY):
        service_account_create(actor=actor, project=project, name=f"ci-{i}", role=Role.ML_ENGINEER)
        service_account_key_create(actor=actor, service_account=accounts[0], name=f"key-{i}")
    assert count(admin_user, path, SERVICE_ACCOUNTS, rows=MANY) == few
    assert count(admin_user, keys_path, SERVICE_ACCOUNT_KEYS, rows=MANY) == few_keys


def test_api_keys(count, project, other_project, ml_engineer):
    def issue(n, start):
        for i in range(start, start + n):  # some for a project, some for every project of the owner
            api_key_issue(actor=Principal(ml_engineer), owner=ml_engineer, project=project if i % 2 else None,
                          name=f"key-{i}", read_only=bool(i % 3), expires_at=None)  # fmt: skip

    issue(1, 0)  # the client's own key is the second
    few = count(ml_engineer, "/api/v1/api-keys/", API_KEYS, rows=2)
    issue(MANY - 3, 1)  # with the first measure's key and the second's
    assert count(ml_engineer, "/api/v1/api-keys/", API_KEYS, rows=MANY) == few


def test_users(count, staff, admin_user):
    few = count(staff, "/api/v1/users/", USERS, rows=2)
    UserFactory.create_batch(MANY - 2)
    assert count(staff, "/api/v1/users/", USERS, rows=MANY) == few
