"""The console's deployment, lineage and audit pages through Django's test client (issue 18): what each persona
sees, that each form goes through the service its API twin calls (audited, in the access log), and that another
project's pages are the 404 of a missing one."""

import csv
import io
import json
import re

import pytest
from django.utils import timezone

from governance.accounts.access import Principal
from governance.audit.models import AccessLogEntry, AuditEvent, AuditVerification
from governance.promotion.models import Deployment, DeploymentHistory
from monitoring.models import Alert
from monitoring.services.monitors import monitor_create
from tests.console.conftest import post
from tests.console.test_pages import html, post_forms

DEPLOYMENT = "/console/p/fraud/deployments/fraud-gbm/production/"
LINEAGE = "/console/p/fraud/lineage/"
AUDIT = "/console/p/fraud/audit/"
ACCESS = "/console/p/fraud/audit/access-log/"


@pytest.fixture
def deployment(project, officer, ml_engineer, open_request):
    """fraud-gbm v1 runs in production (executed by the engineer, approved by the officer), watched by a
    data_drift monitor with a 48-hour freshness rule and no batch yet."""
    version = open_request.model_version
    deployed = Deployment.objects.create(
        project=project, model=version.model, environment=open_request.environment, model_version=version
    )
    DeploymentHistory.objects.create(
        deployment=deployed, model_version=version, request=open_request, approvers=["officer", "officer2"],
        policy_version=1, executed_by=ml_engineer, from_at=timezone.now(),
    )  # fmt: skip
    monitor_create(
        actor=Principal(ml_engineer), project=project, name="fraud-drift-live", kind="data_drift",
        config={"schedule": {"every_minutes": 60}, "freshness_hours": 48},
        deployment=deployed,
    )  # fmt: skip
    return deployed


def text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html(response)))


# Deployments --------------------------------------------------------------------------------------------------


def test_a_project_without_deployments_says_how_one_comes(login, auditor, project):
    page = text(login(auditor).get("/console/p/fraud/deployments/"))
    assert "Nothing is deployed in this project yet" in page
    assert "No promotion has been executed in this project yet." in page


def test_the_deployments_list_shows_what_runs_where(login, auditor, deployment):
    page = html(login(auditor).get("/console/p/fraud/deployments/"))
    assert f'<a href="{DEPLOYMENT}">fraud-gbm in production</a>' in page
    assert '<span class="tag ok">active</span>' in page
    assert "officer, officer2" in page  # who approved the deployment in the history


def test_a_deployment_page_shows_the_enforcement_answer_history_and_freshness(login, auditor, deployment):
    response = login(auditor).get(DEPLOYMENT)
    assert response.status_code == 200
    page = text(response)
    assert "Allowed — version 1 is approved and active" in page
    assert "POST /api/v1/projects/fraud/deployments/fraud-gbm/production/verify/" in page
    assert "officer, officer2" in page and "mlengineer" in page
    assert "No batch has arrived since the monitor was created" in page
    assert "the freshness alert fires after 48 hours" in page
    assert "No alert has been raised for this deployment." in page
    assert "No check of fraud-drift-live has a result yet" in page


def test_a_silent_monitor_says_how_long_it_has_been(login, auditor, deployment):
    deployment.monitors.update(created_at=timezone.now() - timezone.timedelta(days=3))
    assert "No batch has arrived since the monitor was created 3 days ago" in text(login(auditor).get(DEPLOYMENT))


