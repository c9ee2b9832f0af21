"""Console login (DESIGN §1, §8): session login; the home page lists the user's projects and roles."""

from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from tests.factories import UserFactory

PASSWORD = "correct horse battery staple"  # tests.factories.UserFactory


@pytest.fixture
def browser():
    """A client that enforces CSRF like a browser session would."""
    return Client(enforce_csrf_checks=True)


def _log_in(browser, username, password, next_url=None):
    page = browser.get("/console/login/" + (f"?next={next_url}" if next_url else ""))
    assert page.status_code == 200
    form = {"username": username, "password": password, "csrfmiddlewaretoken": browser.cookies["csrftoken"].value}
    if next_url:
        form["next"] = next_url
    return browser.post("/console/login/", form)


@pytest.mark.parametrize("path", ["/console/", "/"])
def test_an_anonymous_visitor_is_sent_to_the_login_page(browser, db, path):
    response = browser.get(path)
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert location.path == "/console/login/"
    assert parse_qs(location.query)["next"] == [path]


def test_the_login_page_renders_a_form(browser, db):
    response = browser.get("/console/login/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<form method="post"' in html
    assert 'name="username"' in html and 'name="password"' in html
    assert "csrfmiddlewaretoken" in html


def test_logging_in_shows_the_users_projects_and_roles(browser, project, other_project, ml_engineer, auditor):
    response = _log_in(browser, "mlengineer", PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == "/console/"
    assert browser.session["_auth_user_id"] == str(ml_engineer.pk)

    home = browser.get("/console/")
    assert home.status_code == 200
    html = home.content.decode()
    assert "<code>fraud</code>" in html
    assert "Fraud detection" in html
    assert "ml_engineer" in html
    assert "<code>other</code>" not in html
    assert "mlengineer" in html


def test_login_returns_to_the_page_asked_for(browser, project, ml_engineer):
    response = _log_in(browser, "mlengineer", PASSWORD, next_url="/console/")
    assert response.status_code == 302
    assert response["Location"] == "/console/"


def test_login_never_redirects_to_another_site(browser, project, ml_engineer):
    response = _log_in(browser, "mlengineer", PASSWORD, next_url="https://evil.example.com/")
    assert response.status_code == 302
    assert "evil.example.com" not in response["Location"]


def test_the_console_lists_only_projects_where_the_user_holds_a_role(browser, outsider, project):
    _log_in(browser, "outsider", PASSWORD)
    html = browser.get("/console/").content.decode()
    assert "<code>fraud</code>" not in html
    assert "<code>other</code>" in html


def test_a_user_without_roles_is_told_so(browser, project):
    UserFactory(username="newcomer")
    _log_in(browser, "newcomer", PASSWORD)
    html = browser.get("/console/").content.decode()
    assert "You hold no role in any project yet" in html
    assert "<code>fraud</code>" not in html


def test_a_wrong_password_shows_the_error(browser, project, ml_engineer):
    response = _log_in(browser, "mlengineer", "wrong password")
    assert response.status_code == 200
    assert "did not match" in response.content.decode()
    assert "_auth_user_id" not in browser.session
    assert browser.get("/console/").status_code == 302


def test_an_unknown_user_gets_the_same_error(browser, db):
    response = _log_in(browser, "nobody", "whatever")
    assert response.status_code == 200
    assert "did not match" in response.content.decode()


def test_a_login_without_a_csrf_token_is_refused(browser, project, ml_engineer):
    browser.get("/console/login/")
    response = browser.post("/console/login/", {"username": "mlengineer", "password": PASSWORD})
    assert response.status_code == 403
    assert "_auth_user_id" not in browser.session


def test_logging_out_ends_the_session(browser, project, ml_engineer):
    _log_in(browser, "mlengineer", PASSWORD)
    assert browser.get("/console/").status_code == 200
    token = browser.cookies["csrftoken"].value
    response = browser.post("/console/logout/", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert urlsplit(response["Location"]).path == "/console/login/"
    assert browser.get("/console/").status_code == 302


def test_a_logged_in_user_is_not_shown_the_login_form_again(browser, project, ml_engineer):
    _log_in(browser, "mlengineer", PASSWORD)
    response = browser.get("/console/login/")
    assert response.status_code == 302
    assert response["Location"] == "/console/"
