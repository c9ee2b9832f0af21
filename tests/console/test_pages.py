"""The console's pages and forms through Django's test client (issue 17): what each persona sees, that every
form goes through the service its API twin calls (audited, in the access log), and the errors as pages."""

import re
import time

import pytest
from django.test import override_settings

from governance.audit.models import AccessLogEntry, AuditEvent
from governance.console.middleware import LOGIN_AT, SEEN_AT
from governance.promotion.models import Decision, Deployment, Policy, PolicyException, PromotionRequest
from tests.console.conftest import VERSION_PATH, post

PASSWORD = "correct horse battery staple"


def html(response) -> str:
    return response.content.decode()


def post_forms(page: str) -> list[str]:
    """The actions of the page's POST forms, but the logout."""
    return [a for a in re.findall(r'<form method="post" action="([^"]+)"', page) if a != "/console/logout/"]


# Home, queue, models ------------------------------------------------------------------------------------------


def test_the_home_page_counts_each_project_and_shows_an_officer_the_queue(login, officer, open_request):
    page = html(login(officer).get("/console/"))
    assert '<a href="/console/p/fraud/models/"><code>fraud</code></a>' in page
    row = re.search(r"<code>fraud</code>.*?</tr>", page, re.S)[0]
    assert re.findall(r'<td class="num[^"]*">(\d+)</td>', row) == ["1", "0", "0"]
    assert "Waiting for a governance officer" in page and "fraud-gbm v1" in page
    assert 'href="/console/queue/"' in page


def test_an_engineer_has_no_queue(login, ml_engineer, open_request):
    client = login(ml_engineer)
    page = html(client.get("/console/"))
    assert "Waiting for a governance officer" not in page
    assert 'href="/console/queue/"' not in page


def test_the_queue_lists_open_requests_with_tier_gates_and_requester(login, officer, open_request):
    page = html(login(officer).get("/console/queue/"))
    row = re.search(r"<tbody>.*?</tbody>", page, re.S)[0]
    assert "fraud-gbm v1" in row and "production" in row and "mlengineer" in row
    assert "unconfirmed — counts as high" in row
    assert "not passing: approvals, model_card, check" in row
    assert f'href="{VERSION_PATH}#env-production"' in row


def test_the_queue_filters_and_says_when_nothing_matches(login, officer, open_request):
    client = login(officer)
    assert "fraud-gbm v1" in html(client.get("/console/queue/?environment=production&tier=unconfirmed"))
    page = html(client.get("/console/queue/?environment=staging"))
    assert "No open request matches these filters." in page
    assert "fraud-gbm" not in page.split("<h1>", 1)[1].split("</form>", 1)[1]


def test_the_queue_answers_htmx_with_the_table_alone(login, officer, open_request):
    page = html(login(officer).get("/console/queue/?tier=unconfirmed", HTTP_HX_REQUEST="true"))
    assert page.startswith('<div id="queue-table">') and "fraud-gbm v1" in page and "<html" not in page


def test_an_empty_queue_says_so(login, officer, project):
    assert "the queue is empty" in html(login(officer).get("/console/queue/"))


def test_models_and_a_model_list_versions_and_where_they_run(login, auditor, version):
    client = login(auditor)
    models = html(client.get("/console/p/fraud/models/"))
    assert '<a href="/console/p/fraud/models/fraud-gbm/">fraud-gbm</a>' in models and "not deployed" in models
    detail = html(client.get("/console/p/fraud/models/fraud-gbm/"))
    assert f'<a href="{VERSION_PATH}">v1</a>' in detail
    assert "auc 0.910" in detail and "unconfirmed — counts as high" in detail


def test_a_project_without_models_says_how_to_register_one(login, auditor, project):
    assert "No model is registered in this project yet" in html(login(auditor).get("/console/p/fraud/models/"))


# The version page ---------------------------------------------------------------------------------------------


def test_the_version_page_shows_every_gate_with_its_reason(login, officer, open_request):
    page = html(login(officer).get(VERSION_PATH))
    production = page.split('id="env-production"', 1)[1].split("</article>", 1)[0]
    assert f"Request #{open_request.pk} by <strong>mlengineer</strong>" in production
    assert '<span class="status failed">failed</span>' in production
    assert "not confirmed" in production  # the model card gate's reason, as the API gives it
    assert "Execute is disabled until every gate passes. Not passing: <strong>approvals</strong>" in production
    assert "No check has run on this version" in page
    assert "intended use" in page and "Score card payments for fraud" in page


