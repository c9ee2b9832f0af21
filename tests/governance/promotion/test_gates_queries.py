"""The gates' dry run (``GET .../versions/{v}/gates/``) reads what its gates show in a fixed number of statements,
whatever the version has linked: every deployment pipeline may ask it before requesting a promotion."""

from governance.accounts.access import Principal
from governance.promotion.selectors import _environment_with_policy
from governance.promotion.services import _PREPARED, _links_of, _metrics_of, _people_of_version, policy_publish
from governance.provenance.graph import _runs_of_version, _writers_of_dataset
from governance.provenance.models import LineageRun, LineageRunDataset
from tests.factories import PromotionRequestFactory
from tests.governance.provenance.lineage_events import dataset, ingest, model_facet, run_event
from tests.governance.registry.test_registry import versions_url
from tests.prepared import fields_of

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
    people = [(u.pk, u.username, u.edited, u.requested) for u in _people_of_version(version=ready_version.pk)]
    assert people == [
        (u.pk, u.username, u.edited, u.requested) for u in _people_of_version.build(version=ready_version.pk)
    ]
    assert people == [(ml_engineer.pk, "mlengineer", True, True)]


def test_the_prepared_reads_answer_what_their_querysets_answer(project, ready_version, django_assert_num_queries):
    for build, relations in ((_links_of, ("dataset_version", "dataset_version.dataset")), (_metrics_of, ())):
        with django_assert_num_queries(1):
            prepared = [fields_of(row, *relations) for row in _PREPARED[build](version=ready_version.pk)]
        assert prepared == [fields_of(row, *relations) for row in build(version=ready_version.pk)]
        assert prepared == [fields_of(row, *relations) for row in build(versions=[ready_version.pk])]
        assert len(prepared) == 1
    values, published = {"project": project.pk, "name": "production"}, project.policies.get()
    with django_assert_num_queries(1):
        (environment,) = _environment_with_policy(**values)
        policy = environment.policy_in_force
        assert (policy.pk, policy.project_id, policy.version, policy.document) == (
            published.pk, project.pk, 1, published.document,
        )  # fmt: skip
    (expected,) = _environment_with_policy.build(**values)
    assert fields_of(environment) == fields_of(expected)
    assert expected.policy_in_force.document == published.document
    assert policy.document_hash == published.document_hash  # the rest of the row loads on access
    assert _environment_with_policy.first(project=project.pk, name="nowhere") is None


def test_a_policy_published_between_two_dry_runs_is_the_one_in_force(api, project, ml_engineer, officer, ready_version):
    client = api(ml_engineer)
    assert dry_run(client, project).json()["policy_version"] == 1
    document = project.policies.get().document
    document["environments"]["production"]["limited"].append({"kind": "metric", "name": "auc", "min": 0.95})
    policy_publish(actor=Principal(officer), project=project, source=document, comment="stricter")
    answer = dry_run(client, project).json()  # the same connection, its queries already compiled
    assert answer["policy_version"] == 2
    assert [g["reason"] for g in answer["gates"] if g["kind"] == "metric"] == ["auc = 0.91 does not meet ≥ 0.95"]


def test_the_walks_prepared_reads_answer_what_their_querysets_answer(project, ml_engineer, ready_version):
    ingest(Principal(ml_engineer), project, run_event(
        "train", inputs=[dataset("train", version="1")], run_facets=model_facet("fraud-gbm", 1)))  # fmt: skip
    ingest(Principal(ml_engineer), project, run_event("prepare", outputs=[dataset("train", version="1")]))
    (run,) = _runs_of_version(version=ready_version.pk)
    assert fields_of(run) == fields_of(LineageRun.objects.get(model_version=ready_version))
    dataset_id = ready_version.dataset_links.get().dataset_version.dataset_id
    writers = _writers_of_dataset(dataset=dataset_id)
    expected = LineageRunDataset.objects.filter(dataset_id__in=[dataset_id], direction="output")
    assert sorted(map(fields_of, writers), key=str) == sorted(map(fields_of, expected), key=str)
    assert len(writers) == 1
