"""API keys (DESIGN §4, §6): shown once, stored as SHA-256, expiring, revocable, never more than the owner."""

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from governance.accounts.access import Principal
from governance.accounts.models import ApiKey, Role, RoleBinding
from governance.accounts.services import role_grant
from tests.factories import UserFactory


def _bearer(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


def _create(client, **body):
    response = client.post("/api/v1/api-keys/", {"name": "ci", **body}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def _assert_401(response):
    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert set(response.json()["error"]) == {"code", "message", "details"}


def test_it_shows_a_new_key_once_and_stores_only_its_sha256(api, ml_engineer, project):
    created = _create(api(ml_engineer), project="fraud")
    raw_key = created["key"]
    assert raw_key.startswith(f"tg_{created['prefix']}_")
    assert created["project"] == "fraud" and created["owner"] == "mlengineer" and created["state"] == "active"

    row = ApiKey.objects.get(pk=created["id"])
    assert row.hashed == hashlib.sha256(raw_key.encode()).hexdigest()
    secret_part = raw_key.removeprefix(f"tg_{created['prefix']}_")  # the secret may itself hold "_"
    for field in ApiKey._meta.concrete_fields:
        value = str(field.value_from_object(row))
        assert raw_key not in value and secret_part not in value, f"the secret is stored in {field.name}"

    client = api(ml_engineer)
    listed = client.get("/api/v1/api-keys/")
    detail = client.get(f"/api/v1/api-keys/{created['id']}/")
    for response in (listed, detail):
        assert response.status_code == 200
        assert secret_part not in response.content.decode()
    assert "key" not in detail.json()
    assert created["id"] in [k["id"] for k in listed.json()["results"]]


def test_a_new_key_works_and_records_its_last_use(api, ml_engineer, project):
    created = _create(api(ml_engineer), project="fraud")
    assert ApiKey.objects.get(pk=created["id"]).last_used_at is None

    me = _bearer(created["key"]).get("/api/v1/me/")
    assert me.status_code == 200
    assert me.json()["username"] == "mlengineer"
    assert me.json()["key"]["prefix"] == created["prefix"]
    assert me.json()["projects"] == {"fraud": ["ml_engineer"]}
    used = ApiKey.objects.get(pk=created["id"]).last_used_at
    assert used is not None and timezone.now() - used < timedelta(minutes=1)


def test_last_use_is_written_at_most_once_a_minute(api, ml_engineer):
    created = _create(api(ml_engineer))
    key = _bearer(created["key"])
    key.get("/api/v1/me/")
    first = ApiKey.objects.get(pk=created["id"]).last_used_at
    key.get("/api/v1/me/")
    assert ApiKey.objects.get(pk=created["id"]).last_used_at == first

    long_ago = timezone.now() - timedelta(minutes=5)
    ApiKey.objects.filter(pk=created["id"]).update(last_used_at=long_ago)
    key.get("/api/v1/me/")
    assert ApiKey.objects.get(pk=created["id"]).last_used_at > long_ago + timedelta(minutes=4)


def test_a_new_key_expires_by_default(api, ml_engineer, settings):
    created = _create(api(ml_engineer))
    expires = ApiKey.objects.get(pk=created["id"]).expires_at
    expected = timezone.now() + timedelta(days=settings.TOLLGATE_API_KEY_DEFAULT_TTL_DAYS)
    assert abs(expires - expected) < timedelta(minutes=1)


def test_it_refuses_a_revoked_key(api, ml_engineer):
    client = api(ml_engineer)
    created = _create(client)
    revoked = client.post(f"/api/v1/api-keys/{created['id']}/revoke/")
    assert revoked.status_code == 200
    assert revoked.json()["state"] == "revoked"
    assert ApiKey.objects.get(pk=created["id"]).revoked_at is not None
    _assert_401(_bearer(created["key"]).get("/api/v1/me/"))


def test_it_refuses_an_expired_key(api, ml_engineer):
    created = _create(api(ml_engineer), expires_at=(timezone.now() + timedelta(hours=1)).isoformat())
    key = _bearer(created["key"])
    assert key.get("/api/v1/me/").status_code == 200
    ApiKey.objects.filter(pk=created["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    _assert_401(key.get("/api/v1/me/"))
    assert api(ml_engineer).get(f"/api/v1/api-keys/{created['id']}/").json()["state"] == "expired"


def test_it_refuses_a_key_whose_owner_is_deactivated(api, ml_engineer):
    created = _create(api(ml_engineer))
    ml_engineer.is_active = False
    ml_engineer.save(update_fields=["is_active"])
    _assert_401(_bearer(created["key"]).get("/api/v1/me/"))


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Bearer two parts",
        "Bearer tg_nothing",
        "Bearer tg_0000000_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "Bearer tg_00000000_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "Bearer tg_00000000_é",
    ],
)
def test_it_refuses_a_malformed_or_unknown_bearer_key(db, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    _assert_401(client.get("/api/v1/me/"))


def test_it_refuses_a_key_with_a_right_prefix_and_a_wrong_secret(api, ml_engineer):
    raw_key = _create(api(ml_engineer))["key"]
    forged = raw_key[:-4] + ("AAAA" if not raw_key.endswith("AAAA") else "BBBB")
    _assert_401(_bearer(forged).get("/api/v1/me/"))


def test_the_bearer_key_is_checked_before_the_session(api, ml_engineer, officer):
    client = APIClient()
    client.force_login(ml_engineer)
    assert client.get("/api/v1/me/").json()["username"] == "mlengineer"

    client.credentials(HTTP_AUTHORIZATION="Bearer tg_00000000_not-a-key")
    _assert_401(client.get("/api/v1/me/"))

    officer_key = _create(api(officer))["key"]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {officer_key}")
    assert client.get("/api/v1/me/").json()["username"] == "officer"


def test_it_keeps_other_peoples_keys_out_of_sight(api, ml_engineer, officer):
    officers_key = _create(api(officer))
    client = api(ml_engineer)
    assert officers_key["id"] not in [k["id"] for k in client.get("/api/v1/api-keys/").json()["results"]]
    assert client.get(f"/api/v1/api-keys/{officers_key['id']}/").status_code == 404
    assert client.post(f"/api/v1/api-keys/{officers_key['id']}/revoke/").status_code == 404
    assert ApiKey.objects.get(pk=officers_key["id"]).revoked_at is None


@pytest.fixture
def two_project_engineer(project, other_project, admin_user):
    """An ML engineer of ``fraud`` who is also an auditor of ``other``."""
    user = UserFactory(username="twohats")
    role_grant(actor=Principal(admin_user), project=project, principal=user, role=Role.ML_ENGINEER)
    role_grant(actor=Principal.system(), project=other_project, principal=user, role=Role.AUDITOR)
    return user


def test_a_key_pinned_to_one_project_cannot_see_another(api, project, other_project, two_project_engineer):
    unpinned = api(two_project_engineer)
    assert unpinned.get("/api/v1/projects/other/").status_code == 200

    pinned = api(two_project_engineer, project=project)
    assert pinned.get("/api/v1/projects/fraud/").status_code == 200
    response = pinned.get("/api/v1/projects/other/")  # a role there: told of the pin (test_error_guidance.py)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "key_pinned"
    assert pinned.get("/api/v1/projects/other/members/").status_code == 403
    assert [p["slug"] for p in pinned.get("/api/v1/projects/").json()["results"]] == ["fraud"]
    assert pinned.get("/api/v1/me/").json()["projects"] == {"fraud": ["ml_engineer"]}


def test_a_pinned_key_creates_keys_only_pinned_to_its_project(api, project, other_project, two_project_engineer):
    pinned = api(two_project_engineer, project=project)
    before = ApiKey.objects.filter(owner=two_project_engineer).count()

    unpinned = pinned.post("/api/v1/api-keys/", {"name": "escape"}, format="json")
    assert unpinned.status_code == 403
    elsewhere = pinned.post("/api/v1/api-keys/", {"name": "escape", "project": "other"}, format="json")
    assert elsewhere.status_code == 403
    assert ApiKey.objects.filter(owner=two_project_engineer).count() == before

    created = _create(pinned, project="fraud")
    assert created["project"] == "fraud"
    assert ApiKey.objects.get(pk=created["id"]).project == project
    assert _bearer(created["key"]).get("/api/v1/projects/other/").status_code == 403


def test_it_refuses_a_key_for_a_project_where_the_caller_holds_no_role(api, project, outsider):
    response = api(outsider).post("/api/v1/api-keys/", {"name": "sneak", "project": "fraud"}, format="json")
    assert response.status_code == 404
    assert not ApiKey.objects.filter(owner=outsider, name="sneak").exists()


def test_a_read_only_key_reads_but_cannot_write(api, project, admin_user, ml_engineer):
    read_only = api(admin_user, read_only=True)
    assert read_only.get("/api/v1/projects/fraud/").status_code == 200
    assert read_only.get("/api/v1/projects/fraud/members/").status_code == 200

    keys_before = ApiKey.objects.count()
    response = read_only.post("/api/v1/api-keys/", {"name": "more"}, format="json")
    assert response.status_code == 403
    assert set(response.json()["error"]) == {"code", "message", "details"}
    assert ApiKey.objects.count() == keys_before

    grant = read_only.post(
        "/api/v1/projects/fraud/members/", {"principal": "mlengineer", "role": "auditor"}, format="json"
    )
    assert grant.status_code == 403
    assert not RoleBinding.objects.filter(principal=ml_engineer, role=Role.AUDITOR).exists()

    patch = read_only.patch("/api/v1/projects/fraud/", {"name": "Renamed"}, format="json")
    assert patch.status_code == 403
    project.refresh_from_db()
    assert project.name == "Fraud detection"


def test_a_read_only_key_cannot_mint_a_writable_one(api, ml_engineer):
    response = api(ml_engineer, read_only=True).post(
        "/api/v1/api-keys/", {"name": "writable", "read_only": False}, format="json"
    )
    assert response.status_code == 403
    assert not ApiKey.objects.filter(name="writable").exists()


def test_a_key_loses_access_when_its_owner_loses_the_role(api, project, admin_user, ml_engineer):
    key = api(ml_engineer, project=project)
    assert key.get("/api/v1/projects/fraud/").status_code == 200

    binding = RoleBinding.objects.get(principal=ml_engineer, project=project, role=Role.ML_ENGINEER)
    revoked = api(admin_user).post(f"/api/v1/projects/fraud/members/{binding.pk}/revoke/")
    assert revoked.status_code == 200

    assert key.get("/api/v1/projects/fraud/").status_code == 404
    assert key.get("/api/v1/me/").json()["projects"] == {}


def test_a_key_does_no_more_than_its_owners_role(api, project, ml_engineer, officer):
    key = api(ml_engineer, project=project)
    response = key.post("/api/v1/projects/fraud/members/", {"principal": "officer", "role": "auditor"}, format="json")
    assert response.status_code == 403
    assert not RoleBinding.objects.filter(principal=officer, role=Role.AUDITOR).exists()
    assert key.patch("/api/v1/projects/fraud/", {"name": "Mine now"}, format="json").status_code == 403


def test_a_pinned_key_does_not_list_keys_of_another_project(api, project, other_project, two_project_engineer):
    elsewhere = _create(api(two_project_engineer), project="other")
    listed = api(two_project_engineer, project=project).get("/api/v1/api-keys/")
    assert listed.status_code == 200
    assert elsewhere["id"] not in [k["id"] for k in listed.json()["results"]]
    assert "other" not in {k["project"] for k in listed.json()["results"]}


def test_a_pinned_key_cannot_revoke_a_key_of_another_project(api, project, other_project, two_project_engineer):
    elsewhere = _create(api(two_project_engineer), project="other")
    response = api(two_project_engineer, project=project).post(f"/api/v1/api-keys/{elsewhere['id']}/revoke/")
    assert response.status_code == 404
    assert ApiKey.objects.get(pk=elsewhere["id"]).revoked_at is None
