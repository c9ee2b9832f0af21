"""Production settings (DESIGN §6): `check --deploy` is clean, and the HTTPS redirect spares the probes."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client, override_settings

ROOT = Path(__file__).resolve().parents[2]
SECRET = "a-production-secret-key-that-is-long-and-random-enough-4f9c2e7b1d8a6350"


def _production_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TOLLGATE_"))}
    env.update(DJANGO_SETTINGS_MODULE="controlplane.settings.production", DJANGO_ALLOWED_HOSTS="tollgate.example.org")
    env.update(extra)
    return env


def _run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def production():
    """The security settings as controlplane.settings.production computes them, read in a fresh process."""
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; print(json.dumps({n: "
        "getattr(s, n) for n in ['SECURE_SSL_REDIRECT', 'SECURE_REDIRECT_EXEMPT', 'SECURE_PROXY_SSL_HEADER', "
        "'SECURE_HSTS_SECONDS', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'DEBUG']}))"
    )
    result = _run(["-c", code], _production_env(DJANGO_SECRET_KEY=SECRET))
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    values["SECURE_PROXY_SSL_HEADER"] = tuple(values["SECURE_PROXY_SSL_HEADER"])
    return values


@pytest.fixture(scope="module")
def check_deploy() -> subprocess.CompletedProcess:
    return _run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], _production_env(DJANGO_SECRET_KEY=SECRET)
    )


def test_check_deploy_finds_no_security_issue_under_production_settings(check_deploy):
    output = check_deploy.stdout + check_deploy.stderr
    issues = re.findall(r"^\S+: \((\w+\.\w+)\)", output, re.MULTILINE)
    assert [issue for issue in issues if not issue.startswith("drf_spectacular.")] == [], output
    assert "Traceback" not in output


def test_check_deploy_is_clean_under_production_settings(check_deploy):
    assert check_deploy.returncode == 0, check_deploy.stdout + check_deploy.stderr
    assert "no issues" in check_deploy.stdout


def test_production_refuses_to_start_without_a_secret_key():
    result = _run(["manage.py", "check"], _production_env())
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_production_reads_the_secret_key_from_a_file(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    result = _run(
        ["-c", "import django; django.setup(); from django.conf import settings; print(settings.SECRET_KEY)"],
        _production_env(DJANGO_SECRET_KEY_FILE=str(secret_file)),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == SECRET


def test_production_is_secure_by_default(production):
    assert production["DEBUG"] is False
    assert production["SECURE_SSL_REDIRECT"] is True
    assert production["SECURE_HSTS_SECONDS"] > 0
    assert production["SESSION_COOKIE_SECURE"] is True
    assert production["CSRF_COOKIE_SECURE"] is True


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_the_probes_answer_over_plain_http(production, db, path):
    # The client is built inside the override: SecurityMiddleware reads its settings when it is loaded.
    with override_settings(**production, ALLOWED_HOSTS=["testserver"]):
        response = Client().get(path)
    assert response.status_code == 200, response.get("Location")


@pytest.mark.parametrize("path", ["/api/v1/me/", "/api/schema/", "/console/login/", "/"])
def test_everything_else_is_redirected_to_https(production, db, path):
    with override_settings(**production, ALLOWED_HOSTS=["testserver"]):
        response = Client().get(path)
    assert response.status_code == 301
    assert response["Location"] == f"https://testserver{path}"


def test_a_request_forwarded_as_https_is_not_redirected(production, db):
    with override_settings(**production, ALLOWED_HOSTS=["testserver"]):
        client = Client(HTTP_X_FORWARDED_PROTO="https")
        api = client.get("/api/v1/me/")
        health = client.get("/healthz")
    assert api.status_code == 401
    assert api["WWW-Authenticate"].startswith("Bearer")
    assert "max-age" in api["Strict-Transport-Security"]
    assert health.status_code == 200


def test_a_forged_forwarded_header_other_than_https_is_still_redirected(production, db):
    with override_settings(**production, ALLOWED_HOSTS=["testserver"]):
        response = Client(HTTP_X_FORWARDED_PROTO="http").get("/api/v1/me/")
    assert response.status_code == 301
