"""The gates' dry run (``GET .../versions/{v}/gates/``) reads what its gates show in a fixed number of statements,
whatever the version has linked: every deployment pipeline may ask it before requesting a promotion."""

from governance.accounts.access import Principal
from tests.factories import PromotionRequestFactory
from tests.governance.provenance.lineage_events import dataset, ingest, model_facet, run_event
from tests.governance.registry.test_registry import versions_url

# The key; the version with its model, project, registrant and card; the environment with the policy in force;
# the version's dataset links and metrics; for separation of duties, the lineage walk (the version's runs, what
# they read, the runs that wrote its training data, those runs with their agents, who reported them) and one
# statement for the card's authors, the requesters and the names; the access log's savepoint, insert and
# release. Exceptions are read only when a gate they could waive fails. (Before issue 19: 20.)
DRY_RUN = 14


def dry_run(client, project, environment="production"):
    return client.get(f"{versions_url(project)}1/gates/", {"environment": environment})


def test_the_dry_run_costs_a_fixed_number_of_statements(
    api, project, ml_engineer, officer, ready_version, django_assert_num_queries
):
    ingest(Principal(ml_engineer), project, run_event(
        "train", inputs=[dataset("train", version="1")], run_facets=model_facet("fraud-gbm", 1)))  # fmt: skip
    PromotionRequestFactory(version=ready_version, environment="staging", approved_by=[officer])
    client = api(ml_engineer)
    answer = dry_run(client, project)  # the key's first use is written down
    assert answer.status_code == 200, answer.content[:500]
    body = answer.json()
    excluded = body["gates"][0]["evidence"]["excluded"]
    assert [(e["principal"], e["reasons"]) for e in excluded] == [("mlengineer", [
        "registered the version", "edited the model card", "appears as an agent in the version's lineage",
        "requested its promotion",
    ])]  # fmt: skip
    assert [(gate["kind"], gate["status"]) for gate in body["gates"]] == [
        ("separation_of_duties", "passed"), ("approvals", "pending"), ("model_card", "passed"),
        ("provenance", "passed"), ("risk_tier", "passed"),
    ]  # fmt: skip
    with django_assert_num_queries(DRY_RUN):
        assert dry_run(client, project).json() == body
