import pytest

from governance.accounts.models import Role, RoleBinding
from governance.audit.models import AuditEvent
from governance.registry.models import ModelCard, ModelCardRevision
from tests.factories import UserFactory
from tests.governance.registry.test_registry import body, versions_url


@pytest.fixture
def card_url(api, project, ml_engineer):
    assert api(ml_engineer).post(versions_url(project), body(1), format="json").status_code == 201
    return f"{versions_url(project)}1/model-card/"


def test_an_empty_card_lists_every_field_as_missing(api, ml_engineer, card_url):
    card = api(ml_engineer).get(card_url).json()
    assert card["filled"] == []
    assert "intended_use" in card["missing"]
    assert card["effective_risk_tier"] == "high"
    assert card["revision"] == 0


def test_every_edit_is_kept_with_its_author_and_hash(api, ml_engineer, card_url):
    client = api(ml_engineer)
    first = client.patch(
        card_url, {"intended_use": "Score card payments", "proposed_risk_tier": "limited"}, format="json"
    )
    assert first.status_code == 200, first.json()
    second = client.patch(card_url, {"limitations": "Not for wire transfers"}, format="json")
    card = second.json()
    assert card["revision"] == 2
    assert set(card["filled"]) == {"intended_use", "proposed_risk_tier", "limitations"}
    assert card["proposed_risk_tier"] == "limited"
    assert card["confirmed_risk_tier"] == ""
    history = client.get(f"{card_url}history/").json()["results"]
    assert [(h["revision"], h["author"]) for h in history] == [(1, "mlengineer"), (2, "mlengineer")]
    assert history[0]["content_hash"] != history[1]["content_hash"] == card["content_hash"]
    # An edit that changes nothing makes no revision.
    client.patch(card_url, {"limitations": "Not for wire transfers"}, format="json")
    assert ModelCardRevision.objects.count() == 2
    assert AuditEvent.objects.filter(action="model_card.edited").count() == 2


def test_an_officer_confirms_the_revision_they_saw_with_a_comment(api, ml_engineer, officer, card_url):
    api(ml_engineer).patch(card_url, {"proposed_risk_tier": "limited"}, format="json")
    confirmed = api(officer).post(f"{card_url}confirm-risk-tier/", {"comment": "agreed", "revision": 1}, format="json")
    assert confirmed.status_code == 200, confirmed.json()
    card = confirmed.json()
    assert (card["confirmed_risk_tier"], card["confirmed_revision"], card["confirmed_by"]) == ("limited", 1, "officer")
    assert (card["confirmation_comment"], card["confirmation_voided"]) == ("agreed", None)
    event = AuditEvent.objects.get(action="model_card.risk_tier_confirmed", actor_name="officer")
    assert (event.diff["revision"], event.diff["comment"]) == (1, "agreed")
    stored = ModelCard.objects.get()
    assert (stored.confirmed_revision, stored.confirmation_comment) == (1, "agreed")


def test_any_later_edit_voids_the_confirmation_and_says_why(api, project, ml_engineer, officer, card_url):
    api(ml_engineer).patch(card_url, {"proposed_risk_tier": "limited"}, format="json")
    api(officer).post(f"{card_url}confirm-risk-tier/", {"comment": "agreed"}, format="json")

    edited = api(ml_engineer).patch(card_url, {"intended_use": "Score wire transfers too"}, format="json").json()
    assert (edited["revision"], edited["confirmed_risk_tier"], edited["effective_risk_tier"]) == (2, "", "high")
    assert (edited["confirmed_by"], edited["confirmed_revision"], edited["confirmation_comment"]) == (None, None, "")
    voided = edited["confirmation_voided"]
    reason = "mlengineer edited the card after officer confirmed revision 1 as limited: revision 2 changed intended_use"
    assert (voided["voided_by"], voided["confirmed_revision"], voided["reason"]) == ("mlengineer", 1, reason)
    assert voided["voided_at"]
    event = AuditEvent.objects.get(action="model_card.confirmation_voided")
    assert (event.actor_name, event.diff["confirmed_by"], event.diff["confirmed_revision"]) == (
        "mlengineer",
        "officer",
        1,
    )
    assert (event.diff["revision"], event.diff["reason"]) == (2, reason)
    card = ModelCard.objects.get()
    assert (card.confirmed_risk_tier, card.confirmation_voided_revision, card.confirmation_void_reason) == (
        "", 1, reason
    )  # fmt: skip

    gates = api(officer).get(f"{card_url.removesuffix('model-card/')}gates/", {"environment": "production"}).json()
    model_card = next(gate for gate in gates["gates"] if gate["kind"] == "model_card")
    assert (
        f"the risk tier is not confirmed by a governance officer (the confirmation was voided: {reason})"
        in (model_card["reason"])
    )
    assert gates["risk_tier"] == "high"

    # Confirming the revision the officer reviewed before the edit is refused; the current one is bound anew.
    stale = api(officer).post(f"{card_url}confirm-risk-tier/", {"comment": "again", "revision": 1}, format="json")
    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "card_changed"
    assert ModelCard.objects.get().confirmed_risk_tier == ""
    again = api(officer).post(f"{card_url}confirm-risk-tier/", {"comment": "again", "revision": 2}, format="json")
    assert (again.json()["confirmed_revision"], again.json()["confirmation_voided"]) == (2, None)


