"""The lineage graph: one recursive query inside the caller's projects, capped; and who is upstream."""

import hashlib

import pytest

from governance.accounts.access import Principal
from governance.provenance.graph import GRAPH_NODE_CAP, dataset_key, job_key, lineage_agents, lineage_nodes_ensure
from governance.provenance.models import Dataset, DatasetVersion, LineageGraphEdge, LineageJob
from governance.registry.models import ModelVersion, RegisteredModel
from tests.factories import UserFactory
from tests.governance.provenance.lineage_events import dataset, ingest, model_facet, run_event

GRAPH = "/api/v1/lineage/"


@pytest.fixture
def model_version(project, ml_engineer):
    model = RegisteredModel.objects.create(project=project, name="fraud-gbm", owner=ml_engineer)
    return ModelVersion.objects.create(
        model=model, version=1, artifact_uri="s3://models/1", artifact_sha256=hashlib.sha256(b"m").hexdigest(),
        signature={}, created_by=ml_engineer,
    )  # fmt: skip


@pytest.fixture
def pipeline(project, ml_engineer, model_version):
    """raw → prepare → features → train → fraud-gbm v1, and features → report → dashboard downstream."""
    engineer = Principal(ml_engineer)
    ingest(engineer, project, run_event("prepare", inputs=[dataset("raw")], outputs=[dataset("features", version="1")]))
    ingest(
        engineer,
        project,
        run_event("train", inputs=[dataset("features", version="1")], run_facets=model_facet("fraud-gbm", 1)),
    )
    ingest(engineer, project, run_event("report", inputs=[dataset("features")], outputs=[dataset("dashboard")]))


def ids(response):
    assert response.status_code == 200, response.json()
    return [node["id"] for node in response.json()["graph"]]


def test_upstream_of_a_model_version_reaches_its_source_data(api, auditor, pipeline):
    response = api(auditor).get(GRAPH, {"nodeId": "model:fraud-gbm:1", "direction": "upstream", "depth": 20})
    assert ids(response) == [
        "model:fraud-gbm:1",
        "job:pipelines:train",
        "dataset:s3://fraud:features",
        "job:pipelines:prepare",
        "dataset:s3://fraud:raw",
    ]
    model = response.json()["graph"][0]
    assert model["type"] == "MODEL_VERSION"
    assert model["inEdges"] == [{"origin": "job:pipelines:train", "destination": "model:fraud-gbm:1"}]
    train = response.json()["graph"][1]
    assert train["data"]["latestRun"]["state"] == "COMPLETE"
    assert train["data"]["latestRun"]["agent"] == "mlengineer"


def test_downstream_both_and_depth(api, auditor, pipeline):
    client = api(auditor)
    down = ids(client.get(GRAPH, {"nodeId": "dataset:s3://fraud:raw", "direction": "downstream", "depth": 20}))
    assert down[:3] == ["dataset:s3://fraud:raw", "job:pipelines:prepare", "dataset:s3://fraud:features"]
    assert set(down) == {
        "dataset:s3://fraud:raw", "job:pipelines:prepare", "dataset:s3://fraud:features", "job:pipelines:train",
        "job:pipelines:report", "model:fraud-gbm:1", "dataset:s3://fraud:dashboard",
    }  # fmt: skip
    shallow = ids(client.get(GRAPH, {"nodeId": "dataset:s3://fraud:features", "direction": "both", "depth": 1}))
    assert set(shallow) == {
        "dataset:s3://fraud:features", "job:pipelines:prepare", "job:pipelines:train", "job:pipelines:report"
    }  # fmt: skip
    assert ids(client.get(GRAPH, {"nodeId": "dataset:s3://fraud:features", "depth": 0})) == [
        "dataset:s3://fraud:features"
    ]


def test_the_graph_is_resolved_inside_the_callers_projects(api, outsider, pipeline):
    response = api(outsider).get(GRAPH, {"nodeId": "model:fraud-gbm:1"})
    assert response.status_code == 404