def test_an_officer_suspends_and_resumes_with_a_reason(login, officer, deployment):
    client = login(officer)
    page = html(client.get(DEPLOYMENT))
    assert f'action="{DEPLOYMENT}suspend/"' in page
    missing = post(client, f"{DEPLOYMENT}suspend/", {"reason": ""})
    assert missing["Location"] == f"{DEPLOYMENT}#state"
    assert "reason: This field is required." in html(client.get(DEPLOYMENT))
    deployment.refresh_from_db()
    assert deployment.state == "active"

    post(client, f"{DEPLOYMENT}suspend/", {"reason": "drift on amounts, holding it"})
    deployment.refresh_from_db()
    assert (deployment.state, deployment.state_reason) == ("suspended", "drift on amounts, holding it")
    page = text(client.get(DEPLOYMENT))
    assert "Refused — the deployment is suspended: drift on amounts, holding it" in page
    assert "fraud-gbm in production is suspended." in page
    event = AuditEvent.objects.get(action="deployment.suspended")
    assert (event.actor, event.diff["reason"]) == (officer, "drift on amounts, holding it")
    entry = AccessLogEntry.objects.filter(method="POST", path=f"{DEPLOYMENT}suspend/", status=302).last()
    assert entry.principal == officer and entry.project_slug == "fraud"

    assert f'action="{DEPLOYMENT}resume/"' in html(client.get(DEPLOYMENT))
    post(client, f"{DEPLOYMENT}resume/", {"reason": "a replay of a promotion day, not drift"})
    deployment.refresh_from_db()
    assert deployment.state == "active"
    assert AuditEvent.objects.get(action="deployment.resumed").diff["reason"].startswith("a replay")
    assert "Allowed — version 1 is approved and active" in text(client.get(DEPLOYMENT))


def test_an_engineer_sees_suspend_disabled_with_the_services_reason(login, ml_engineer, deployment):
    client = login(ml_engineer)
    page = html(client.get(DEPLOYMENT))
    assert 'disabled aria-describedby="why-state"' in page
    assert "Only a project&#x27;s governance_officer may suspend deployments." in page
    refused = post(client, f"{DEPLOYMENT}suspend/", {"reason": "mine"})
    assert refused.status_code == 403
    assert "Only a project&#x27;s governance_officer may suspend deployments." in html(refused)
    deployment.refresh_from_db()
    assert deployment.state == "active"
    assert AuditEvent.objects.filter(action="access.denied", actor=ml_engineer).count() == 1


def test_an_alert_is_acknowledged_through_the_service(login, officer, deployment):
    alert = Alert.objects.create(
        project=deployment.project, deployment=deployment, model_version=deployment.model_version,
        kind="check_failed", message="data_drift check of fraud-gbm v1 in production ended failed",
    )  # fmt: skip
    client = login(officer)
    page = html(client.get(DEPLOYMENT))
    assert "data_drift check of fraud-gbm v1 in production ended failed" in page
    response = post(client, f"{DEPLOYMENT}alerts/{alert.pk}/acknowledge/", {"comment": "looking into it"})
    assert response["Location"] == f"{DEPLOYMENT}#alerts"
    alert.refresh_from_db()
    assert (alert.acknowledged_by, alert.acknowledgement) == (officer, "looking into it")
    assert AuditEvent.objects.filter(action="alert.acknowledged", actor=officer).count() == 1
    again = post(client, f"{DEPLOYMENT}alerts/{alert.pk}/acknowledge/")
    assert again.status_code == 302
    assert "This alert is acknowledged already." in html(client.get(DEPLOYMENT))


def test_run_now_without_a_batch_says_so(login, ml_engineer, deployment):
    client = login(ml_engineer)
    monitor = deployment.monitors.get()
    response = post(client, f"{DEPLOYMENT}run-check/", {"monitor": monitor.pk})
    assert response["Location"] == f"{DEPLOYMENT}#monitor-{monitor.pk}"
    assert "No batch has arrived for this monitor yet." in html(client.get(DEPLOYMENT))


def test_an_auditor_sees_no_form_on_deployments_and_may_not_suspend(login, auditor, deployment):
    client = login(auditor)
    for path in ("/console/p/fraud/deployments/", DEPLOYMENT):
        assert post_forms(html(client.get(path))) == [], path
    refused = post(client, f"{DEPLOYMENT}suspend/", {"reason": "no"})
    assert refused.status_code == 403
    deployment.refresh_from_db()
    assert deployment.state == "active"