@pytest.mark.parametrize(
    "duty, reason",
    [
        ("registered", "registered the version"),
        ("edited", "edited the model card"),
        ("requested", "requested its promotion"),
        ("lineage", "appears as an agent in the version's lineage"),
    ],
)
def test_nobody_confirms_the_tier_of_their_own_work(
    api, project, admin_user, ml_engineer, officer, card_url, duty, reason
):
    """The issue's case: someone who built or asked to promote the version, also an officer, lowers its tier."""
    from governance.accounts.access import Principal
    from governance.accounts.services import role_grant
    from tests.governance.provenance.lineage_events import ingest, model_facet, run_event

    api(ml_engineer).patch(card_url, {"proposed_risk_tier": "high"}, format="json")
    dual = ml_engineer if duty == "registered" else UserFactory(username="dual")
    if dual != ml_engineer:
        role_grant(actor=Principal(admin_user), project=project, principal=dual, role=Role.ML_ENGINEER)
    role_grant(actor=Principal(admin_user), project=project, principal=dual, role=Role.GOVERNANCE_OFFICER)
    if duty == "edited":
        assert api(dual).patch(card_url, {"limitations": "EU only"}, format="json").status_code == 200
    elif duty == "requested":  # any request of the version, even one withdrawn since
        requests = f"/api/v1/projects/{project.slug}/promotion-requests/"
        created = api(dual).post(requests, {"model": "fraud-gbm", "version": 1, "environment": "staging"},
                                 format="json")  # fmt: skip
        assert api(dual).post(f"{requests}{created.json()['id']}/withdraw/").status_code == 200
    elif duty == "lineage":
        ingest(Principal(dual), project, run_event("train", run_facets=model_facet("fraud-gbm", 1)))
    before = ModelCard.objects.get()

    refused = api(dual).post(
        f"{card_url}confirm-risk-tier/", {"risk_tier": "minimal", "comment": "fine"}, format="json"
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "separation_of_duties"
    assert reason in refused.json()["error"]["message"]
    assert AuditEvent.objects.filter(action="access.denied", actor_name=dual.username).exists()
    card = ModelCard.objects.get()
    assert (card.confirmed_risk_tier, card.confirmed_by, card.revision) == ("", None, before.revision)
    assert not AuditEvent.objects.filter(action="model_card.risk_tier_confirmed").exists()


def test_a_confirmer_who_later_requests_the_promotion_no_longer_counts(api, project, admin_user, ml_engineer, card_url):
    from governance.accounts.access import Principal
    from governance.accounts.services import role_grant

    api(ml_engineer).patch(card_url, {"proposed_risk_tier": "minimal"}, format="json")
    dual = UserFactory(username="dual")
    for role in (Role.ML_ENGINEER, Role.GOVERNANCE_OFFICER):
        role_grant(actor=Principal(admin_user), project=project, principal=dual, role=role)
    assert api(dual).post(f"{card_url}confirm-risk-tier/", {"comment": "ok"}, format="json").status_code == 200
    requests = f"/api/v1/projects/{project.slug}/promotion-requests/"
    created = api(dual).post(requests, {"model": "fraud-gbm", "version": 1, "environment": "production"},
                             format="json")  # fmt: skip
    assert created.status_code == 201

    gates = api(ml_engineer).get(f"{card_url.removesuffix('model-card/')}gates/", {"environment": "production"})
    model_card = next(gate for gate in gates.json()["gates"] if gate["kind"] == "model_card")
    assert "(dual's confirmation does not count: they requested its promotion)" in model_card["reason"]
    assert gates.json()["risk_tier"] == "high"
    assert ModelCard.objects.get().confirmed_risk_tier == "minimal"  # stored as confirmed; gates do not use it


def test_a_service_account_never_confirms(api, project, admin_user, card_url):
    from governance.accounts.access import Principal
    from governance.accounts.services import service_account_create

    account, _, _ = service_account_create(actor=Principal(admin_user), project=project, name="ci", role="ml_engineer")
    # role_grant refuses this role to a service account; a row written around it still confers nothing here.
    RoleBinding.objects.create(principal=account, project=project, role=Role.GOVERNANCE_OFFICER, granted_by=admin_user)
    refused = api(account, project=project).post(
        f"{card_url}confirm-risk-tier/", {"risk_tier": "minimal", "comment": "fine"}, format="json"
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "separation_of_duties"
    assert ModelCard.objects.filter(confirmed_risk_tier="").count() == ModelCard.objects.count()


@pytest.mark.parametrize("comment", [None, "", "   "])
def test_a_confirmation_needs_a_comment(api, ml_engineer, officer, card_url, comment):
    api(ml_engineer).patch(card_url, {"proposed_risk_tier": "limited"}, format="json")
    response = api(officer).post(
        f"{card_url}confirm-risk-tier/", {} if comment is None else {"comment": comment}, format="json"
    )
    assert response.status_code == 400
    assert [d["field"] for d in response.json()["error"]["details"]] == ["comment"]
    assert ModelCard.objects.get().confirmed_risk_tier == ""
    assert not AuditEvent.objects.filter(action="model_card.risk_tier_confirmed").exists()


def test_the_service_refuses_a_blank_comment_too(project, ml_engineer, officer, card_url):
    from controlplane.exceptions import DomainError
    from governance.accounts.access import Principal
    from governance.promotion.services import model_card_confirm_risk_tier
    from governance.registry.models import ModelVersion

    version = ModelVersion.objects.get()
    with pytest.raises(DomainError) as refused:
        model_card_confirm_risk_tier(actor=Principal(officer), version=version, risk_tier="limited", comment=" ")
    assert refused.value.details == [{"field": "comment"}]
    assert not ModelCard.objects.filter(confirmed_risk_tier="limited").exists()


def test_only_officers_confirm_and_only_engineers_edit(api, ml_engineer, officer, auditor, card_url):
    api(ml_engineer).patch(card_url, {"proposed_risk_tier": "limited"}, format="json")
    confirm = {"comment": "agreed"}
    assert api(ml_engineer).post(f"{card_url}confirm-risk-tier/", confirm, format="json").status_code == 403
    assert api(auditor).post(f"{card_url}confirm-risk-tier/", confirm, format="json").status_code == 403
    assert api(officer).patch(card_url, {"intended_use": "x"}, format="json").status_code == 403
    assert ModelCard.objects.get().confirmed_risk_tier == ""


def test_bad_card_input(api, ml_engineer, officer, card_url):
    client = api(ml_engineer)
    assert client.patch(card_url, {"proposed_risk_tier": "extreme"}, format="json").status_code == 400
    assert client.patch(card_url, {"unknown_field": "x"}, format="json").status_code == 400
    confirm = {"comment": "agreed"}
    assert api(officer).post(f"{card_url}confirm-risk-tier/", confirm, format="json").status_code == 400  # no tier
    assert (
        api(officer)
        .post(f"{card_url}confirm-risk-tier/", {**confirm, "risk_tier": "extreme"}, format="json")
        .status_code
        == 400
    )