def test_bad_queries_are_400(api, auditor, pipeline):
    client = api(auditor)
    assert client.get(GRAPH, {"nodeId": "table:x:y"}).status_code == 400
    assert client.get(GRAPH, {"nodeId": "model:fraud-gbm:1", "depth": 1000}).status_code == 400
    assert client.get(GRAPH, {"nodeId": "model:fraud-gbm:1", "direction": "sideways"}).status_code == 400
    assert client.get(GRAPH, {}).status_code == 400


def test_a_registered_dataset_without_lineage_is_a_lone_node(api, auditor, project, ml_engineer):
    Dataset.objects.create(project=project, namespace="s3://fraud", name="holdout", owner=ml_engineer)
    assert ids(api(auditor).get(GRAPH, {"nodeId": "dataset:s3://fraud:holdout"})) == ["dataset:s3://fraud:holdout"]


def test_registry_links_put_datasets_upstream_of_the_version(api, project, ml_engineer, auditor):
    features = Dataset.objects.create(project=project, namespace="s3://fraud", name="features", owner=ml_engineer)
    version = DatasetVersion.objects.create(
        dataset=features, version="1", kind="uri", uri="s3://fraud/f/1", sha256=hashlib.sha256(b"f").hexdigest(),
        created_by=ml_engineer,
    )  # fmt: skip
    body = {
        "artifact_uri": "s3://models/fraud/1/model.onnx",
        "artifact_sha256": hashlib.sha256(b"artifact").hexdigest(),
        "signature": {"inputs": [{"name": "a", "type": "float"}], "outputs": [{"name": "s", "type": "float"}]},
        "datasets": [{"dataset_version": version.pk, "role": "trained_on"}],
    }
    created = api(ml_engineer).post(f"/api/v1/projects/{project.slug}/models/fraud-gbm/versions/", body, format="json")
    assert created.status_code == 201, created.json()
    graph = api(auditor).get(GRAPH, {"nodeId": "model:fraud-gbm:1", "direction": "upstream"})
    assert ids(graph) == ["model:fraud-gbm:1", "dataset:s3://fraud:features"]


def test_the_graph_is_capped_at_a_thousand_nodes_nearest_first(
    api, auditor, project, ml_engineer, django_assert_max_num_queries
):
    job = LineageJob.objects.create(project=project, namespace="etl", name="explode")
    datasets = Dataset.objects.bulk_create(
        [Dataset(project=project, namespace="s3://wide", name=f"part-{i:04d}") for i in range(GRAPH_NODE_CAP + 50)]
    )
    wanted = {job_key("etl", "explode"): ("job", job)}
    wanted.update({dataset_key(d.namespace, d.name): ("dataset", d) for d in datasets})
    nodes, _ = lineage_nodes_ensure(project, wanted)
    job_node = nodes[job_key("etl", "explode")]
    LineageGraphEdge.objects.bulk_create(
        [
            LineageGraphEdge(project=project, src_id=job_node, dst_id=nodes[dataset_key(d.namespace, d.name)])
            for d in datasets
        ]
    )
    client = api(auditor)
    with django_assert_max_num_queries(12):
        response = client.get(GRAPH, {"nodeId": "job:etl:explode", "direction": "downstream", "depth": 3})
    assert response.status_code == 200
    assert response.json()["truncated"] is True
    graph = response.json()["graph"]
    assert len(graph) == GRAPH_NODE_CAP
    assert graph[0]["id"] == "job:etl:explode"
    assert len(graph[0]["outEdges"]) == GRAPH_NODE_CAP - 1


