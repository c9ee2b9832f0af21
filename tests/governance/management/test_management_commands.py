"""Management commands (DESIGN §8): create_api_key prints a working key alone on its last line; seed_demo
can run again."""

import hashlib
import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from governance.accounts.models import ApiKey, Project, Role, RoleBinding, User


def _run(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _bearer(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


def _last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_create_api_key_creates_the_user_project_and_role(db):
    out, err = _run("create_api_key", "--user", "pipeline", "--project", "churn", "--role", "ml_engineer")
    raw_key = _last_line(out)
    assert re.fullmatch(r"tg_[0-9a-f]{8}_[A-Za-z0-9_-]{43}", raw_key)
    assert "pipeline" in err and "churn" in err

    user = User.objects.get(username="pipeline")
    project = Project.objects.get(slug="churn")
    assert set(RoleBinding.objects.active().filter(principal=user, project=project).values_list("role", flat=True)) >= {
        Role.ML_ENGINEER
    }
    key = ApiKey.objects.get(owner=user)
    assert key.project == project
    assert key.hashed == hashlib.sha256(raw_key.encode()).hexdigest()

    me = _bearer(raw_key).get("/api/v1/me/")
    assert me.status_code == 200
    assert me.json()["username"] == "pipeline"
    assert "ml_engineer" in me.json()["projects"]["churn"]
    assert me.json()["key"]["project"] == "churn"


def test_create_api_key_reuses_what_exists(project, ml_engineer):
    bindings = RoleBinding.objects.count()
    out, _ = _run("create_api_key", "--user", "mlengineer", "--project", "fraud", "--role", "ml_engineer")
    assert RoleBinding.objects.count() == bindings
    assert Project.objects.count() == 1
    me = _bearer(_last_line(out)).get("/api/v1/me/").json()
    assert me["projects"] == {"fraud": ["ml_engineer"]}


def test_create_api_key_grants_a_missing_role_in_an_existing_project(project, ml_engineer):
    out, err = _run("create_api_key", "--user", "mlengineer", "--project", "fraud", "--role", "auditor")
    assert "granted auditor" in err
    me = _bearer(_last_line(out)).get("/api/v1/me/").json()
    assert me["projects"] == {"fraud": ["auditor", "ml_engineer"]}


def test_create_api_key_makes_read_only_keys(project, ml_engineer):
    out, _ = _run(
        "create_api_key", "--user", "mlengineer", "--project", "fraud", "--role", "ml_engineer", "--read-only"
    )
    client = _bearer(_last_line(out))
    assert client.get("/api/v1/projects/fraud/").status_code == 200
    assert client.post("/api/v1/api-keys/", {"name": "x", "project": "fraud"}, format="json").status_code == 403


def test_create_api_key_refuses_an_unknown_role(db):
    with pytest.raises(CommandError):
        _run("create_api_key", "--user", "pipeline", "--project", "churn", "--role", "overlord")
    assert not User.objects.filter(username="pipeline").exists()
    assert not Project.objects.filter(slug="churn").exists()


def test_create_api_key_refuses_a_service_account_of_another_project(project, other_project):
    User.objects.create(username="ci@other", service_project=other_project)
    with pytest.raises(CommandError):
        _run("create_api_key", "--user", "ci@other", "--project", "fraud", "--role", "ml_engineer")
    assert not ApiKey.objects.filter(owner__username="ci@other").exists()


def _demo_keys(out: str) -> dict[str, str]:
    keys, username = {}, None
    for line in out.splitlines():
        persona = re.match(r"^  (\S+)\s{2,}", line)
        if persona:
            username = persona[1]
        key = re.search(r"API key:\s+(tg_\S+)", line)
        if key:
            keys[username] = key[1]
    return keys


def test_seed_demo_runs_twice_and_its_keys_work(db):
    first, _ = _run("seed_demo")
    second, _ = _run("seed_demo")
    first_keys, keys = _demo_keys(first), _demo_keys(second)
    assert set(keys) == {
        "staff",
        "mlengineer",
        "officer",
        "officer2",
        "auditor",
        "admin",
        "ci-pipeline@fraud-detection",
    }
    assert Project.objects.filter(slug="fraud-detection").count() == 1

    expected = {
        "mlengineer": ["ml_engineer"],
        "officer": ["governance_officer"],
        "auditor": ["auditor"],
        "admin": ["admin"],
        "ci-pipeline@fraud-detection": ["ml_engineer"],
    }
    for username, roles in expected.items():
        me = _bearer(keys[username]).get("/api/v1/me/")
        assert me.status_code == 200, username
        assert me.json()["username"] == username
        assert me.json()["projects"] == {"fraud-detection": roles}, username
    assert _bearer(keys["staff"]).get("/api/v1/me/").json()["is_staff"] is True

    assert _bearer(first_keys["mlengineer"]).get("/api/v1/me/").status_code == 401


def test_seed_demo_passwords_log_in_to_the_console(db, client):
    out, _ = _run("seed_demo")
    password = re.search(r"^  officer\s.*password: (\S+)$", out, re.MULTILINE)[1]
    response = client.post("/console/login/", {"username": "officer", "password": password})
    assert response.status_code == 302
    assert "fraud-detection" in client.get("/console/").content.decode()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_seed_demo_shows_an_active_and_a_suspended_deployment(celery_eager):
    """As after ``make run`` (checks in process): the tour's fraud-gbm stays active; the drifted demo batch went
    to fraud-mobile, whose production deployment the default policy suspended."""
    auditor = _bearer(_demo_keys(_run("seed_demo")[0])["auditor"])
    deployments = "/api/v1/projects/fraud-detection/deployments/"
    states = {(d["model"], d["environment"]): d["state"] for d in auditor.get(deployments).json()["results"]}
    assert states == {("fraud-gbm", "production"): "active", ("fraud-mobile", "production"): "suspended"}

    def verify(model):
        approved = auditor.get(f"{deployments}{model}/production/").json()["artifact_sha256"]
        answer = auditor.post(f"{deployments}{model}/production/verify/", {"artifact_sha256": approved}, format="json")
        assert answer.status_code == 200
        return answer.json()

    assert verify("fraud-gbm") == {"allowed": True, "reason": "version 1 is approved and active", "version": 1}
    refused = verify("fraud-mobile")
    assert (refused["allowed"], refused["version"]) == (False, 1)
    assert re.fullmatch(r"the deployment is suspended: automatically: check run \d+ \(data_drift\) failed: .+",
                        refused["reason"])  # fmt: skip
    alerts = auditor.get("/api/v1/projects/fraud-detection/alerts/").json()["results"]
    failed = [a for a in alerts if a["kind"] == "check_failed"]
    assert {a["model"] for a in failed} == {"fraud-mobile"}  # fraud-gbm's batches all pass
    assert [a["suspended"] for a in failed].count(True) == 1  # the first failed check suspended it
