"""Service accounts (DESIGN §1, §4): non-human principals of one project, ml_engineer or auditor, keys from admins."""

import hashlib

import pytest
from rest_framework.test import APIClient

from governance.accounts.models import ApiKey, Role, RoleBinding, User

URL = "/api/v1/projects/fraud/service-accounts/"


def _bearer(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


@pytest.fixture
def ci_account(api, admin_user, project):
    """The ``ci`` service account of ``fraud`` (ml_engineer), as the API returned it, key included."""
    response = api(admin_user).post(URL, {"name": "ci", "role": "ml_engineer"}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_an_admin_creates_a_service_account_with_a_pinned_key(ci_account, project):
    assert ci_account["name"] == "ci"
    assert ci_account["username"] == "ci@fraud"
    assert ci_account["roles"] == ["ml_engineer"]
    raw_key = ci_account["key"]
    assert raw_key.startswith(f"tg_{ci_account['key_prefix']}_")

    account = User.objects.get(pk=ci_account["id"])
    assert account.service_project == project
    assert not account.has_usable_password()
    assert list(RoleBinding.objects.active().filter(principal=account).values_list("project__slug", "role")) == [
        ("fraud", "ml_engineer")
    ]
    key = ApiKey.objects.get(owner=account)
    assert key.project == project
    assert key.hashed == hashlib.sha256(raw_key.encode()).hexdigest()


def test_the_service_account_key_is_pinned_to_its_project(ci_account, other_project):
    client = _bearer(ci_account["key"])
    me = client.get("/api/v1/me/").json()
    assert me["service_account"] is True
    assert me["key"]["project"] == "fraud"
    assert me["projects"] == {"fraud": ["ml_engineer"]}
    assert client.get("/api/v1/projects/fraud/").status_code == 200
    assert client.get("/api/v1/projects/other/").status_code == 404


def test_the_key_is_shown_once(api, admin_user, ci_account):
    client = api(admin_user)
    secret = ci_account["key"].rsplit("_", 1)[1]
    for response in (
        client.get(URL),
        client.get(f"{URL}{ci_account['id']}/"),
        client.get(f"{URL}{ci_account['id']}/keys/"),
    ):
        assert response.status_code == 200
        assert secret not in response.content.decode()
    assert [a["username"] for a in client.get(URL).json()["results"]] == ["ci@fraud"]


@pytest.mark.parametrize("persona", ["officer", "ml_engineer"])
def test_only_an_admin_creates_service_accounts(request, api, project, persona):
    client = api(request.getfixturevalue(persona))
    response = client.post(URL, {"name": "sneaky", "role": "ml_engineer"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert not User.objects.filter(username="sneaky@fraud").exists()


@pytest.mark.parametrize("persona", ["officer", "ml_engineer"])
def test_only_an_admin_or_auditor_lists_service_accounts(request, api, project, ci_account, persona):
    assert api(request.getfixturevalue(persona)).get(URL).status_code == 403


def test_an_auditor_lists_service_accounts_but_cannot_create_one(api, project, auditor, ci_account):
    client = api(auditor)
    assert [a["name"] for a in client.get(URL).json()["results"]] == ["ci"]
    assert client.post(URL, {"name": "mine", "role": "auditor"}, format="json").status_code == 403
    assert not User.objects.filter(username="mine@fraud").exists()


def test_an_outsider_neither_sees_nor_creates_service_accounts(api, project, outsider, ci_account):
    client = api(outsider)
    assert client.get(URL).status_code == 404
    assert client.get(f"{URL}{ci_account['id']}/").status_code == 404
    assert client.post(URL, {"name": "spy", "role": "auditor"}, format="json").status_code == 404
    assert not User.objects.filter(username="spy@fraud").exists()


@pytest.mark.parametrize("role", ["admin", "governance_officer", "superuser"])
def test_a_service_account_is_only_ml_engineer_or_auditor(api, admin_user, project, role):
    response = api(admin_user).post(URL, {"name": "boss", "role": role}, format="json")
    assert response.status_code == 400
    assert [d["field"] for d in response.json()["error"]["details"]] == ["role"]
    assert not User.objects.filter(username="boss@fraud").exists()


def test_it_refuses_an_invalid_service_account_name(api, admin_user, project):
    response = api(admin_user).post(URL, {"name": "Not A Name", "role": "auditor"}, format="json")
    assert response.status_code == 400
    assert [d["field"] for d in response.json()["error"]["details"]] == ["name"]


def test_it_refuses_a_second_service_account_with_the_same_name(api, admin_user, ci_account):
    response = api(admin_user).post(URL, {"name": "ci", "role": "auditor"}, format="json")
    assert response.status_code == 409
    assert User.objects.filter(username="ci@fraud").count() == 1


def test_a_service_account_cannot_be_granted_a_role_in_another_project(api, ci_account, other_project):
    other_admin = User.objects.get(username="other-admin")
    response = api(other_admin).post(
        "/api/v1/projects/other/members/", {"principal": "ci@fraud", "role": "auditor"}, format="json"
    )
    assert response.status_code == 404  # another project's service account is out of this project's scope
    assert [d["field"] for d in response.json()["error"]["details"]] == ["principal"]
    assert not RoleBinding.objects.filter(principal__username="ci@fraud", project=other_project).exists()


@pytest.mark.parametrize("role", ["admin", "governance_officer"])
def test_a_service_account_cannot_be_granted_a_human_role(api, admin_user, ci_account, role):
    response = api(admin_user).post(
        "/api/v1/projects/fraud/members/", {"principal": "ci@fraud", "role": role}, format="json"
    )
    assert response.status_code == 400
    assert not RoleBinding.objects.filter(principal__username="ci@fraud", role=role).exists()


def test_an_admin_may_add_the_auditor_role_to_a_service_account(api, admin_user, ci_account):
    response = api(admin_user).post(
        "/api/v1/projects/fraud/members/", {"principal": "ci@fraud", "role": "auditor"}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["service_account"] is True
    assert _bearer(ci_account["key"]).get("/api/v1/me/").json()["projects"] == {"fraud": ["auditor", "ml_engineer"]}


@pytest.mark.parametrize("body", [{"name": "own"}, {"name": "own", "project": "fraud"}])
def test_a_service_account_cannot_create_its_own_keys(ci_account, body):
    response = _bearer(ci_account["key"]).post("/api/v1/api-keys/", body, format="json")
    assert response.status_code == 403
    assert not ApiKey.objects.filter(name="own").exists()


def test_a_service_account_cannot_issue_keys_through_the_admin_endpoint(ci_account):
    response = _bearer(ci_account["key"]).post(f"{URL}{ci_account['id']}/keys/", {"name": "own"}, format="json")
    assert response.status_code == 403
    assert not ApiKey.objects.filter(name="own").exists()


def test_an_admin_issues_and_revokes_service_account_keys(api, admin_user, project, ci_account):
    client = api(admin_user)
    issued = client.post(f"{URL}{ci_account['id']}/keys/", {"name": "second", "read_only": True}, format="json")
    assert issued.status_code == 201, issued.json()
    second = issued.json()
    assert second["project"] == "fraud" and second["owner"] == "ci@fraud" and second["read_only"] is True
    assert ApiKey.objects.get(pk=second["id"]).project == project

    key = _bearer(second["key"])
    assert key.get("/api/v1/projects/fraud/").status_code == 200
    revoked = client.post(f"{URL}{ci_account['id']}/keys/{second['id']}/revoke/")
    assert revoked.status_code == 200
    assert revoked.json()["state"] == "revoked"
    assert key.get("/api/v1/projects/fraud/").status_code == 401
    assert _bearer(ci_account["key"]).get("/api/v1/projects/fraud/").status_code == 200


def test_an_officer_cannot_issue_or_revoke_service_account_keys(api, officer, ci_account):
    client = api(officer)
    assert client.post(f"{URL}{ci_account['id']}/keys/", {"name": "x"}, format="json").status_code == 403
    first_key = ApiKey.objects.get(owner_id=ci_account["id"])
    assert client.post(f"{URL}{ci_account['id']}/keys/{first_key.pk}/revoke/").status_code == 403
    first_key.refresh_from_db()
    assert first_key.revoked_at is None
    assert ApiKey.objects.filter(owner_id=ci_account["id"]).count() == 1


def test_a_service_account_cannot_log_in_to_the_console(client, ci_account):
    response = client.post("/console/login/", {"username": "ci@fraud", "password": ""})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_the_service_account_role_gives_no_admin_powers(ci_account, project):
    response = _bearer(ci_account["key"]).post(URL, {"name": "child", "role": "ml_engineer"}, format="json")
    assert response.status_code == 403
    assert not User.objects.filter(username="child@fraud").exists()
    assert RoleBinding.objects.active().filter(principal__username="ci@fraud", role=Role.ADMIN).count() == 0
