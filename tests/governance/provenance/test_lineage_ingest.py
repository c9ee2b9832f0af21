"""OpenLineage ingest: the real client against a live server, strict validation, stored once, projected."""

import gzip
import hashlib
import json
import threading
import uuid
from datetime import UTC, datetime

import attr
import pytest
import requests
from django.db import IntegrityError, connection, transaction
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    RunFacet,
    column_lineage_dataset,
    dataset_version_dataset,
    datasource_dataset,
    parent_run,
    schema_dataset,
    source_code_location_job,
)
from openlineage.client.transport.http import ApiKeyTokenProvider, HttpConfig, HttpTransport

from governance.accounts.access import Principal
from governance.accounts.models import Role
from governance.accounts.services import service_account_create
from governance.audit.models import AuditEvent
from governance.provenance.models import (
    Dataset,
    DatasetVersion,
    LineageEvent,
    LineageGraphEdge,
    LineageJob,
    LineageNode,
    LineageRun,
    LineageRunDataset,
)
from tests.factories import ModelVersionFactory, RegisteredModelFactory
from tests.governance.provenance.lineage_events import dataset, facet, ingest, model_facet, run_event
from tests.worker import wait_for

URL = "/api/v1/lineage"


@attr.define
class TollgateModelVersionRunFacet(RunFacet):
    """The custom run facet a training pipeline adds to name the model version it produced."""

    model: str
    version: int


@pytest.fixture
def pipeline(project, admin_user):
    """A CI pipeline's service account (ml_engineer) and its key, pinned to the project."""
    account, _, raw_key = service_account_create(
        actor=Principal(admin_user), project=project, name="airflow", role=Role.ML_ENGINEER
    )
    return account, raw_key


@pytest.fixture
def model_version(project, ml_engineer):
    model = RegisteredModelFactory(project=project, name="fraud-gbm", owner=ml_engineer)
    return ModelVersionFactory(
        model=model,
        artifact_uri="s3://models/fraud/1/model.onnx",
        artifact_sha256=hashlib.sha256(b"model").hexdigest(),
        signature={},
    )


def post(client, event, url=URL, **extra):
    return client.post(url, json.dumps(event), content_type="application/json", **extra)


def _client_event(run_id, state, *, inputs=(), outputs=(), job="prepare", run_facets=None, job_facets=None):
    return RunEvent(
        eventType=state,
        eventTime=datetime.now(UTC).isoformat(),
        run=Run(runId=run_id, facets=run_facets or {}),
        job=Job(namespace="airflow", name=job, facets=job_facets or {}),
        inputs=list(inputs),
        outputs=list(outputs),
        producer="https://example.org/fraud-pipeline",
    )


