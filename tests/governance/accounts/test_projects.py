"""Projects (DESIGN §1, §4): staff create them and name the first admin; roles are per project."""

import pytest
from rest_framework.test import APIClient

from governance.accounts.access import Principal
from governance.accounts.models import Project, Role, RoleBinding, User
from governance.accounts.services import role_grant
from tests.factories import UserFactory

URL = "/api/v1/projects/"


def _new(**body):
    return {"slug": "credit", "name": "Credit scoring", "admin": "admin", **body}


def test_staff_create_a_project_and_name_its_admin(api, staff, admin_user):
    response = api(staff).post(URL, _new(description="Loan models."), format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["slug"] == "credit"
    assert response.json()["name"] == "Credit scoring"
    assert response.json()["roles"] == []

    project = Project.objects.get(slug="credit")
    assert project.created_by == staff
    assert project.description == "Loan models."
    binding = RoleBinding.objects.active().get(project=project)
    assert (binding.principal, binding.role, binding.granted_by) == (admin_user, Role.ADMIN, staff)

    admin_view = api(admin_user).get("/api/v1/projects/credit/")
    assert admin_view.status_code == 200
    assert admin_view.json()["roles"] == ["admin"]


def test_a_staff_session_creates_projects_too(staff, admin_user):
    client = APIClient()
    client.force_login(staff)
    assert client.post(URL, _new(), format="json").status_code == 201
    assert Project.objects.filter(slug="credit").exists()


@pytest.mark.parametrize("persona", ["admin_user", "officer", "ml_engineer", "outsider"])
def test_only_staff_create_projects(request, api, project, persona):
    response = api(request.getfixturevalue(persona)).post(URL, _new(), format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert not Project.objects.filter(slug="credit").exists()


def test_staff_with_a_pinned_key_are_not_staff(api, staff, project, admin_user):
    role_grant(actor=Principal(admin_user), project=project, principal=staff, role=Role.AUDITOR)
    pinned = api(staff, project=project)
    response = pinned.post(URL, _new(), format="json")
    assert response.status_code == 403
    assert not Project.objects.filter(slug="credit").exists()
    assert pinned.get("/api/v1/me/").json()["is_staff"] is False


def test_staff_with_a_read_only_key_are_not_staff(api, staff, admin_user):
    response = api(staff, read_only=True).post(URL, _new(), format="json")
    assert response.status_code == 403
    assert not Project.objects.filter(slug="credit").exists()


def test_a_pinned_staff_key_sees_only_its_projects(api, staff, project, other_project, admin_user):
    role_grant(actor=Principal(admin_user), project=project, principal=staff, role=Role.AUDITOR)
    assert [p["slug"] for p in api(staff).get(URL).json()["results"]] == ["fraud", "other"]
    pinned = api(staff, project=project)
    assert [p["slug"] for p in pinned.get(URL).json()["results"]] == ["fraud"]
    assert pinned.get("/api/v1/projects/other/").status_code == 404


@pytest.mark.parametrize("slug", ["Not A Slug", "with/slash", "", "x" * 65])
def test_it_refuses_an_invalid_slug(api, staff, admin_user, slug):
    response = api(staff).post(URL, _new(slug=slug), format="json")
    assert response.status_code == 400
    assert [d["field"] for d in response.json()["error"]["details"]] == ["slug"]
    assert not Project.objects.filter(name="Credit scoring").exists()


def test_it_refuses_a_duplicate_slug_with_409(api, staff, project, admin_user):
    response = api(staff).post(URL, _new(slug="fraud", name="Another"), format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert Project.objects.get(slug="fraud").name == "Fraud detection"


def test_it_refuses_an_unknown_admin(api, staff):
    response = api(staff).post(URL, _new(admin="ghost"), format="json")
    assert response.status_code == 400
    assert not Project.objects.filter(slug="credit").exists()


def test_an_unknown_admin_is_reported_under_the_admin_field(api, staff):
    response = api(staff).post(URL, _new(admin="ghost"), format="json")
    assert [d["field"] for d in response.json()["error"]["details"]] == ["admin"]


def test_a_non_staff_caller_learns_nothing_about_usernames(api, ml_engineer):
    client = api(ml_engineer)
    unknown = client.post(URL, _new(admin="ghost"), format="json")
    known = client.post(URL, _new(admin="admin"), format="json")
    assert unknown.status_code == known.status_code == 403


def test_staff_cannot_name_themselves_the_first_admin(api, staff):
    response = api(staff).post(URL, _new(admin="staff"), format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "self_grant"
    assert not Project.objects.filter(slug="credit").exists()


def test_the_first_admin_may_not_be_a_service_account(api, staff, project, admin_user):
    account = User.objects.create(username="ci@fraud", service_project=project)
    response = api(staff).post(URL, _new(admin=account.username), format="json")
    assert response.status_code == 400
    assert [d["field"] for d in response.json()["error"]["details"]] == ["admin"]
    assert not Project.objects.filter(slug="credit").exists()


def test_a_principal_sees_its_own_roles_in_each_project(api, project, other_project, admin_user):
    user = UserFactory(username="twohats")
    role_grant(actor=Principal(admin_user), project=project, principal=user, role=Role.ML_ENGINEER)
    role_grant(actor=Principal(admin_user), project=project, principal=user, role=Role.GOVERNANCE_OFFICER)
    role_grant(actor=Principal.system(), project=other_project, principal=user, role=Role.AUDITOR)
    client = api(user)

    listed = {p["slug"]: p["roles"] for p in client.get(URL).json()["results"]}
    assert listed == {"fraud": ["governance_officer", "ml_engineer"], "other": ["auditor"]}
    assert client.get("/api/v1/projects/other/").json()["roles"] == ["auditor"]
    me = client.get("/api/v1/me/").json()
    assert me["username"] == "twohats"
    assert me["is_staff"] is False
    assert me["service_account"] is False
    assert me["projects"] == listed


def test_staff_see_every_project_without_holding_a_role(api, staff, project, other_project):
    listed = {p["slug"]: p["roles"] for p in api(staff).get(URL).json()["results"]}
    assert listed == {"fraud": [], "other": []}
    assert api(staff).get("/api/v1/me/").json()["is_staff"] is True


def test_an_outsider_does_not_see_the_project(api, project, outsider):
    client = api(outsider)
    assert [p["slug"] for p in client.get(URL).json()["results"]] == ["other"]
    response = client.get("/api/v1/projects/fraud/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    missing = client.get("/api/v1/projects/no-such-project/")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")


def test_an_admin_renames_the_project_and_others_cannot(api, project, admin_user, officer, outsider):
    assert api(officer).patch("/api/v1/projects/fraud/", {"name": "Mine"}, format="json").status_code == 403
    assert api(outsider).patch("/api/v1/projects/fraud/", {"name": "Mine"}, format="json").status_code == 404
    response = api(admin_user).patch("/api/v1/projects/fraud/", {"name": "Card fraud"}, format="json")
    assert response.status_code == 200
    assert response.json()["name"] == "Card fraud"
    project.refresh_from_db()
    assert project.name == "Card fraud"
    assert project.slug == "fraud"


def test_the_slug_cannot_be_changed(api, project, admin_user):
    response = api(admin_user).patch("/api/v1/projects/fraud/", {"slug": "stolen"}, format="json")
    assert response.status_code in (200, 400)
    assert Project.objects.filter(slug="fraud").exists()
    assert not Project.objects.filter(slug="stolen").exists()


def test_staff_create_users_and_others_cannot(api, staff, ml_engineer):
    response = api(staff).post("/api/v1/users/", {"username": "newcomer", "email": "n@example.org"}, format="json")
    assert response.status_code == 201
    assert User.objects.filter(username="newcomer").exists()
    assert api(ml_engineer).post("/api/v1/users/", {"username": "friend"}, format="json").status_code == 403
    assert not User.objects.filter(username="friend").exists()
    assert api(ml_engineer).get("/api/v1/users/").json()["results"] == []


def test_a_session_write_without_a_csrf_token_is_refused(staff, admin_user):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(staff)
    response = client.post(URL, _new(), format="json")
    assert response.status_code == 403
    assert set(response.json()["error"]) == {"code", "message", "details"}
    assert not Project.objects.filter(slug="credit").exists()