def test_a_model_without_a_deployment_there_is_a_404_page(login, auditor, deployment):
    response = login(auditor).get("/console/p/fraud/deployments/fraud-gbm/staging/")
    assert response.status_code == 404
    assert "Nothing of fraud-gbm is deployed in staging." in html(response)


# Lineage ------------------------------------------------------------------------------------------------------


def test_lineage_without_a_node_offers_starting_points(login, auditor, version):
    page = html(login(auditor).get(LINEAGE))
    assert "Choose where to start" in page
    assert 'href="?node=model%3Afraud-gbm%3A1&amp;direction=upstream' in page


def test_lineage_upstream_of_a_version_reaches_its_data_and_links_nodes(login, auditor, version):
    response = login(auditor).get(LINEAGE, {"node": "model:fraud-gbm:1", "direction": "upstream", "depth": "3"})
    assert response.status_code == 200
    page = html(response)
    assert "<h4>1 upstream</h4>" in page and "<strong>train</strong>" in page
    assert '<a href="/console/p/fraud/models/fraud-gbm/versions/1/"><strong>fraud-gbm v1</strong></a>' in page
    assert 'href="?node=dataset%3As3%3A//fraud%3Atrain&amp;direction=upstream&amp;depth=3"' in page
    assert "Truncated" not in page


def test_lineage_says_when_the_graph_is_truncated(login, auditor, version, monkeypatch):
    from governance.provenance import graph

    monkeypatch.setattr(graph, "GRAPH_NODE_CAP", 1)
    original = graph.lineage_walk
    monkeypatch.setattr(graph, "lineage_walk", lambda start, **kw: original(start, **{**kw, "cap": 1}))
    page = text(login(auditor).get(LINEAGE, {"node": "model:fraud-gbm:1", "direction": "both"}))
    assert "Truncated: the graph has more nodes than the 1 shown" in page


def test_lineage_depth_is_bounded_and_an_unknown_node_is_a_404_with_the_form(login, auditor, version):
    client = login(auditor)
    page = html(client.get(LINEAGE, {"node": "model:fraud-gbm:1", "depth": "999"}))
    assert 'name="depth" type="number" min="1" max="50" value="50"' in page
    missing = client.get(LINEAGE, {"node": "model:nothing:1"})
    assert missing.status_code == 404
    assert "No lineage node &#x27;model:nothing:1&#x27; in your projects." in html(missing)
    assert 'id="lineage-node"' in html(missing)


def test_lineage_from_a_dataset_version_draws_its_dataset(login, auditor, version):
    training = version.dataset_links.get().dataset_version
    page = text(login(auditor).get(LINEAGE, {"node": f"dataset-version:{training.pk}", "direction": "downstream"}))
    assert "Dataset version 1 of train: the graph is drawn per dataset." in page
    assert "fraud-gbm v1" in page


# Audit --------------------------------------------------------------------------------------------------------


def test_the_audit_log_filters_by_model_version_with_the_apis_filterset(login, api, auditor, version):
    client = login(auditor)
    page = html(client.get(AUDIT, {"model": "fraud-gbm", "version": "1"})).split('id="audit-events"', 1)[1]
    page = page.split("</table>", 1)[0]
    shown = re.findall(r'<td class="num">(\d+)</td>', page)
    listed = api(auditor).get("/api/v1/projects/fraud/audit-events/", {"model": "fraud-gbm", "version": 1}).json()
    assert sorted(map(int, shown)) == sorted(e["sequence"] for e in listed["results"])
    assert "model_version.registered" in page and "project.created" not in page


def test_a_bad_filter_says_why(login, auditor, version):
    page = html(login(auditor).get(AUDIT, {"version": "1"}))
    assert "Give model too: ?model=&lt;name&gt;&amp;version=&lt;version&gt;." in page