@pytest.mark.django_db(transaction=True)
def test_a_pipeline_using_only_the_openlineage_client_appears_in_the_graph(
    live_server, project, pipeline, model_version, auditor, api
):
    account, raw_key = pipeline
    transport = HttpTransport(
        HttpConfig(url=live_server.url, auth=ApiKeyTokenProvider({"api_key": raw_key}), retry={"total": 0})
    )
    client = OpenLineageClient(transport=transport)
    schema = schema_dataset.SchemaDatasetFacet(
        fields=[
            schema_dataset.SchemaDatasetFacetFields(name="amount", type="DOUBLE"),
            schema_dataset.SchemaDatasetFacetFields(name="country", type="VARCHAR"),
        ]
    )
    raw = InputDataset(
        namespace="s3://fraud",
        name="raw/transactions",
        facets={"dataSource": datasource_dataset.DatasourceDatasetFacet(name="s3://fraud", uri="s3://fraud")},
    )
    features = OutputDataset(
        namespace="s3://fraud",
        name="features",
        facets={
            "schema": schema,
            "version": dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion="2024-06-01"),
            "columnLineage": column_lineage_dataset.ColumnLineageDatasetFacet(
                fields={
                    "amount": column_lineage_dataset.Fields(
                        inputFields=[
                            column_lineage_dataset.InputField(
                                namespace="s3://fraud", name="raw/transactions", field="amt"
                            )
                        ]
                    )
                }
            ),
        },
    )
    code = {
        "sourceCodeLocation": source_code_location_job.SourceCodeLocationJobFacet(
            type="git", url="https://git.example/fraud"
        )
    }
    prepare = str(uuid.uuid4())
    client.emit(_client_event(prepare, RunState.START, inputs=[raw], job_facets=code))
    client.emit(_client_event(prepare, RunState.COMPLETE, inputs=[raw], outputs=[features], job_facets=code))

    train = str(uuid.uuid4())
    trained_from = InputDataset(
        namespace="s3://fraud",
        name="features",
        facets={"version": dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion="2024-06-01")},
    )
    facets = {
        "tollgate_modelVersion": TollgateModelVersionRunFacet(model="fraud-gbm", version=1),
        "parent": parent_run.ParentRunFacet(
            run=parent_run.Run(runId=prepare), job=parent_run.Job(namespace="airflow", name="fraud_dag")
        ),
    }
    client.emit(_client_event(train, RunState.COMPLETE, job="train", inputs=[trained_from], run_facets=facets))

    # Stored as received, projected, and attributed to the key's principal.
    assert LineageEvent.objects.filter(project=project).count() == 3
    assert all(e.received_by == account for e in LineageEvent.objects.all())
    prepare_run = LineageRun.objects.get(run_id=prepare)
    assert (prepare_run.state, prepare_run.agent) == ("COMPLETE", account)
    assert prepare_run.started_at and prepare_run.ended_at
    assert LineageJob.objects.get(name="prepare").facets["sourceCodeLocation"]["url"] == "https://git.example/fraud"
    observed = DatasetVersion.objects.get(dataset__name="features", version="2024-06-01")
    assert (observed.kind, observed.sha256, observed.created_by) == ("observed", None, account)
    assert observed.schema == [{"name": "amount", "type": "DOUBLE"}, {"name": "country", "type": "VARCHAR"}]
    assert Dataset.objects.get(name="raw/transactions").owner == account
    train_run = LineageRun.objects.get(run_id=train)
    assert train_run.model_version == model_version
    assert str(train_run.parent_run_id) == prepare

    # The auditor walks the model version back to its source data.
    graph = api(auditor).get("/api/v1/lineage/", {"nodeId": "model:fraud-gbm:1", "direction": "upstream", "depth": 10})
    assert graph.status_code == 200, graph.json()
    ids = [node["id"] for node in graph.json()["graph"]]
    assert ids == [
        "model:fraud-gbm:1",
        "job:airflow:train",
        "dataset:s3://fraud:features",
        "job:airflow:prepare",
        "dataset:s3://fraud:raw/transactions",
    ]
    assert graph.json()["truncated"] is False
    features_node = graph.json()["graph"][2]
    assert features_node["data"]["currentVersion"]["kind"] == "observed"
    assert features_node["inEdges"] == [{"origin": "job:airflow:prepare", "destination": "dataset:s3://fraud:features"}]


def test_the_ingest_answers_with_and_without_the_trailing_slash(api, project, pipeline):
    _, raw_key = pipeline
    client = api()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert post(client, run_event("a"), url="/api/v1/lineage").status_code == 201
    assert post(client, run_event("b"), url="/api/v1/lineage/").status_code == 201
    assert LineageRun.objects.count() == 2


def test_the_same_event_twice_is_stored_once_and_audited_once(api, project, ml_engineer):
    client = api(ml_engineer, project=project)
    body = json.dumps(run_event("prepare", inputs=[dataset("raw")], outputs=[dataset("features", version="1")]))
    first = client.post(URL, body, content_type="application/json")
    second = client.post(URL, body, content_type="application/json")
    assert first.status_code == 201, first.json()
    assert second.status_code == 200
    assert second.json()["status"] == "duplicate"
    assert first.json()["sha256"] == second.json()["sha256"] == hashlib.sha256(body.encode()).hexdigest()
    stored = LineageEvent.objects.get()
    assert stored.body == body and stored.received_by == ml_engineer
    assert AuditEvent.objects.filter(project=project, action="lineage.ingested").count() == 1
    audited = AuditEvent.objects.get(action="lineage.ingested")
    assert audited.diff["inputs"] == ["s3://fraud/raw"]
    assert audited.diff["outputs"] == ["s3://fraud/features@1"]
    assert audited.diff["job"] == "pipelines/prepare"


