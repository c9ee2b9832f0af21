import pytest

from governance.models import AuditEvent, ModelCard, ModelCardRevision
from tests.governance.test_registry import body, versions_url


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


def test_an_officer_confirms_the_tier_and_a_new_proposal_clears_it(api, ml_engineer, officer, card_url):
    api(ml_engineer).patch(card_url, {"proposed_risk_tier": "limited"}, format="json")
    confirmed = api(officer).post(f"{card_url}confirm-risk-tier/", {"comment": "agreed"}, format="json")
    assert confirmed.status_code == 200, confirmed.json()
    assert confirmed.json()["confirmed_risk_tier"] == "limited"
    assert confirmed.json()["confirmed_by"] == "officer"
    assert AuditEvent.objects.filter(action="model_card.risk_tier_confirmed", actor_name="officer").exists()

    api(ml_engineer).patch(card_url, {"intended_use": "x"}, format="json")
    assert ModelCard.objects.get().confirmed_risk_tier == "limited"  # other fields keep the confirmation
    edited = api(ml_engineer).patch(card_url, {"proposed_risk_tier": "minimal"}, format="json").json()
    assert edited["confirmed_risk_tier"] == ""
    assert edited["effective_risk_tier"] == "high"


def test_only_officers_confirm_and_only_engineers_edit(api, ml_engineer, officer, auditor, card_url):
    api(ml_engineer).patch(card_url, {"proposed_risk_tier": "limited"}, format="json")
    assert api(ml_engineer).post(f"{card_url}confirm-risk-tier/", {}, format="json").status_code == 403
    assert api(auditor).post(f"{card_url}confirm-risk-tier/", {}, format="json").status_code == 403
    assert api(officer).patch(card_url, {"intended_use": "x"}, format="json").status_code == 403
    assert ModelCard.objects.get().confirmed_risk_tier == ""


def test_bad_card_input(api, ml_engineer, officer, card_url):
    client = api(ml_engineer)
    assert client.patch(card_url, {"proposed_risk_tier": "extreme"}, format="json").status_code == 400
    assert client.patch(card_url, {"unknown_field": "x"}, format="json").status_code == 400
    assert api(officer).post(f"{card_url}confirm-risk-tier/", {}, format="json").status_code == 400
    assert (
        api(officer).post(f"{card_url}confirm-risk-tier/", {"risk_tier": "extreme"}, format="json").status_code == 400
    )
