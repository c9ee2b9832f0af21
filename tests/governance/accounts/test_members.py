from datetime import timedelta

import pytest
from django.utils import timezone

from governance.accounts.models import RoleBinding


def test_an_admin_grants_a_role_and_the_history_stays_readable(api, project, admin_user, ml_engineer):
    client = api(admin_user)
    url = f"/api/v1/projects/{project.slug}/members/"
    response = client.post(url, {"principal": "mlengineer", "role": "auditor"}, format="json")
    assert response.status_code == 201, response.json()
    binding_id = response.json()["id"]

    revoked = client.post(f"{url}{binding_id}/revoke/")
    assert revoked.status_code == 200
    assert revoked.json()["state"] == "revoked"

    active = {(b["principal"], b["role"]) for b in client.get(url).json()["results"]}
    assert ("mlengineer", "auditor") not in active
    history = client.get(url, {"state": "all"}).json()["results"]
    assert any(b["id"] == binding_id and b["state"] == "revoked" for b in history)


def test_nobody_grants_a_role_to_themselves(api, project, admin_user):
    response = api(admin_user).post(
        f"/api/v1/projects/{project.slug}/members/", {"principal": "admin", "role": "governance_officer"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "self_grant"
    assert not RoleBinding.objects.filter(principal=admin_user, role="governance_officer").exists()


def test_only_an_admin_grants(api, project, officer, ml_engineer):
    response = api(officer).post(
        f"/api/v1/projects/{project.slug}/members/", {"principal": "mlengineer", "role": "admin"}, format="json"
    )
    assert response.status_code == 403


def test_an_expired_binding_gives_no_access(api, project, admin_user):
    from tests.factories import UserFactory

    temp = UserFactory(username="temp")
    soon = timezone.now() + timedelta(seconds=30)
    response = api(admin_user).post(
        f"/api/v1/projects/{project.slug}/members/",
        {"principal": "temp", "role": "auditor", "expires_at": soon.isoformat()},
        format="json",
    )
    assert response.status_code == 201
    client = api(temp)
    assert client.get(f"/api/v1/projects/{project.slug}/").status_code == 200
    RoleBinding.objects.filter(principal=temp).update(
        granted_at=timezone.now() - timedelta(days=1), expires_at=timezone.now()
    )
    assert client.get(f"/api/v1/projects/{project.slug}/").status_code == 404


def test_an_outsider_sees_nothing_of_the_project(api, project, outsider):
    client = api(outsider)
    assert client.get(f"/api/v1/projects/{project.slug}/").status_code == 404
    assert client.get(f"/api/v1/projects/{project.slug}/members/").status_code == 404
    slugs = [p["slug"] for p in client.get("/api/v1/projects/").json()["results"]]
    assert slugs == ["other"]


@pytest.mark.postgres
def test_the_last_admin_cannot_be_revoked(api, project, admin_user, staff):
    binding = RoleBinding.objects.get(principal=admin_user, project=project, role="admin")
    response = api(staff).post(f"/api/v1/projects/{project.slug}/members/{binding.pk}/revoke/")
    assert response.status_code == 409