def test_lineage_agents_are_the_reporters_of_every_upstream_run(project, ml_engineer, model_version, admin_user):
    from governance.accounts.models import Role
    from governance.accounts.services import role_grant

    upstream_bot = UserFactory(username="ingest-bot")
    other_bot = UserFactory(username="dashboards-bot")
    for user in (upstream_bot, other_bot):
        role_grant(actor=Principal(admin_user), project=project, principal=user, role=Role.ML_ENGINEER)
    ingest(Principal(upstream_bot), project, run_event("extract", outputs=[dataset("raw")]))
    ingest(
        Principal(ml_engineer),
        project,
        run_event("prepare", inputs=[dataset("raw")], outputs=[dataset("features", version="1")]),
    )
    ingest(Principal(other_bot), project, run_event("report", inputs=[dataset("features")], outputs=[dataset("dash")]))
    # Another version of the features, written by someone else, is not upstream of version 1.
    ingest(Principal(other_bot), project, run_event("prepare-v2", outputs=[dataset("features", version="2")]))
    ingest(
        Principal(ml_engineer),
        project,
        run_event("train", inputs=[dataset("features", version="1")], run_facets=model_facet("fraud-gbm", 1)),
    )
    assert lineage_agents(model_version) == {upstream_bot.pk, ml_engineer.pk}


def test_lineage_agents_follow_registry_links_too(project, ml_engineer, model_version, admin_user):
    from governance.provenance.models import ModelVersionDataset

    bot = UserFactory(username="ingest-bot")
    from governance.accounts.models import Role
    from governance.accounts.services import role_grant

    role_grant(actor=Principal(admin_user), project=project, principal=bot, role=Role.ML_ENGINEER)
    ingest(Principal(bot), project, run_event("prepare", outputs=[dataset("features", version="1")]))
    version = DatasetVersion.objects.get(dataset__name="features", version="1")
    assert lineage_agents(model_version) == set()
    ModelVersionDataset.objects.create(model_version=model_version, dataset_version=version, role="trained_on")
    assert lineage_agents(model_version) == {bot.pk}


def test_lineage_agents_of_several_versions_walked_together_are_each_ones_own(
    project, ml_engineer, model_version, admin_user
):
    """The officer's queue walks every request's version at once; each still gets only its own upstream."""
    from governance.accounts.models import Role
    from governance.accounts.services import role_grant
    from governance.provenance.graph import lineage_agents_many

    second = ModelVersion.objects.create(
        model=model_version.model,
        version=2,
        artifact_uri="s3://models/2",
        artifact_sha256=hashlib.sha256(b"2").hexdigest(),
        signature={},
        created_by=ml_engineer,
    )
    bots = [UserFactory(username=f"bot-{n}") for n in (1, 2, 3)]
    for bot in bots:
        role_grant(actor=Principal(admin_user), project=project, principal=bot, role=Role.ML_ENGINEER)
    # v1: raw (bot-1) -> features@1 (engineer) -> v1; v2: clicks (bot-3) -> features@2 (bot-2) -> v2.
    ingest(Principal(bots[0]), project, run_event("extract", outputs=[dataset("raw")]))
    ingest(
        Principal(ml_engineer),
        project,
        run_event("prepare", inputs=[dataset("raw")], outputs=[dataset("features", version="1")]),
    )
    ingest(
        Principal(ml_engineer),
        project,
        run_event("train", inputs=[dataset("features", version="1")], run_facets=model_facet("fraud-gbm", 1)),
    )
    ingest(Principal(bots[2]), project, run_event("export", outputs=[dataset("clicks")]))
    ingest(
        Principal(bots[1]),
        project,
        run_event("prepare-2", inputs=[dataset("clicks")], outputs=[dataset("features", version="2")]),
    )
    ingest(
        Principal(bots[1]),
        project,
        run_event("train-2", inputs=[dataset("features", version="2")], run_facets=model_facet("fraud-gbm", 2)),
    )

    alone = {version.pk: lineage_agents(version) for version in (model_version, second)}
    assert alone == {model_version.pk: {bots[0].pk, ml_engineer.pk}, second.pk: {bots[1].pk, bots[2].pk}}
    assert lineage_agents_many([model_version, second]) == alone
