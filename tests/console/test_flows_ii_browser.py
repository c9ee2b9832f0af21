"""The console II in a real headless Chromium (Debian's package, driven by Playwright) on the demo data of
``make run`` (issue 18): the auditor's job -- filter the audit log by a model version, export it, verify the
chain, walk a version's lineage upstream to its raw data, read the access log -- and an officer acknowledging a
failing check's alert and resuming and suspending the deployment it suspended, from its page. Screenshots of
every page go to ``var/screenshots/`` (not committed).

One seeded database and one live server for the module (the fixtures of ``test_flows_browser``); the tests run
in file order, the officer's last since it changes what the auditor reads.
"""

import csv
import io
import json
import re

import pytest
from django.conf import settings

from governance.management.commands.seed_demo import PROJECT
from governance.promotion.models import Deployment
from monitoring.models import Alert
from tests.console.test_flows_browser import _private_storage, demo, open_as, shot  # noqa: F401 - fixtures

P = f"/console/p/{PROJECT}/"
MOBILE = f"{P}deployments/fraud-mobile/production/"


@pytest.fixture(scope="module", autouse=True)
def _never_the_real_database(django_db_setup):
    """pytest-django creates the test database only when a selected test is marked django_db (it reads the
    session's items); the demo fixture seeds and at the end flushes whatever database the connection names.
    Refuse to run rather than seed, and empty, DATABASE_URL's database (e.g. under ``-m browser``)."""
    from django.db import connection

    name = connection.settings_dict["NAME"]
    if not str(name).startswith("test_"):
        pytest.fail(f"refusing to seed the demo into {name!r}: select this module's django_db test too", False)


@pytest.mark.django_db  # makes pytest-django create the test database first: the demo is seeded there, not in
def test_the_console_serves_its_series_charts_itself(client):  # DATABASE_URL's, and emptied when it is done
    response = client.get(f"/{settings.STATIC_URL.strip('/')}/console/series-charts.js")
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert b"Plotly.newPlot" in body


@pytest.mark.browser
def test_every_new_page_on_the_demo_data(demo, open_as):  # noqa: F811
    base = demo[0]
    officer = open_as("officer")
    pages = (
        (f"{P}deployments/", "deployments"), (f"{P}deployments/fraud-gbm/production/", "deployment-active"),
        (MOBILE, "deployment-suspended"), (f"{P}lineage/", "lineage-start"),
    )  # fmt: skip
    for path, name in pages:
        assert officer.goto(base + path).status == 200, path
        if "production" in path:
            officer.wait_for_selector("#monitoring .plot .main-svg")  # plotly, served by the app, drew the series
        shot(officer, name)
    assert officer.goto(base + f"{P}audit/").status == 403  # an officer does not read the audit trail
    auditor = open_as("auditor")
    for path, name in ((f"{P}audit/", "audit"), (f"{P}audit/access-log/", "access-log"),
                       (MOBILE, "deployment-auditor")):  # fmt: skip
        assert auditor.goto(base + path).status == 200, path
        shot(auditor, name)
    assert auditor.locator("main form[method=post]").count() == 0  # no form on a deployment for an auditor


@pytest.mark.browser
def test_the_auditors_job(demo, open_as):  # noqa: F811
    base = demo[0]
    page = open_as("auditor")
    page.get_by_role("link", name=PROJECT).first.click()
    page.locator("nav[aria-label=Main]").get_by_role("link", name="Audit").click()
    page.wait_for_url(f"{base}{P}audit/")

    # Filter the audit log by a model version.
    page.get_by_label("Model").fill("fraud-gbm")
    page.get_by_label("Version").fill("1")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r".*/audit/\?.*model=fraud-gbm.*version=1"))
    targets = page.locator("#audit-events tbody tr td:nth-child(5)").all_inner_texts()
    assert targets and all(t.startswith("model:fraud-gbm/1") for t in targets)
    assert "model_version.registered" in page.locator("#audit-events").inner_text()
    shot(page, "audit-filtered")

    # Export it, as CSV and as JSON Lines: the same events.
    with page.expect_download() as download:
        page.get_by_role("link", name="CSV", exact=True).click()
    exported = download.value
    assert re.fullmatch(r"fraud-detection-audit-events-\d{8}T\d{6}Z\.csv", exported.suggested_filename)
    rows = list(csv.DictReader(io.StringIO(open(exported.path(), encoding="utf-8").read())))
    assert len(rows) >= len(targets) and all(r["target_label"].startswith("model:fraud-gbm/1") for r in rows)
    with page.expect_download() as download:
        page.get_by_role("link", name="JSON Lines").click()
    lines = open(download.value.path(), encoding="utf-8").read().splitlines()
    assert [json.loads(line)["sequence"] for line in lines] == [int(r["sequence"]) for r in rows]

    # Verify the chain.
    page.get_by_role("button", name="Verify the chain now").click()
    page.wait_for_url(re.compile(r".*/audit/\?verification=\d+#verification$"))
    assert "The chain verifies." in page.get_by_role("status").inner_text()
    assert "The chain verifies." in page.locator("#verification-result").inner_text()
    shot(page, "audit-verified")

    # Walk fraud-gbm v1's lineage upstream, one step at a time, to its raw data.
    page.locator("nav[aria-label=Main]").get_by_role("link", name="Lineage").click()
    page.get_by_role("link", name="fraud-gbm v1", exact=True).click()
    page.get_by_label("Depth").fill("1")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r".*node=model%3Afraud-gbm%3A1.*depth=1"))
    upstream = page.locator(".explorer .col[data-level='-1']")
    assert "fraud_training.train" in upstream.inner_text() and "training-set" in upstream.inner_text()
    assert "transactions" not in page.locator(".explorer").inner_text()
    job = upstream.locator(".node.job")
    job.get_by_role("link", name="centre here").click()
    page.wait_for_url(re.compile(r".*node=job%3Aairflow.*direction=upstream&depth=1"))
    raw = page.locator(".explorer .col[data-level='-1'] .node.dataset").filter(has_text="transactions")
    assert "s3://fraud-raw" in raw.inner_text() and "personal data" in raw.inner_text()
    shot(page, "lineage-upstream")
    # The version's node links to its page.
    page.goto(f"{base}{P}lineage/?node=model:fraud-gbm:1&direction=upstream&depth=2")
    page.locator(".node.start").get_by_role("link", name="fraud-gbm v1").click()
    page.wait_for_url(f"{base}{P}models/fraud-gbm/versions/1/")

    # Read the access log: what the auditor just did is there, with the export.
    page.goto(f"{base}{P}audit/access-log/")
    page.get_by_label("Who").fill("auditor")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r".*access-log/\?principal=auditor"))
    log = page.locator("#access-log").inner_text()
    assert f"GET {P}audit/" in log and f"POST {P}audit/verify/" in log and f"GET {P}lineage/" in log
    shot(page, "access-log-auditor")
    assert page.locator("main form[method=post]").count() == 0