def test_an_engineer_sees_approve_disabled_with_the_apis_reason(login, api, ml_engineer, officer, open_request):
    page = html(login(ml_engineer).get(VERSION_PATH))
    reason = re.search(r'<p class="why" id="why-approve-\d+">Approve is disabled: ([^<]+)</p>', page)[1]
    refused = api(ml_engineer).post(f"/api/v1/projects/fraud/promotion-requests/{open_request.pk}/approve/", {},
                                    format="json")  # fmt: skip
    assert refused.status_code == 403
    assert reason == refused.json()["error"]["message"].replace("'", "&#x27;")
    assert re.search(r'<button type="submit" disabled aria-describedby="why-approve-\d+">Approve</button>', page)


def test_separation_of_duties_disables_approval_with_the_apis_reason(login, api, project, admin_user, ml_engineer,
                                                                        open_request):  # fmt: skip
    from governance.accounts.access import Principal
    from governance.accounts.services import role_grant

    role_grant(actor=Principal(admin_user), project=project, principal=ml_engineer, role="governance_officer")
    page = html(login(ml_engineer).get(VERSION_PATH))
    reason = re.search(r"Approve is disabled: ([^<]+)</p>", page)[1]
    refused = api(ml_engineer).post(f"/api/v1/projects/fraud/promotion-requests/{open_request.pk}/approve/", {},
                                    format="json")  # fmt: skip
    assert refused.json()["error"]["code"] == "separation_of_duties"
    assert reason == refused.json()["error"]["message"]
    assert "Separation of duties: you registered the version" in reason


def test_an_officer_confirms_the_tier_approves_and_executes(login, officer, open_request, version):
    client = login(officer)
    missing = post(client, f"{VERSION_PATH}confirm-risk-tier/", {"risk_tier": "limited", "revision": 1})
    assert missing.status_code == 302
    assert "comment: This field is required." in html(client.get(VERSION_PATH))
    confirmed = post(client, f"{VERSION_PATH}confirm-risk-tier/",
                     {"risk_tier": "limited", "revision": 1, "comment": "reviewed the card"})  # fmt: skip
    assert confirmed.status_code == 302
    version.card.refresh_from_db()
    assert (version.card.confirmed_risk_tier, version.card.confirmed_by) == ("limited", officer)
    assert AuditEvent.objects.filter(action="model_card.risk_tier_confirmed").count() == 1

    approved = post(client, f"/console/p/fraud/requests/{open_request.pk}/approve/", {"comment": "evidence complete"})
    assert approved.status_code == 302 and approved["Location"] == f"{VERSION_PATH}#env-production"
    decision = Decision.objects.get(request=open_request)
    assert (decision.reviewer, decision.outcome, decision.comment) == (officer, "approve", "evidence complete")
    assert AuditEvent.objects.filter(action="promotion.approved").count() == 1
    decisions = html(client.get(VERSION_PATH)).split('id="decisions"', 1)[1].split("</section>", 1)[0]
    assert "approve</strong> by officer" in decisions and "evidence complete" in decisions
    assert "evidence it is bound to" in decisions and version.artifact_sha256 in decisions

    executed = post(client, f"/console/p/fraud/requests/{open_request.pk}/execute/")
    assert executed.status_code == 302
    assert Deployment.objects.get(environment__name="production").model_version == version
    assert "now runs in production" in html(client.get(VERSION_PATH))
    entry = AccessLogEntry.objects.filter(method="POST", path__endswith="/execute/").get()
    assert (entry.principal, entry.project_slug, entry.object, entry.status) == (
        officer,
        "fraud",
        f"console:request-execute pk={open_request.pk}",
        302,
    )


def test_a_blocked_execution_says_which_gates_fail(login, ml_engineer, open_request):
    client = login(ml_engineer)
    response = post(client, f"/console/p/fraud/requests/{open_request.pk}/execute/")
    assert response.status_code == 302
    page = html(client.get(VERSION_PATH))
    message = re.search(r'<li class="error">([^<]+)</li>', page)[1]
    assert message.startswith("Blocked: 4 gate(s) do not pass. approvals: 0 of 2"), message
    assert not Deployment.objects.exists()
    assert AuditEvent.objects.filter(action="gate.evaluated").count() == 1  # audited like the API's execute