def test_an_event_that_changes_nothing_is_stored_but_not_audited(api, project, ml_engineer):
    client = api(ml_engineer, project=project)
    run_id = str(uuid.uuid4())
    post(client, run_event("prepare", run_id=run_id, inputs=[dataset("raw")]))
    again = post(client, run_event("prepare", run_id=run_id, event_type="OTHER", inputs=[dataset("raw")]))
    assert again.status_code == 201 and again.json()["changed"] is False
    assert LineageEvent.objects.count() == 2
    assert AuditEvent.objects.filter(action="lineage.ingested").count() == 1


def test_an_invalid_event_is_refused_with_an_error_per_field_and_nothing_stored(api, project, ml_engineer):
    event = run_event("prepare", inputs=[dataset("raw")])
    event["run"]["runId"] = "not-a-uuid"
    event["eventTime"] = "2024-06-01T10:00:00"  # no zone
    event["eventType"] = "DONE"
    event["inputs"][0]["name"] = 42
    event["job"]["facets"] = {"sourceCodeLocation": facet("SourceCodeLocationJobFacet", type="git")}
    event["outputs"] = [{"namespace": "s3://fraud", "name": "x", "facets": {"schema": {"fields": []}}}]
    del event["producer"]
    event["extra"] = True
    response = post(api(ml_engineer, project=project), event)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    fields = {detail["field"] for detail in response.json()["error"]["details"]}
    assert fields == {
        "extra",
        "eventTime",
        "eventType",
        "producer",
        "run.runId",
        "inputs[0].name",
        "job.facets.sourceCodeLocation.url",
        "outputs[0].facets.schema._producer",
        "outputs[0].facets.schema._schemaURL",
    }
    assert not LineageEvent.objects.exists() and not LineageRun.objects.exists() and not Dataset.objects.exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda e: e.pop("run"), "run"),
        (lambda e: e.pop("schemaURL"), "schemaURL"),
        (lambda e: e["job"].pop("namespace"), "job.namespace"),
        (lambda e: e.update(eventTime="2024-06-01"), "eventTime"),
        (lambda e: e.update(eventTime=1717236000), "eventTime"),
        (lambda e: e.update(producer="not a uri"), "producer"),
        (lambda e: e["run"].update(runId="0190e4f1a2b34c5d8e9f0a1b2c3d4e5f"), "run.runId"),
        (lambda e: e.update(inputs={"namespace": "a"}), "inputs"),
        (lambda e: e["run"]["facets"].update(parent=facet("ParentRunFacet", run={"runId": "x"})), None),
        (lambda e: e["run"]["facets"].update(model_facet("fraud-gbm", "1")), None),
    ],
)
def test_each_structural_rule_is_enforced(api, project, ml_engineer, change, field):
    event = run_event("prepare")
    change(event)
    response = post(api(ml_engineer, project=project), event)
    assert response.status_code == 400, response.json()
    fields = [detail["field"] for detail in response.json()["error"]["details"]]
    if field:
        assert field in fields
    assert not LineageEvent.objects.exists()


def test_malformed_json_and_other_media_types_are_refused(api, project, ml_engineer):
    client = api(ml_engineer, project=project)
    assert client.post(URL, '{"eventTime": NaN}', content_type="application/json").status_code == 400
    assert client.post(URL, '{"a": 1, "a": 2}', content_type="application/json").status_code == 400
    assert client.post(URL, "eventTime=now", content_type="application/x-www-form-urlencoded").status_code == 415


