"""PostgreSQL goes away under the web process (``make web``, gunicorn) and comes back: while it is away every
request is a 503 ``database_unavailable`` with ``Retry-After`` in the one error shape, API and console alike;
once it is back the same process answers again, without a restart. A connection lost during COMMIT says
the change may or may not have been saved.

The database is a PostgreSQL cluster of this module's own (tests/servers.py), so it can be stopped."""

import json
import os
import re
import subprocess
import sys
from http.cookies import SimpleCookie
from urllib.parse import urlencode

import pytest

from tests.servers import PrivatePostgres, WebServer
from tests.worker import REPO

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PASSWORD = "correct horse battery staple"
SEED = f"""
from governance.accounts.access import Principal
from governance.accounts.models import User
from governance.accounts.services import api_key_issue
staff = User.objects.create_user("staff", password={PASSWORD!r}, is_staff=True)
User.objects.create_user("admin")
_, key = api_key_issue(actor=Principal(staff), owner=staff, project=None, name="t", read_only=False, expires_at=None)
print(key)
"""
# Deferred to COMMIT: the backend ends its own session, so the connection drops while COMMIT is under way.
DIE_AT_COMMIT = """
CREATE FUNCTION test_die_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER test_die_at_commit AFTER INSERT ON governance_project
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_die_at_commit();
"""


def _manage(database_url: str, *arguments: str) -> str:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "controlplane.settings.test", "DATABASE_URL": database_url}
    done = subprocess.run(
        [sys.executable, "manage.py", *arguments], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"manage.py {' '.join(arguments)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A private cluster with a migrated database, a staff key, and ``make web`` against it."""
    postgres = PrivatePostgres()
    web = None
    try:
        postgres.start()
        database_url = postgres.create_database("tollgate")
        _manage(database_url, "migrate", "--noinput")
        key = _manage(database_url, "shell", "-c", SEED).strip().splitlines()[-1]
        web = WebServer(database_url, tmp_path_factory.mktemp("web") / "web.log").start()
        yield postgres, web, {"Authorization": f"Bearer {key}"}
    finally:
        if web is not None:
            web.stop()
        postgres.remove()


@pytest.fixture
def running(stack):
    """The module's stack, its cluster running (a test that failed while it was stopped leaves it so)."""
    stack[0].start()
    return stack


def _console_session(web: WebServer) -> dict:
    """Log in through the console's form; returns the Cookie header of the session."""
    page = web.request("GET", "/console/login/")
    csrf = SimpleCookie(page.getheader("Set-Cookie"))["csrftoken"].value
    login = web.request(
        "POST",
        "/console/login/",
        urlencode({"username": "staff", "password": PASSWORD, "csrfmiddlewaretoken": csrf}),
        {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"csrftoken={csrf}"},
    )
    assert login.status == 302, login.body
    session = re.search(r"sessionid=([^;]+)", login.getheader("Set-Cookie"))[1]
    return {"Cookie": f"sessionid={session}"}


def _assert_unavailable(response) -> dict:
    assert response.status == 503, response.body
    assert response.getheader("Retry-After") == "5"
    assert response.getheader("Content-Type") == "application/json"
    error = json.loads(response.body)["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == "database_unavailable"
    return error


def test_a_stopped_database_is_a_503_and_the_same_process_answers_once_it_is_back(running):
    postgres, web, key = running
    console = _console_session(web)
    assert web.request("GET", "/api/v1/me/", headers=key).status == 200
    assert web.request("GET", "/console/", headers=console).status == 200

    postgres.stop()
    _assert_unavailable(web.request("GET", "/api/v1/me/", headers=key))  # a DRF view (the key lookup)
    _assert_unavailable(web.request("GET", "/console/", headers=console))  # a console page (the session)
    body = json.dumps({"slug": "payments", "name": "Payments", "admin": "admin"})
    write = web.request("POST", "/api/v1/projects/", body, {**key, "Content-Type": "application/json"})
    assert "Try again" in _assert_unavailable(write)["message"]

    postgres.start()
    me = web.request("GET", "/api/v1/me/", headers=key)
    assert me.status == 200
    assert json.loads(me.body)["username"] == "staff"
    assert web.request("GET", "/console/", headers=console).status == 200
    assert web.log().count("Booting worker with pid") == 1, web.log()  # no worker was restarted
    assert postgres.psql("tollgate", "SELECT count(*) FROM governance_project") == "0\n"


def test_a_connection_lost_during_commit_says_the_change_may_or_may_not_be_saved(running):
    postgres, web, key = running
    postgres.psql("tollgate", DIE_AT_COMMIT)
    headers = {**key, "Content-Type": "application/json"}
    body = json.dumps({"slug": "payments", "name": "Payments", "admin": "admin"})

    error = _assert_unavailable(web.request("POST", "/api/v1/projects/", body, headers))
    assert "may or may not have been saved" in error["message"]
    assert error["details"] == [{"code": "commit_outcome_unknown"}]
    # Here PostgreSQL had not committed yet when the session ended: nothing was saved, and a retry works.
    assert postgres.psql("tollgate", "SELECT count(*) FROM governance_project") == "0\n"

    postgres.psql("tollgate", "DROP TRIGGER test_die_at_commit ON governance_project")
    assert web.request("POST", "/api/v1/projects/", body, headers).status == 201
    assert postgres.psql("tollgate", "SELECT slug FROM governance_project") == "payments\n"
