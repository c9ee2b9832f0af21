"""The enforcement point -- ``GET .../deployments/{model}/{environment}/`` and ``POST .../verify/`` -- costs a fixed,
small number of statements, and reads the deployment every time: a suspension, a revoked key or a removed role
counts for the very next request, on a connection whose queries are already compiled."""

from governance.accounts.access import Principal
from governance.accounts.services import role_revoke
from governance.promotion.services import deployment_set_state
from tests.factories import DeploymentFactory

# The key; the deployment with its project, model, environment and version; its history with each row's version
# and executor (GET only); the access log's savepoint, insert and release. (Before issue 19: 6 and 5, the same.)
ENFORCEMENT_GET, VERIFY = 6, 5


def path(project):
    return f"/api/v1/projects/{project.slug}/deployments/fraud-gbm/production/"


def test_the_enforcement_point_costs_a_fixed_number_of_statements(
    api, project, officer, ready_version, django_assert_num_queries
):
    DeploymentFactory(version=ready_version, officer=officer)
    client = api(officer)
    client.get(path(project))  # the key's first use is written down
    with django_assert_num_queries(ENFORCEMENT_GET):
        body = client.get(path(project)).json()
    assert (body["version"], body["state"], [row["version"] for row in body["history"]]) == (1, "active", [1])
    assert body["history"][0]["environment"] == "production"
    with django_assert_num_queries(VERIFY):
        answer = client.post(f"{path(project)}verify/", {"artifact_sha256": body["artifact_sha256"]}, format="json")
    assert answer.json() == {"allowed": True, "reason": "version 1 is approved and active", "version": 1}


def test_a_suspension_and_a_removed_role_count_for_the_next_request(
    api, project, admin_user, officer, auditor, ready_version
):
    deployment = DeploymentFactory(version=ready_version, officer=officer)
    client = api(auditor)
    sha = ready_version.artifact_sha256
    assert client.post(f"{path(project)}verify/", {"artifact_sha256": sha}, format="json").json()["allowed"] is True
    deployment_set_state(actor=Principal(officer), deployment=deployment, state="suspended", reason="drift")
    answer = client.post(f"{path(project)}verify/", {"artifact_sha256": sha}, format="json").json()
    assert answer == {"allowed": False, "reason": "the deployment is suspended: drift", "version": 1}
    assert client.get(path(project)).json()["state"] == "suspended"
    binding = auditor.role_bindings.get(project=project)
    role_revoke(actor=Principal(admin_user), binding=binding)
    assert client.post(f"{path(project)}verify/", {"artifact_sha256": sha}, format="json").status_code == 404