@pytest.mark.browser
def test_an_officer_resumes_and_suspends_a_deployment_after_a_failing_check(demo, open_as):  # noqa: F811
    base = demo[0]
    page = open_as("officer")
    page.get_by_role("link", name=PROJECT).first.click()
    page.locator("nav[aria-label=Main]").get_by_role("link", name="Deployments").click()
    page.get_by_role("link", name="fraud-mobile in production").click()
    page.wait_for_url(base + MOBILE)

    # The failing drift check suspended it; the enforcement point refuses it, and the alert says why.
    assert page.locator("#answer").inner_text().startswith("Refused — the deployment is suspended: automatically")
    alerts = page.locator("#alerts")
    drift = alerts.locator("tr").filter(has_text="data_drift check of fraud-mobile v1 in production ended failed")
    assert "suspended it" in drift.inner_text()
    page.wait_for_selector("#monitoring .plot .main-svg")
    panel = page.locator("article.monitor").filter(has_text="fraud-mobile-drift")
    panel.locator("details.run summary").click()
    assert panel.locator("tbody .status.failed").count() >= 1

    # Acknowledge the alert, with a comment.
    drift.get_by_placeholder("comment (optional)").fill("Replay of the promotion-day batch; checking with data eng.")
    drift.get_by_role("button", name="Acknowledge").click()
    page.wait_for_url(re.compile(r".*#alerts$"))
    assert re.search(r"Alert #\d+ acknowledged\.", page.get_by_role("status").inner_text())
    alert = Alert.objects.get(deployment__model__name="fraud-mobile", check_run__kind="data_drift")
    assert alert.acknowledged_by.username == "officer"

    # Run the drift check now: the latest batch was checked with this configuration already.
    page.get_by_role("button", name="Run fraud-mobile-drift now").click()
    page.wait_for_url(re.compile(r".*#monitor-\d+$"))
    assert "checked already with this configuration" in page.get_by_role("status").inner_text()

    # Resume it, with a reason; the enforcement point allows it again.
    page.get_by_label("Why resume it?").fill("The drifted batch was a replay; the live traffic is fine.")
    page.get_by_role("button", name="Resume fraud-mobile in production").click()
    page.wait_for_url(re.compile(r".*#state$"))
    assert "fraud-mobile in production is resumed." in page.get_by_role("status").inner_text()
    assert page.locator("#answer").inner_text() == "Allowed — version 1 is approved and active"
    shot(page, "deployment-resumed")

    # And suspend it again, with a reason: refused again, with that reason.
    page.get_by_label("Why suspend it?").fill("Data engineering found real drift on amounts.")
    page.get_by_role("button", name="Suspend fraud-mobile in production").click()
    page.wait_for_url(re.compile(r".*#state$"))
    assert page.locator("#answer").inner_text() == (
        "Refused — the deployment is suspended: Data engineering found real drift on amounts."
    )
    deployment = Deployment.objects.get(model__name="fraud-mobile", environment__name="production")
    assert (deployment.state, deployment.state_reason) == ("suspended", "Data engineering found real drift on amounts.")
    shot(page, "deployment-suspended-again")

    # Both are in the audit log, by the officer, with the reasons (the auditor reads them).
    auditor = open_as("auditor")
    auditor.goto(f"{base}{P}audit/?actor=officer&action=deployment.resumed")
    assert "deployment.resumed" in auditor.locator("#audit-events").inner_text()
    auditor.goto(f"{base}{P}audit/?actor=officer&action=deployment.suspended")
    events = auditor.locator("#audit-events")
    assert "model:fraud-mobile/deployment:production" in events.inner_text()