def test_an_engineer_requests_a_promotion(login, ml_engineer, version):
    client = login(ml_engineer)
    response = post(client, f"{VERSION_PATH}request/", {"environment": "staging", "comment": "try it"})
    assert response["Location"] == f"{VERSION_PATH}#env-staging"
    request = PromotionRequest.objects.get()
    assert (request.environment.name, request.requested_by, request.comment) == ("staging", ml_engineer, "try it")
    assert AuditEvent.objects.filter(action="promotion.requested").count() == 1
    assert "Promotion to staging requested." in html(client.get(VERSION_PATH))


def test_an_officer_may_not_request_and_is_told_why(login, officer, version):
    client = login(officer)
    page = html(client.get(VERSION_PATH))
    assert "Only a project&#x27;s ml_engineer may request promotions." in page
    refused = post(client, f"{VERSION_PATH}request/", {"environment": "staging"})
    assert refused.status_code == 403
    assert "Only a project&#x27;s ml_engineer may request promotions." in html(refused)
    assert not PromotionRequest.objects.exists()
    denied = AuditEvent.objects.get(action="access.denied")
    assert "request promotions" in denied.diff["reason"]


# Permissions as a person meets them ---------------------------------------------------------------------------


def test_an_auditor_sees_no_form_that_changes_anything(login, auditor, open_request):
    client = login(auditor)
    for path in ("/console/", "/console/p/fraud/models/", "/console/p/fraud/models/fraud-gbm/", VERSION_PATH,
                 "/console/p/fraud/policy/"):  # fmt: skip
        response = client.get(path)
        assert response.status_code == 200, path
        assert post_forms(html(response)) == [], path


def test_an_auditors_approval_is_a_403_page_with_the_reason(login, auditor, open_request):
    response = post(login(auditor), f"/console/p/fraud/requests/{open_request.pk}/approve/")
    assert response.status_code == 403
    assert "Only a project&#x27;s governance_officer may approve promotions." in html(response)
    assert not Decision.objects.exists()
    assert AuditEvent.objects.filter(action="access.denied", actor=auditor).count() == 1


@pytest.mark.parametrize("path", ["/console/p/fraud/models/", "/console/p/fraud/models/fraud-gbm/", VERSION_PATH,
                                  "/console/p/fraud/policy/"])  # fmt: skip
def test_another_projects_page_is_the_404_of_a_missing_one(login, outsider, version, path):
    client = login(outsider)
    theirs = client.get(path)
    missing = client.get(path.replace("/p/fraud/", "/p/nowhere/"))
    assert theirs.status_code == missing.status_code == 404
    token = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"')
    assert token.sub("", html(theirs)).replace("fraud", "X") == token.sub("", html(missing)).replace("nowhere", "X")
    assert "fraud-gbm" not in html(theirs)


def test_an_outsiders_post_to_another_project_is_a_404(login, outsider, open_request):
    response = post(login(outsider), f"/console/p/fraud/requests/{open_request.pk}/approve/")
    assert response.status_code == 404
    assert not Decision.objects.exists()


def test_an_unknown_console_path_is_a_page(login, officer):
    response = login(officer).get("/console/nothing/here/")
    assert response.status_code == 404
    assert "There is no such page in the console." in html(response)


def test_a_form_without_its_csrf_token_is_refused(login, officer, open_request):
    client = login(officer)
    response = client.post(f"/console/p/fraud/requests/{open_request.pk}/approve/", {"comment": "x"})
    assert response.status_code == 403
    assert not Decision.objects.exists()


def test_every_console_form_carries_a_csrf_token(login, officer, open_request):
    for path in (VERSION_PATH, "/console/p/fraud/policy/"):
        page = html(login(officer).get(path))
        forms = re.findall(r'<form method="post".*?</form>', page, re.S)
        assert len(forms) >= 3
        assert all("csrfmiddlewaretoken" in form for form in forms), path


# Policy -------------------------------------------------------------------------------------------------------


def test_an_officer_publishes_a_policy_and_sees_the_diff(login, officer, project):
    client = login(officer)
    source = html(client.get("/console/p/fraud/policy/"))
    assert "In force: <strong>version 1</strong>" in source
    document = Policy.objects.get().document
    document["environments"]["staging"]["minimal"] = [{"kind": "approvals", "min": 1}]
    import json

    published = post(client, "/console/p/fraud/policy/publish/", {"source": json.dumps(document),
                                                                  "comment": "staging needs a look"})  # fmt: skip
    assert published.status_code == 302
    assert Policy.objects.count() == 2
    page = html(client.get("/console/p/fraud/policy/"))
    assert "In force: <strong>version 2</strong>" in page
    assert 'class="diff"' in page and "version 1" in page and "diff_add" in page
    assert AuditEvent.objects.filter(action="policy.published", actor=officer).count() == 1


