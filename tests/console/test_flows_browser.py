"""The console's flows in a real headless Chromium (Debian's package, driven by Playwright), on the demo data of
``make run`` (issue 17): an engineer requests a promotion and sees why one is blocked; an auditor sees no form
and another project's pages answer 404; an officer works the queue through to an execution, a second officer
approving too. Screenshots of every page go to ``var/screenshots/`` (not committed).

One seeded database and one live server for the whole module (seeding runs the demo's checks and reports in
process, some seconds): the tests run in file order, the officer's flow last since it changes what the others
read. The module empties the database when it is done, as Django's transactional tests do.
"""

import os
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connections, transaction
from django.test import override_settings

from controlplane.celery import app as celery_app
from governance.accounts.access import Principal
from governance.accounts.models import User
from governance.accounts.services import project_create
from governance.management.commands.seed_demo import PROJECT, Command, _logs_to
from governance.promotion.models import Decision, Deployment, PromotionRequest
from tests.console.test_login_browser import ARGS, CHROMIUM

SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
V2 = f"/console/p/{PROJECT}/models/fraud-gbm/versions/2/"
V1 = f"/console/p/{PROJECT}/models/fraud-gbm/versions/1/"


@pytest.fixture(autouse=True)
def _private_storage():
    """The module's storage is the demo's (set by ``demo``), not one per test: the reports live there."""


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker, tmp_path_factory):
    """The demo seeded once (checks and reports in process), a live server, a Chromium; yields
    ``(base_url, browser, passwords)``."""
    from django.db import connection
    from playwright.sync_api import sync_playwright
    from pytest_django.live_server_helper import LiveServer

    # pytest-django creates the test database only when a selected test is marked django_db; the seed below and
    # the flush at the end must never reach DATABASE_URL's own database (e.g. under ``-m browser``).
    if not str(connection.settings_dict["NAME"]).startswith("test_"):
        pytest.fail(f"refusing to seed the demo into {connection.settings_dict['NAME']!r}", False)
    storage = tmp_path_factory.mktemp("demo-storage")
    default_storage = {**settings.STORAGES["default"], "OPTIONS": {"location": str(storage)}}
    overrides = override_settings(
        # The static files storage named outright: a test that runs the production settings module in process
        # (tests/governance/test_webhooks.py, runpy) mutates the STORAGES dict the test settings share with it.
        STORAGES={
            "default": default_storage,
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        },  # fmt: skip
        CELERY_TASK_ALWAYS_EAGER=True,
        TOLLGATE_THROTTLE_USER="1000000/min",
        TOLLGATE_THROTTLE_ANON="1000000/min",
    )
    overrides.enable()
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    with django_db_blocker.unblock():
        try:
            with _logs_to(storage / "seed_demo.log"), transaction.atomic():
                credentials = Command()._seed()
            staff = User.objects.get(username="staff")
            project_create(actor=Principal(staff), slug="payments", name="Payments", admin=User.objects.get(
                username="officer2"))  # fmt: skip
            passwords = {username: password for username, _, password, _ in credentials if password}
            server = LiveServer("localhost")
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's loop runs in this thread
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                try:
                    yield server.url, browser, passwords
                finally:
                    browser.close()
                    server.stop()
                    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        finally:
            celery_app.conf.task_always_eager = eager
            overrides.disable()
            connections.close_all()
            call_command("flush", interactive=False, verbosity=0)