def test_the_audit_export_is_the_apis_csv_and_jsonl(login, auditor, version):
    client = login(auditor)
    page = html(client.get(AUDIT, {"model": "fraud-gbm", "version": "1"}))
    assert 'href="?model=fraud-gbm&amp;version=1&amp;format=csv"' in page
    exported = client.get(AUDIT, {"model": "fraud-gbm", "version": "1", "format": "csv"})
    assert exported["Content-Type"] == "text/csv; charset=utf-8"
    assert re.match(r'attachment; filename="fraud-audit-events-\d{8}T\d{6}Z\.csv"', exported["Content-Disposition"])
    rows = list(csv.DictReader(io.StringIO(b"".join(exported.streaming_content).decode())))
    assert rows and all(r["target_label"].startswith("model:fraud-gbm/1") for r in rows)
    assert {"prev_hash", "hash", "payload"} <= set(rows[0])
    lines = client.get(AUDIT, {"action": "model_card.edited", "format": "jsonl"})
    records = [json.loads(line) for line in b"".join(lines.streaming_content).decode().splitlines()]
    assert records and {r["action"] for r in records} == {"model_card.edited"}


def test_an_auditor_verifies_the_chain(login, auditor, version):
    client = login(auditor)
    assert "The chain has not been verified from the console yet." in html(client.get(AUDIT))
    response = post(client, f"{AUDIT}verify/")
    assert response.status_code == 302 and "verification=" in response["Location"]
    verification = AuditVerification.objects.get()
    assert verification.requested_by == auditor and verification.result["ok"] is True
    page = text(client.get(response["Location"]))
    assert "The chain verifies." in page
    assert f"{verification.result['events_checked']} events checked" in page
    assert "No checkpoint has been written for this chain yet" in page


def test_the_latest_checkpoint_is_shown(login, auditor, version):
    from governance.audit.chain import checkpoint_write
    from governance.audit.models import chain_of

    written = checkpoint_write(chain_of(version.model.project_id))
    page = text(login(auditor).get(AUDIT))
    assert f"Latest checkpoint: event #{written['sequence']}" in page


def test_the_access_log_filters_and_exports(login, auditor, officer, version):
    login(officer).get("/console/p/fraud/models/fraud-gbm/versions/1/")
    client = login(auditor)
    page = html(client.get(ACCESS, {"principal": "officer", "model": "fraud-gbm", "version": "1"}))
    assert "/console/p/fraud/models/fraud-gbm/versions/1/" in page
    assert "GET /console/p/fraud/audit/" not in page
    exported = client.get(ACCESS, {"principal": "officer", "format": "jsonl"})
    records = [json.loads(line) for line in b"".join(exported.streaming_content).decode().splitlines()]
    assert records and {r["principal"] for r in records} == {"officer"}


def test_role_binding_history_lists_grants_and_revocations(login, auditor, admin_user, project, ml_engineer):
    from governance.accounts.models import RoleBinding
    from governance.accounts.services import role_revoke

    role_revoke(actor=Principal(admin_user), binding=RoleBinding.objects.get(principal=ml_engineer))
    section = html(login(auditor).get(AUDIT)).split('id="role-bindings"', 1)[1]
    row = re.search(r"<tr[^>]*><td>mlengineer</td>.*?</tr>", section, re.S)[0]
    assert "ml_engineer" in row and "by admin" in row and "—" not in row.split("</td>")[-2]


@pytest.mark.parametrize("persona", ["ml_engineer", "officer"])
def test_other_members_get_the_403_page_with_the_reason(login, request, persona, version):
    client = login(request.getfixturevalue(persona))
    for path in (AUDIT, ACCESS):
        response = client.get(path)
        assert response.status_code == 403
        assert "Only a project&#x27;s auditor or admin may read the" in html(response)
    assert post(client, f"{AUDIT}verify/").status_code == 403
    assert 'href="/console/p/fraud/audit/"' not in html(client.get("/console/p/fraud/deployments/"))


def test_the_auditor_finds_the_audit_pages_and_their_only_form_is_verify(login, auditor, deployment):
    client = login(auditor)
    assert 'href="/console/p/fraud/audit/"' in html(client.get("/console/p/fraud/deployments/"))
    assert post_forms(html(client.get(AUDIT))) == [f"{AUDIT}verify/"]
    for path in (ACCESS, LINEAGE, f"{LINEAGE}?node=model:fraud-gbm:1"):
        assert post_forms(html(client.get(path))) == [], path