def test_a_bad_policy_is_refused_with_the_services_message(login, officer, project):
    client = login(officer)
    post(client, "/console/p/fraud/policy/publish/", {"source": "environments: 3", "comment": "oops"})
    assert Policy.objects.count() == 1
    assert 'class="error"' in html(client.get("/console/p/fraud/policy/"))


def test_an_engineer_sees_publish_and_grant_disabled_with_reasons(login, ml_engineer, project):
    page = html(login(ml_engineer).get("/console/p/fraud/policy/"))
    assert "Only a project&#x27;s governance_officer may publish policies." in page
    assert "Only a project&#x27;s governance_officer may grant policy exceptions." in page
    assert "No exception has been granted in this project." in page


def test_an_officer_grants_and_revokes_an_exception(login, officer, ml_engineer, version):
    client = login(officer)
    response = post(client, "/console/p/fraud/exceptions/grant/", {
        "model": "fraud-gbm", "version": 1, "environment": "production", "gate": "check", "target": "",
        "name": "no production data yet", "justification": "first release", "requested_by": "mlengineer",
        "expires_at": "2099-01-01T00:00",
    })  # fmt: skip
    assert response.status_code == 302
    page = html(client.get("/console/p/fraud/policy/"))
    assert "Expires (UTC)" in page and "expires_at must be in the future and within 90 days." in page
    assert not PolicyException.objects.exists()
    soon = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time() + 86400))
    post(client, "/console/p/fraud/exceptions/grant/", {
        "model": "fraud-gbm", "version": 1, "environment": "production", "gate": "check", "target": "",
        "name": "no production data yet", "justification": "first release", "requested_by": "mlengineer",
        "expires_at": soon,
    })  # fmt: skip
    granted = PolicyException.objects.get()
    assert (granted.granted_by, granted.requested_by, granted.gate) == (officer, ml_engineer, "check")
    assert "no production data yet" in html(client.get(VERSION_PATH))
    post(client, f"/console/p/fraud/exceptions/{granted.pk}/revoke/")
    granted.refresh_from_db()
    assert granted.revoked_by == officer


# Sessions and login -------------------------------------------------------------------------------------------


def _age_session(client, **seconds_ago):
    session = client.session
    now = time.time()
    for key, ago in seconds_ago.items():
        session[key] = now - ago
    session.save()


@override_settings(TOLLGATE_SESSION_IDLE_MINUTES=30)
def test_a_session_idle_past_the_limit_ends(login, officer):
    client = login(officer)
    _age_session(client, **{SEEN_AT: 29 * 60})
    assert client.get("/console/").status_code == 200
    _age_session(client, **{SEEN_AT: 31 * 60})
    response = client.get("/console/queue/")
    assert response.status_code == 302
    assert response["Location"].startswith("/console/login/?expired=1&next=%2Fconsole%2Fqueue%2F")
    assert "_auth_user_id" not in client.session
    assert "Your session ended" in html(client.get(response["Location"]))


def test_a_busy_session_still_ends_eight_hours_after_the_login(login, officer):
    client = login(officer)
    _age_session(client, **{LOGIN_AT: 8 * 3600 - 60, SEEN_AT: 10})
    assert client.get("/console/").status_code == 200
    _age_session(client, **{LOGIN_AT: 8 * 3600 + 60, SEEN_AT: 10})
    assert client.get("/console/").status_code == 302
    assert "_auth_user_id" not in client.session


def test_the_idle_limit_is_a_setting(login, officer, settings):
    settings.TOLLGATE_SESSION_IDLE_MINUTES = 5
    client = login(officer)
    _age_session(client, **{SEEN_AT: 6 * 60})
    assert client.get("/console/").status_code == 302


def test_login_attempts_are_throttled_like_anonymous_api_calls(client, officer, settings):
    settings.TOLLGATE_THROTTLE_ANON = "3/min"
    address = {"REMOTE_ADDR": "203.0.113.77"}  # a counter of its own (counters are per client address)
    for _ in range(3):
        response = client.post("/console/login/", {"username": "officer", "password": "wrong"}, **address)
        assert response.status_code == 200
    refused = client.post("/console/login/", {"username": "officer", "password": PASSWORD}, **address)
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    assert "Too many login attempts" in html(refused)
    assert "_auth_user_id" not in client.session
    other = client.post("/console/login/", {"username": "officer", "password": PASSWORD}, REMOTE_ADDR="203.0.113.78")
    assert other.status_code == 302