@pytest.fixture
def open_as(demo):
    """``open_as(username)``: a fresh browser context logged in as that persona, on its home page."""
    base, browser, passwords = demo
    contexts = []

    def log_in(username):
        context = browser.new_context(viewport={"width": 1366, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.goto(f"{base}/console/")
        page.fill("#id_username", username)
        page.fill("#id_password", passwords[username])
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/console/")
        return page

    yield log_in
    for context in contexts:
        context.close()


def shot(page, name):
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def env_card(page, environment):
    return page.locator(f"#env-{environment}")


@pytest.mark.django_db  # also makes pytest-django create the test database when this module runs alone
def test_the_console_serves_htmx_itself_with_its_version_and_licence(client):
    response = client.get(f"/{settings.STATIC_URL.strip('/')}/console/vendor/htmx-2.0.4.min.js")
    assert response.status_code == 200
    first = next(iter(response.streaming_content if response.streaming else [response.content])).decode()[:200]
    assert first.startswith("/* htmx 2.0.4 -- licence: 0BSD")
    plotly = client.get(f"/{settings.STATIC_URL.strip('/')}/console/vendor/plotly.min.js")
    assert plotly.status_code == 200  # from the plotly package, not from the repository
    assert plotly["Content-Type"].startswith(("text/javascript", "application/javascript"))


@pytest.mark.browser
def test_every_page_on_the_demo_data(demo, open_as):
    base = demo[0]
    page = open_as("officer")
    assert page.locator("table tbody tr").first.inner_text().startswith(PROJECT)
    shot(page, "home-officer")
    for path, name in (("/console/queue/", "queue"), (f"/console/p/{PROJECT}/models/", "models"),
                       (f"/console/p/{PROJECT}/models/fraud-gbm/", "model"), (V1, "version-deployed"),
                       (V2, "version-requested"), (f"/console/p/{PROJECT}/policy/", "policy")):  # fmt: skip
        response = page.goto(base + path)
        assert response.status == 200, path
        shot(page, name)

    # The deployed version's check runs: per-column scores, and the Evidently report in its own sandboxed page.
    page.goto(base + V1 + "#checks")
    checks = page.locator("#checks")
    page.wait_for_selector("#checks .plot .main-svg")  # plotly, served by the app, drew the drift series
    assert checks.locator(".plot .scatterlayer .trace").count() >= 2
    assert checks.locator("details.run").count() >= 2
    assert checks.locator("details.run[open] table tbody tr").count() >= 1
    assert page.locator("iframe").count() == 0  # never inline
    link = checks.get_by_role("link", name="Open the Evidently report").first
    assert link.get_attribute("target") == "_blank"
    with page.context.expect_page() as opened:
        link.click()
    report = opened.value
    report.wait_for_load_state()
    assert re.search(r"/api/v1/projects/fraud-detection/check-runs/\d+/report\.html$", report.url)
    csp = page.request.get(report.url).headers["content-security-policy"]
    assert csp.startswith("sandbox allow-scripts") and "allow-same-origin" not in csp
    shot(report, "evidently-report")


@pytest.mark.browser
def test_an_engineer_requests_a_promotion_and_sees_why_another_is_blocked(demo, open_as):
    base = demo[0]
    page = open_as("mlengineer")
    page.get_by_role("link", name=PROJECT).click()
    page.get_by_role("link", name="fraud-gbm").click()
    page.get_by_role("link", name="v2", exact=True).click()
    assert page.url == base + V2

    production = env_card(page, "production")
    assert "by mlengineer" in production.inner_text()
    failed = production.locator("tr.gate-failed")
    assert "the risk tier is not confirmed by a governance officer" in failed.filter(has_text="model_card").inner_text()
    approve = production.get_by_role("button", name="Approve")
    assert approve.is_disabled()
    assert production.locator("p.why").first.inner_text() == (
        "Approve is disabled: Only a project's governance_officer may approve promotions."
    )
    assert production.get_by_role("button", name="Execute").is_disabled()
    assert "Execute is disabled until every gate passes. Not passing: approvals" in production.inner_text()

    staging = env_card(page, "staging")
    staging.get_by_label("Why promote to staging?").fill("try it on staging first")
    staging.get_by_role("button", name="Request promotion to staging").click()
    page.wait_for_url(re.compile(r".*/versions/2/#env-staging$"))
    assert "Promotion to staging requested." in page.get_by_role("status").inner_text()
    assert "by mlengineer" in env_card(page, "staging").inner_text()
    request = PromotionRequest.objects.get(environment__name="staging", model_version__version=2, state="open")
    assert request.comment == "try it on staging first"
    shot(page, "version-engineer")


@pytest.mark.browser
def test_an_auditor_sees_no_form_and_another_projects_pages_answer_404(demo, open_as):
    base = demo[0]
    page = open_as("auditor")
    for path in ("/console/", f"/console/p/{PROJECT}/models/", f"/console/p/{PROJECT}/models/fraud-gbm/", V1, V2,
                 f"/console/p/{PROJECT}/policy/"):  # fmt: skip
        assert page.goto(base + path).status == 200
        forms = page.locator("main form[method=post]")
        assert forms.count() == 0, f"{path} shows the auditor {forms.count()} form(s)"
    shot(page, "version-auditor")
    assert page.locator("nav").get_by_role("link", name="Approval queue").count() == 0

    theirs = page.goto(f"{base}/console/p/payments/models/")
    assert theirs.status == 404
    text = page.locator("main").inner_text()
    missing = page.goto(f"{base}/console/p/no-such-project/models/")
    assert missing.status == 404
    assert page.locator("main").inner_text() == text.replace("payments", "no-such-project")
    shot(page, "not-found")


@pytest.mark.browser
def test_an_officer_reviews_confirms_approves_and_executes(demo, open_as):
    base = demo[0]
    page = open_as("officer")
    page.get_by_role("link", name="Approval queue").click()
    # The filters redraw the table in place (htmx) and keep the address shareable.
    page.get_by_label("Risk tier").select_option("limited")
    page.wait_for_url(re.compile(r".*/console/queue/\?.*tier=limited"))
    assert page.locator("#queue-table").inner_text() == "No open request matches these filters."
    page.get_by_label("Risk tier").select_option("")
    page.wait_for_selector("#queue-table tbody tr")
    row = page.locator("#queue-table tbody tr").filter(has_text="fraud-gbm v2").filter(has_text="production")
    assert "unconfirmed — counts as high" in row.inner_text()
    assert "not passing: approvals, model_card, check" in row.inner_text()
    row.get_by_role("link", name="fraud-gbm v2").click()
    page.wait_for_url(re.compile(r".*/versions/2/#env-production$"))

    production = env_card(page, "production")
    gate = production.locator("tr.gate-failed").filter(has_text="model_card")
    assert "the risk tier is not confirmed by a governance officer" in gate.inner_text()

    # Confirm the proposed tier, with the comment it requires.
    confirm = page.locator("form.confirm")
    assert confirm.get_by_label("Risk tier").input_value() == "limited"
    confirm.get_by_label("Comment (required)").fill("The card's rationale holds: a person decides on every hold.")
    confirm.get_by_role("button", name="Confirm risk tier").click()
    page.wait_for_url(re.compile(r".*#card$"))
    assert "Risk tier confirmed as limited" in page.get_by_role("status").inner_text()

    # Approve from the keyboard: the comment box, then Tab to the Approve button.
    production = env_card(page, "production")
    production.get_by_label("Comment for your decision").fill("Evidence complete; tier confirmed.")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Approve"
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*#env-production$"))
    assert "You approved request" in page.get_by_role("status").inner_text()
    production = env_card(page, "production")
    assert production.get_by_role("button", name="Approve").is_disabled()
    assert "You already decided on this request." in production.inner_text()

    # The second officer approves too, in their own session; the first sees it.
    second = open_as("officer2")
    second.goto(base + V2 + "#env-production")
    env_card(second, "production").get_by_label("Comment for your decision").fill("Agreed.")
    env_card(second, "production").get_by_role("button", name="Approve").click()
    second.wait_for_url(re.compile(r".*#env-production$"))
    page.reload()
    decisions = page.locator("#decisions").inner_text()
    assert "approve by officer " in decisions and "approve by officer2 " in decisions
    shot(page, "version-approved")

    execute = env_card(page, "production").get_by_role("button", name="Execute")
    assert execute.is_enabled()
    execute.click()
    page.wait_for_url(re.compile(r".*#env-production$"))
    assert "Executed: fraud-gbm version 2 now runs in production." in page.get_by_role("status").inner_text()
    deployment = Deployment.objects.get(model__name="fraud-gbm", environment__name="production")
    assert deployment.model_version.version == 2
    assert Decision.objects.filter(request__model_version=deployment.model_version, voided_at__isnull=True).count() == 2
    shot(page, "version-executed")