@pytest.mark.parametrize(
    "path",
    ["/console/p/fraud/deployments/", DEPLOYMENT, LINEAGE, f"{LINEAGE}?node=model:fraud-gbm:1", AUDIT, ACCESS,
     f"{AUDIT}?format=csv"],
)  # fmt: skip
def test_another_projects_pages_are_the_404_of_a_missing_one(login, outsider, deployment, path):
    client = login(outsider)
    theirs = client.get(path)
    missing = client.get(path.replace("/p/fraud/", "/p/nowhere/"))
    assert theirs.status_code == missing.status_code == 404
    token = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"')
    assert token.sub("", html(theirs)).replace("fraud", "X") == token.sub("", html(missing)).replace("nowhere", "X")


def test_an_outsiders_post_is_a_404(login, outsider, deployment):
    client = login(outsider)
    assert post(client, f"{DEPLOYMENT}suspend/", {"reason": "x"}).status_code == 404
    assert post(client, f"{AUDIT}verify/").status_code == 404
    deployment.refresh_from_db()
    assert deployment.state == "active"


def test_the_audit_log_filters_by_time_range(login, auditor, version):
    client = login(auditor)
    later = text(client.get(AUDIT, {"since": "2099-01-01T00:00"}))
    assert "No event matches these filters." in later
    page = html(
        client.get(AUDIT, {"since": "2000-01-01T00:00", "until": "2099-01-01T00:00", "action": "project.created"})
    )
    table = page.split('id="audit-events"', 1)[1].split("</table>", 1)[0]
    assert "project.created" in table and "model_version.registered" not in table
    assert 'name="since" value="2000-01-01T00:00" type="datetime-local"' in page


def test_the_logs_page_newest_first_with_a_link_to_older_rows(login, auditor, version, monkeypatch):
    from governance.console import audit

    monkeypatch.setattr(audit, "PAGE_ROWS", 2)
    client = login(auditor)
    page = html(client.get(AUDIT, {"model": "fraud-gbm"}))
    shown = [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', page.split('id="audit-events"', 1)[1])]
    assert len(shown) == 2 and shown[0] > shown[1]
    older = re.search(r'<a href="\?([^"]+)" rel="next">Older events</a>', page)[1].replace("&amp;", "&")
    assert f"before={shown[1]}" in older and "model=fraud-gbm" in older
    following = html(client.get(f"{AUDIT}?{older}"))
    after = [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', following.split('id="audit-events"', 1)[1])]
    assert after and max(after) < shown[1]
    client.get(ACCESS)  # a third request under the project: each is logged after its response
    assert 'rel="next">Older requests</a>' in html(client.get(ACCESS))


def test_lineage_from_an_unknown_run_is_a_404_with_the_form(login, auditor, version):
    response = login(auditor).get(LINEAGE, {"node": "run:0d7f6b1e-0000-4000-8000-000000000000"})
    assert response.status_code == 404
    assert "No run &#x27;0d7f6b1e-0000-4000-8000-000000000000&#x27; in this project." in html(response)


def test_lineage_from_a_run_draws_its_job_between_its_data_and_the_version(login, auditor, ml_engineer, version):
    from tests.governance.provenance.lineage_events import dataset, ingest, model_facet, run_event

    event = run_event("fraud.train", inputs=[dataset("raw-payments", namespace="s3://raw")],
                      run_facets=model_facet("fraud-gbm", 1))  # fmt: skip
    ingest(Principal(ml_engineer), version.model.project, event)
    run_id = event["run"]["runId"]
    page = text(login(auditor).get(LINEAGE, {"node": f"run:{run_id}", "direction": "both", "depth": "2"}))
    assert f"Run {run_id} of job fraud.train: the graph is drawn per job." in page
    assert "1 upstream dataset raw-payments" in page and "1 downstream model version fraud-gbm v1" in page
