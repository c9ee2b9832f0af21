"""The console in a real headless Chromium (Debian's package, driven by Playwright)."""

import os
import shutil

import pytest

from governance.accounts.access import Principal
from governance.accounts.services import project_create
from tests.factories import UserFactory

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test are still serial.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_an_officer_logs_in_and_sees_their_projects(live_server, page):
    staff = UserFactory(username="staff", is_staff=True)
    officer = UserFactory(username="officer")
    project_create(actor=Principal(staff), slug="fraud", name="Fraud detection", admin=officer)

    page.goto(f"{live_server.url}/console/")
    assert page.url.startswith(f"{live_server.url}/console/login/")
    page.fill("#id_username", "officer")
    page.fill("#id_password", "wrong password")
    page.click("button[type=submit]")
    assert page.get_by_role("alert").inner_text().startswith("Your username and password did not match")

    page.fill("#id_username", "officer")
    page.fill("#id_password", "correct horse battery staple")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/console/")
    assert page.locator("table tbody tr td").first.inner_text() == "fraud"
    assert "admin" in page.locator("table tbody tr").first.inner_text()

    page.click("text=Log out")
    page.wait_for_url(f"{live_server.url}/console/login/")