def test_a_gzip_body_from_the_client_is_accepted(api, project, ml_engineer):
    body = json.dumps(run_event("prepare")).encode()
    client = api(ml_engineer, project=project)
    response = client.post(URL, gzip.compress(body), content_type="application/json", HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 201, response.json()
    assert LineageEvent.objects.get().sha256 == hashlib.sha256(body).hexdigest()


def test_ingest_needs_a_key_pinned_to_a_project(api, project, ml_engineer):
    unpinned = post(api(ml_engineer), run_event("prepare"))
    assert unpinned.status_code == 400
    assert unpinned.json()["error"]["code"] == "project_key_required"
    session = api()
    session.force_login(ml_engineer)
    assert post(session, run_event("prepare")).status_code == 400
    assert not LineageEvent.objects.exists()


def test_auditors_and_read_only_keys_cannot_ingest(api, project, auditor, ml_engineer):
    refused = post(api(auditor, project=project), run_event("prepare"))
    assert refused.status_code == 403
    assert post(api(ml_engineer, project=project, read_only=True), run_event("prepare")).status_code == 403
    assert not LineageEvent.objects.exists()
    assert AuditEvent.objects.filter(project=project, action="access.denied").exists()


def test_a_batch_reports_success_per_event_and_stores_each_as_sent(api, project, ml_engineer):
    good = run_event("prepare", outputs=[dataset("features")])
    bad = run_event("train")
    bad["run"]["runId"] = "nope"
    other = run_event("score")
    texts = [json.dumps(good), json.dumps(bad), json.dumps(good, indent=1), json.dumps(good)]
    body = "[ " + ",\n".join(texts) + " ]"
    response = api(ml_engineer, project=project).post("/api/v1/lineage/batch/", body, content_type="application/json")
    assert response.status_code == 200, response.json()
    results = response.json()["results"]
    # The same event in other bytes (indented) is the same event: stored once, as first received.
    assert [r["status"] for r in results] == ["created", "invalid", "duplicate", "duplicate"]
    assert results[1]["error"]["details"][0]["field"] == "run.runId"
    assert response.json()["status"] == "partial_success"
    assert response.json()["summary"] == {"received": 4, "successful": 3, "failed": 1}
    assert list(LineageEvent.objects.values_list("body", flat=True)) == [texts[0]]
    assert results[0]["sha256"] == results[2]["sha256"]
    assert results[0]["sha256"] == hashlib.sha256(texts[0].encode()).hexdigest()
    empty = api(ml_engineer, project=project).post("/api/v1/lineage/batch/", "[]", content_type="application/json")
    assert empty.json()["summary"]["received"] == 0
    single = api(ml_engineer, project=project).post(
        "/api/v1/lineage/batch/", json.dumps(other), content_type="application/json"
    )
    assert single.status_code == 400


def _altered(event: dict) -> dict:
    """The same run, eventType and eventTime with other content: an output the first event did not name."""
    return {**event, "outputs": [{**dataset("features", version="2"), "outputFacets": {}}]}


@pytest.mark.django_db(transaction=True)
def test_an_altered_replay_from_the_client_is_409_naming_the_stored_event_and_stores_nothing(
    live_server, project, pipeline
):
    _, raw_key = pipeline
    transport = HttpTransport(
        HttpConfig(url=live_server.url, auth=ApiKeyTokenProvider({"api_key": raw_key}), retry={"total": 0})
    )
    client = OpenLineageClient(transport=transport)
    run_id, at = str(uuid.uuid4()), "2024-06-01T10:00:00+00:00"
    raw = InputDataset(namespace="s3://fraud", name="raw/transactions")
    features = OutputDataset(namespace="s3://fraud", name="features")
    original = attr.evolve(_client_event(run_id, RunState.COMPLETE, inputs=[raw]), eventTime=at)
    client.emit(original)
    stored = LineageEvent.objects.get()
    events, datasets = AuditEvent.objects.count(), Dataset.objects.count()

    altered = attr.evolve(original, outputs=[features])
    try:
        client.emit(altered)
    except requests.HTTPError as raised:  # no ExceptionInfo: its traceback would keep the client's connection
        refused = raised.response
    else:
        pytest.fail("the altered replay was accepted")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "lineage_event_conflict"
    assert f"sha256 {stored.sha256}" in error["message"]
    assert error["details"] == [{"sha256": stored.sha256, "runId": run_id, "eventType": "COMPLETE",
                                 "eventTime": "2024-06-01T10:00:00+00:00",
                                 "received_at": stored.received_at.isoformat()}]  # fmt: skip
    assert list(LineageEvent.objects.values_list("sha256", flat=True)) == [stored.sha256]
    assert (AuditEvent.objects.count(), Dataset.objects.count()) == (events, datasets)
    assert not LineageRunDataset.objects.filter(direction="output").exists()

    client.emit(original)  # the identical replay is still the stored event
    assert LineageEvent.objects.count() == 1
    transport.close()


def test_the_same_event_in_other_bytes_is_the_stored_one(api, project, ml_engineer):
    client = api(ml_engineer, project=project)
    event = run_event("prepare", inputs=[dataset("raw")])
    first = client.post(URL, json.dumps(event), content_type="application/json")
    again = client.post(URL, json.dumps(event, indent=2, sort_keys=True), content_type="application/json")
    assert first.status_code == 201
    assert again.status_code == 200
    assert (again.json()["status"], again.json()["sha256"]) == ("duplicate", first.json()["sha256"])
    assert LineageEvent.objects.get().body == json.dumps(event)


def test_a_batch_refuses_an_altered_replay_by_itself(api, project, ml_engineer):
    event = run_event("prepare", inputs=[dataset("raw")], event_time="2024-06-01T10:00:00+00:00")
    texts = [json.dumps(event), json.dumps(_altered(event)), json.dumps(run_event("score"))]
    response = api(ml_engineer, project=project).post(
        "/api/v1/lineage/batch/", "[" + ",".join(texts) + "]", content_type="application/json"
    )
    assert response.status_code == 200, response.json()
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["created", "refused", "created"]
    assert results[1]["error"]["code"] == "lineage_event_conflict"
    assert results[1]["error"]["details"][0]["sha256"] == results[0]["sha256"]
    assert response.json()["summary"] == {"received": 3, "successful": 2, "failed": 1}
    assert set(LineageEvent.objects.values_list("body", flat=True)) == {texts[0], texts[2]}


@pytest.mark.postgres
def test_the_database_refuses_a_second_event_with_the_same_identity(project, ml_engineer):
    event = run_event("prepare", event_time="2024-06-01T10:00:00+00:00")
    stored = ingest(Principal(ml_engineer), project, event).event
    with pytest.raises(IntegrityError, match="lineage_event_identity"), transaction.atomic():
        LineageEvent.objects.create(
            project=project, sha256="0" * 64, body=json.dumps(_altered(event)), event_type=stored.event_type,
            event_time=stored.event_time, run_id=stored.run_id, received_by=ml_engineer,
        )  # fmt: skip
    assert LineageEvent.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_altered_replay_racing_the_original_is_409(api, project, ml_engineer):
    """The altered replay arrives while the original's transaction is open: it waits on the identity
    constraint, then finds the original committed and answers 409 (not a 500, not a second event)."""
    event = run_event("prepare", event_time="2024-06-01T10:00:00+00:00")
    client, answer, done = api(ml_engineer, project=project), {}, threading.Event()

    def replay():
        try:
            answer["response"] = post(client, _altered(event))
        finally:
            done.set()
            connection.close()

    def blocked():
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid' AND NOT granted")
            return cursor.fetchone()[0] > 0

    with transaction.atomic():
        ingest(Principal(ml_engineer), project, event)
        thread = threading.Thread(target=replay)
        thread.start()
        wait_for(lambda: done.is_set() or blocked(), message="the replay to wait on the original")
    thread.join(timeout=30)
    assert answer["response"].status_code == 409, answer["response"].json()
    assert answer["response"].json()["error"]["code"] == "lineage_event_conflict"
    assert list(LineageEvent.objects.values_list("body", flat=True)) == [json.dumps(event)]


def test_observed_versions_never_overwrite_registered_ones(api, project, ml_engineer):
    registered = Dataset.objects.create(project=project, namespace="s3://fraud", name="features", owner=ml_engineer)
    DatasetVersion.objects.create(
        dataset=registered, version="1", kind="uri", uri="s3://fraud/features/1", created_by=ml_engineer,
        sha256=hashlib.sha256(b"features").hexdigest(),
    )  # fmt: skip
    post(api(ml_engineer, project=project), run_event("prepare", outputs=[dataset("features", version="1")]))
    version = DatasetVersion.objects.get(dataset=registered)
    assert version.kind == "uri" and version.sha256
    assert LineageRunDataset.objects.get().dataset_version == version
    assert Dataset.objects.count() == 1


def test_a_run_names_a_registered_model_version_or_is_refused(api, project, ml_engineer, model_version):
    client = api(ml_engineer, project=project)
    unknown = post(client, run_event("train", run_facets=model_facet("fraud-gbm", 7)))
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "unknown_model_version"
    assert not LineageEvent.objects.exists()
    known = post(client, run_event("train", inputs=[dataset("features")], run_facets=model_facet("fraud-gbm", 1)))
    assert known.status_code == 201
    model_node = LineageNode.objects.get(key="model:fraud-gbm:1")
    assert LineageGraphEdge.objects.filter(src__key="job:pipelines:train", dst=model_node).exists()


def test_a_run_stays_with_its_job_and_finished_runs_stay_finished(api, project, ml_engineer):
    client = api(ml_engineer, project=project)
    run_id = str(uuid.uuid4())
    post(client, run_event("prepare", run_id=run_id, event_type="COMPLETE", event_time="2024-06-01T10:05:00Z"))
    late_start = post(
        client, run_event("prepare", run_id=run_id, event_type="START", event_time="2024-06-01T10:00:00Z")
    )
    assert late_start.status_code == 201
    run = LineageRun.objects.get()
    assert run.state == "COMPLETE"
    assert run.started_at.isoformat() == "2024-06-01T10:00:00+00:00"
    assert run.ended_at.isoformat() == "2024-06-01T10:05:00+00:00"
    moved = post(client, run_event("other-job", run_id=run_id))
    assert moved.status_code == 409
    assert LineageEvent.objects.count() == 2


def test_facets_outside_the_interpreted_ones_are_kept(api, project, ml_engineer):
    custom = {"nominalTime": facet("NominalTimeRunFacet", nominalStartTime="2024-06-01T00:00:00Z")}
    source = {"sourceCodeLocation": facet("SourceCodeLocationJobFacet", type="git", url="https://git.example/x")}
    post(api(ml_engineer, project=project), run_event("prepare", run_facets=custom, job_facets=source))
    assert LineageRun.objects.get().facets["nominalTime"]["nominalStartTime"] == "2024-06-01T00:00:00Z"
    assert LineageJob.objects.get().facets == source
    deleted = {"sourceCodeLocation": {**source["sourceCodeLocation"], "_deleted": True}}
    post(api(ml_engineer, project=project), run_event("prepare", job_facets=deleted))
    assert LineageJob.objects.get().facets == {}


@pytest.mark.parametrize("operation", ["update", "delete"])
def test_stored_events_are_append_only(api, project, ml_engineer, operation):
    from django.db import DatabaseError, transaction

    post(api(ml_engineer, project=project), run_event("prepare"))
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        if operation == "update":
            LineageEvent.objects.update(body="{}")
        else:
            LineageEvent.objects.all().delete()
    assert LineageEvent.objects.count() == 1


def test_the_demo_training_run_is_reported_once(project, pipeline, model_version, ml_engineer):
    from governance.management.commands._demo_lineage import seed_lineage
    from governance.provenance.graph import lineage_agents

    account, _ = pipeline
    train = Dataset.objects.create(project=project, namespace="s3://demo", name="train", owner=ml_engineer)
    version = DatasetVersion.objects.create(
        dataset=train, version="1", kind="uri", sha256="a" * 64, schema=[{"name": "amount", "type": "float"}]
    )
    seed_lineage(project, account, model_version, [version])
    seed_lineage(project, account, model_version, [version])
    assert LineageEvent.objects.count() == 2
    run = LineageRun.objects.get()
    assert (run.state, run.model_version, run.agent) == ("COMPLETE", model_version, account)
    assert LineageRunDataset.objects.get().dataset_version == version
    assert lineage_agents(model_version) == {account.pk}
