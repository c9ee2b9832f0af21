"""Linking a training run to the model version it produced: the run facet, or the run's output being the
version's artifact -- checked at ingest and again at registration, in the key's project only, and said in the
answer (``modelVersion``) whether linked or not."""

import hashlib
import json
import re
import threading
import uuid
from pathlib import Path

import pytest
from django.db import connection, transaction

from governance.accounts.access import Principal
from governance.accounts.models import Role
from governance.accounts.services import role_grant, service_account_create
from governance.audit.models import AuditEvent
from governance.provenance.graph import artifact_datasets, artifact_uris
from governance.provenance.models import Dataset, LineageEvent, LineageGraphEdge, LineageRun
from governance.registry.services import model_version_register
from tests.factories import UserFactory
from tests.governance.provenance.lineage_events import dataset, facet, ingest, model_facet, run_event
from tests.worker import wait_for

README = Path(__file__).resolve().parents[3] / "README.md"
URL = "/api/v1/lineage"
SIGNATURE = {"inputs": [{"name": "amount", "type": "float"}], "outputs": [{"name": "score", "type": "float"}]}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def artifact(name: str, namespace: str = "s3://fraud-models", sha256: str | None = None) -> dict:
    facets = {"tollgate_artifact": facet("TollgateArtifactDatasetFacet", sha256=sha256)} if sha256 else {}
    return {"namespace": namespace, "name": name, "facets": facets}


def post(client, event):
    return client.post(URL, json.dumps(event), content_type="application/json")


def register(client, project, model="fraud-gbm", *, uri, sha256):
    body = {"artifact_uri": uri, "artifact_sha256": sha256, "signature": SIGNATURE}
    return client.post(f"/api/v1/projects/{project.slug}/models/{model}/versions/", body, format="json")


def version_of(client, project, model, number):
    response = client.get(f"/api/v1/projects/{project.slug}/models/{model}/versions/{number}/")
    assert response.status_code == 200, response.json()
    return response.json()


@pytest.fixture
def pipeline(api, project, ml_engineer):
    return api(ml_engineer, project=project)


URI = "s3://fraud-models/fraud-gbm/1/model.onnx"


# Where an output names a URI ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("namespace", "name", "uris"),
    [
        ("s3://fraud-models", "fraud-gbm/1/model.onnx", [URI]),
        ("s3://fraud-models/", "/fraud-gbm/1/model.onnx", [URI]),
        ("s3://fraud-models", "/fraud-gbm/1/model.onnx", [URI]),
        ("mlflow", URI, [URI]),
        ("hdfs://namenode:8020", "/models/x.pkl", ["hdfs://namenode:8020/models/x.pkl"]),
        ("file", "/srv/models/x.pkl", ["file:///srv/models/x.pkl"]),
        ("bigquery", "project.dataset.table", []),
        ("pipelines", "features", []),
    ],
)
def test_an_output_names_the_uri_its_namespace_and_name_make(namespace, name, uris):
    assert artifact_uris(namespace, name) == uris


def test_the_datasets_naming_a_uri_are_found_every_way_it_can_be_cut(project, ml_engineer):
    named = [("s3://fraud-models", "fraud-gbm/1/model.onnx"), ("s3://fraud-models/fraud-gbm", "1/model.onnx"),
             ("s3://", "fraud-models/fraud-gbm/1/model.onnx"), ("mlflow", URI)]  # fmt: skip
    for namespace, name in [*named, ("s3://fraud-models", "fraud-gbm/1"), ("s3://other", "fraud-gbm/1/model.onnx")]:
        Dataset.objects.create(project=project, namespace=namespace, name=name, owner=ml_engineer)
    found = {(d.namespace, d.name) for d in artifact_datasets(project, URI)}
    assert found == set(named)
    Dataset.objects.create(project=project, namespace="file", name="/srv/x.pkl", owner=ml_engineer)
    assert [(d.namespace, d.name) for d in artifact_datasets(project, "file:///srv/x.pkl")] == [("file", "/srv/x.pkl")]


# At ingest ---------------------------------------------------------------------------------------------------


def test_a_completed_run_whose_output_is_the_artifact_is_linked_at_ingest(api, project, ml_engineer, pipeline):
    assert register(pipeline, project, uri=URI, sha256=sha("v1")).status_code == 201
    run_id = str(uuid.uuid4())
    response = post(pipeline, run_event("train", run_id=run_id, inputs=[dataset("features")],
                                        outputs=[artifact("fraud-gbm/1/model.onnx")]))  # fmt: skip
    assert response.status_code == 201, response.json()
    link = response.json()["modelVersion"]
    assert {k: link[k] for k in ("linked", "by", "model", "version", "reason")} == {
        "linked": True, "by": "artifact", "model": "fraud-gbm", "version": 1, "reason": None}  # fmt: skip
    assert (
        link["message"]
        == f"Run {run_id} is linked to fraud-gbm v1: an output of the completed run is its artifact {URI}."
    )
    assert link["outputs"][0]["artifactUris"] == [URI]
    assert link["outputs"][0]["versions"] == [
        {"model": "fraud-gbm", "version": 1, "artifactUri": URI, "artifactSha256": sha("v1")}
    ]
    run = LineageRun.objects.get(run_id=run_id)
    assert (run.model_version.version, run.model_version_link) == (1, "artifact")
    assert LineageGraphEdge.objects.filter(src__key="job:pipelines:train", dst__key="model:fraud-gbm:1").exists()
    audited = AuditEvent.objects.get(action="lineage.ingested")
    assert (audited.diff["model_version"], audited.diff["model_version_link"]) == ("fraud-gbm v1", "artifact")
    runs = version_of(pipeline, project, "fraud-gbm", 1)["lineage_runs"]
    assert [(r["run_id"], r["linked_by"], r["state"], r["job"]) for r in runs] == [
        (run_id, "artifact", "COMPLETE", {"namespace": "pipelines", "name": "train"})
    ]
    assert not AuditEvent.objects.filter(action="lineage.run_linked").exists()


def test_an_output_named_by_the_uri_itself_links_too(project, pipeline):
    register(pipeline, project, uri=URI, sha256=sha("v1"))
    response = post(pipeline, run_event("train", outputs=[artifact(URI, namespace="mlflow")]))
    assert response.status_code == 201
    assert (response.json()["modelVersion"]["linked"], response.json()["modelVersion"]["version"]) == (True, 1)


def test_outputs_of_a_start_event_link_when_the_run_completes(project, pipeline):
    register(pipeline, project, uri=URI, sha256=sha("v1"))
    run_id = str(uuid.uuid4())
    start = post(pipeline, run_event("train", run_id=run_id, event_type="START",
                                     outputs=[artifact("fraud-gbm/1/model.onnx")]))  # fmt: skip
    assert start.status_code == 201
    assert start.json()["modelVersion"]["reason"] == "run_not_complete"
    assert start.json()["modelVersion"]["message"].startswith(f"Run {run_id} is START and names no model version")
    assert LineageRun.objects.get(run_id=run_id).model_version is None
    complete = post(pipeline, run_event("train", run_id=run_id))  # the outputs were reported at START
    assert complete.json()["modelVersion"]["linked"] is True
    assert LineageRun.objects.get(run_id=run_id).model_version_link == "artifact"


def test_a_failed_run_is_never_linked_by_its_outputs(project, pipeline, ml_engineer):
    run_id = str(uuid.uuid4())
    failed = post(pipeline, run_event("train", run_id=run_id, event_type="FAIL",
                                      outputs=[artifact("fraud-gbm/1/model.onnx")]))  # fmt: skip
    assert failed.json()["modelVersion"]["reason"] == "run_not_complete"
    assert register(pipeline, project, uri=URI, sha256=sha("v1")).json()["lineage_runs"] == []
    assert LineageRun.objects.get(run_id=run_id).model_version is None


def test_a_run_without_outputs_says_how_to_link_it(project, pipeline):
    response = post(pipeline, run_event("train", inputs=[dataset("features")]))
    link = response.json()["modelVersion"]
    assert (response.status_code, link["linked"], link["reason"]) == (201, False, "no_outputs")
    assert "tollgate_modelVersion" in link["message"] and "artifact_uri" in link["message"]
    assert link["outputs"] == []


def test_no_version_with_that_artifact_stores_the_run_unlinked_and_says_so(project, pipeline):
    register(pipeline, project, uri="s3://fraud-models/fraud-gbm/2/model.onnx", sha256=sha("v2"))
    run_id = str(uuid.uuid4())
    response = post(pipeline, run_event("train", run_id=run_id, outputs=[artifact("fraud-gbm/1/model.onnx")]))
    assert response.status_code == 201
    link = response.json()["modelVersion"]
    assert (link["linked"], link["by"], link["model"], link["reason"]) == (False, None, None, "no_matching_version")
    assert link["message"] == (
        f"No model version in project 'fraud' has the artifact URI {URI} (an output of run {run_id}). The run is "
        "stored unlinked; it is linked when a version with that artifact_uri is registered in this project, or "
        'name the version with the run facet tollgate_modelVersion ({"model": "<model name>", "version": '
        "<version number>})."
    )
    assert link["outputs"] == [{"namespace": "s3://fraud-models", "name": "fraud-gbm/1/model.onnx",
                                "artifactUris": [URI], "sha256": None, "versions": []}]  # fmt: skip
    assert LineageRun.objects.get(run_id=run_id).model_version is None
    assert LineageEvent.objects.count() == 1


def test_several_versions_with_the_artifact_uri_leave_the_run_unlinked_naming_them(project, pipeline):
    register(pipeline, project, "fraud-gbm", uri=URI, sha256=sha("gbm"))
    register(pipeline, project, "fraud-lr", uri=URI, sha256=sha("lr"))
    run_id = str(uuid.uuid4())
    response = post(pipeline, run_event("train", run_id=run_id, outputs=[artifact("fraud-gbm/1/model.onnx")]))
    link = response.json()["modelVersion"]
    assert (response.status_code, link["linked"], link["reason"]) == (201, False, "several_versions")
    assert [(v["model"], v["version"]) for v in link["outputs"][0]["versions"]] == [("fraud-gbm", 1), ("fraud-lr", 1)]
    assert (
        f"2 model versions in project 'fraud' match the outputs of run {run_id}: fraud-gbm v1, fraud-lr v1."
        in (link["message"])
    )
    assert "tollgate_artifact" in link["message"]
    assert LineageRun.objects.get(run_id=run_id).model_version is None

    # The artifact's hash picks one of them.
    picked = post(pipeline, run_event("train", outputs=[artifact("fraud-gbm/1/model.onnx", sha256=sha("lr"))]))
    assert (picked.json()["modelVersion"]["linked"], picked.json()["modelVersion"]["model"]) == (True, "fraud-lr")


def test_a_sha256_that_differs_leaves_the_run_unlinked_until_a_version_with_it_is_registered(
    project, pipeline, ml_engineer
):
    register(pipeline, project, "fraud-gbm", uri=URI, sha256=sha("v1"))
    run_id = str(uuid.uuid4())
    event = run_event("train", run_id=run_id, outputs=[artifact("fraud-gbm/1/model.onnx", sha256=sha("other"))])
    response = post(pipeline, event)
    link = response.json()["modelVersion"]
    assert (response.status_code, link["linked"], link["reason"]) == (201, False, "sha256_differs")
    assert (
        f"s3://fraud-models/fraud-gbm/1/model.onnx has sha256 {sha('other')}, but fraud-gbm v1 has {sha('v1')}"
        in link["message"]
    )
    assert link["outputs"][0]["sha256"] == sha("other")

    registered = register(pipeline, project, "fraud-retrained", uri=URI, sha256=sha("other"))
    assert registered.status_code == 201
    assert [(r["run_id"], r["linked_by"]) for r in registered.json()["lineage_runs"]] == [(run_id, "artifact")]
    replay = post(pipeline, event)
    assert replay.status_code == 200
    assert (replay.json()["status"], replay.json()["modelVersion"]["model"]) == ("duplicate", "fraud-retrained")


def test_an_invalid_sha256_in_the_artifact_facet_is_refused(project, pipeline):
    response = post(pipeline, run_event("train", outputs=[artifact("fraud-gbm/1/model.onnx", sha256="ABC")]))
    assert response.status_code == 400
    assert {d["field"] for d in response.json()["error"]["details"]} == {"outputs[0].facets.tollgate_artifact.sha256"}
    assert not LineageEvent.objects.exists()


# At registration ---------------------------------------------------------------------------------------------


def test_a_version_registered_after_the_run_links_it_and_audits_the_link(project, pipeline, ml_engineer):
    run_id = str(uuid.uuid4())
    event = run_event("train", run_id=run_id, inputs=[dataset("features")],
                      outputs=[artifact("fraud-gbm/1/model.onnx", sha256=sha("v1"))])  # fmt: skip
    assert post(pipeline, event).json()["modelVersion"]["reason"] == "no_matching_version"

    registered = register(pipeline, project, uri=URI, sha256=sha("v1"))
    assert registered.status_code == 201, registered.json()
    assert [(r["run_id"], r["linked_by"], r["agent"]) for r in registered.json()["lineage_runs"]] == [
        (run_id, "artifact", "mlengineer")
    ]
    run = LineageRun.objects.get(run_id=run_id)
    assert (run.model_version.version, run.model_version_link) == (1, "artifact")
    linked = AuditEvent.objects.get(action="lineage.run_linked")
    assert (linked.actor_id, linked.target_type, linked.target_id) == (ml_engineer.pk, "lineagerun", str(run.pk))
    assert linked.diff == {"run_id": run_id, "job": "pipelines/train", "model_version": "fraud-gbm v1",
                           "by": "artifact", "artifact_uri": URI,
                           "outputs": ["s3://fraud-models/fraud-gbm/1/model.onnx"]}  # fmt: skip
    assert AuditEvent.objects.get(action="model_version.registered").sequence < linked.sequence
    graph = pipeline.get(URL + "/", {"nodeId": "model:fraud-gbm:1", "direction": "upstream"}).json()["graph"]
    assert [node["id"] for node in graph] == ["model:fraud-gbm:1", "job:pipelines:train", "dataset:s3://fraud:features"]

    # The answer to the replayed event says what happened since; retrying the registration links nothing twice.
    replay = post(pipeline, event)
    assert (replay.status_code, replay.json()["status"], replay.json()["modelVersion"]["linked"]) == (
        200, "duplicate", True)  # fmt: skip
    again = register(pipeline, project, uri=URI, sha256=sha("v1"))
    assert (again.status_code, len(again.json()["lineage_runs"])) == (200, 1)
    assert AuditEvent.objects.filter(action="lineage.run_linked").count() == 1
    assert LineageEvent.objects.count() == 1


def test_every_completed_run_that_wrote_the_artifact_links_to_the_one_version(project, pipeline):
    first, retried = str(uuid.uuid4()), str(uuid.uuid4())
    for run_id in (first, retried):
        post(pipeline, run_event("train", run_id=run_id, outputs=[artifact("fraud-gbm/1/model.onnx")]))
    registered = register(pipeline, project, uri=URI, sha256=sha("v1"))
    assert sorted(r["run_id"] for r in registered.json()["lineage_runs"]) == sorted([first, retried])
    assert AuditEvent.objects.filter(action="lineage.run_linked").count() == 2


def test_a_registration_that_makes_the_artifact_ambiguous_links_nothing_and_moves_no_link(project, pipeline):
    linked, waiting = str(uuid.uuid4()), str(uuid.uuid4())
    register(pipeline, project, "fraud-gbm", uri=URI, sha256=sha("gbm"))
    post(pipeline, run_event("train", run_id=linked, outputs=[artifact("fraud-gbm/1/model.onnx")]))
    post(pipeline, run_event("train", run_id=waiting, event_type="START", outputs=[artifact("fraud-gbm/1/model.onnx")]))
    second = register(pipeline, project, "fraud-lr", uri=URI, sha256=sha("lr"))
    assert (second.status_code, second.json()["lineage_runs"]) == (201, [])
    assert LineageRun.objects.get(run_id=linked).model_version.model.name == "fraud-gbm"  # a link stays
    complete = post(pipeline, run_event("train", run_id=waiting))
    assert complete.json()["modelVersion"]["reason"] == "several_versions"
    assert not AuditEvent.objects.filter(action="lineage.run_linked").exists()


# Across projects ---------------------------------------------------------------------------------------------


@pytest.fixture
def other_pipeline(api, other_project):
    engineer = UserFactory(username="other-engineer")
    role_grant(actor=Principal.system(), project=other_project, principal=engineer, role=Role.ML_ENGINEER)
    return api(engineer, project=other_project)


def test_a_version_with_the_same_uri_in_another_project_never_links(project, other_project, pipeline, other_pipeline):
    assert register(other_pipeline, other_project, uri=URI, sha256=sha("v1")).status_code == 201
    run_id = str(uuid.uuid4())
    response = post(pipeline, run_event("train", run_id=run_id, outputs=[artifact("fraud-gbm/1/model.onnx")]))
    link = response.json()["modelVersion"]
    assert (link["linked"], link["reason"], link["outputs"][0]["versions"]) == (False, "no_matching_version", [])
    assert "project 'fraud'" in link["message"] and "other" not in link["message"]

    # Registered later in the other project: still not this project's run.
    elsewhere = register(other_pipeline, other_project, "fraud-lr", uri=URI, sha256=sha("v1"))
    assert (elsewhere.status_code, elsewhere.json()["lineage_runs"]) == (201, [])
    # The other project's own run links to its own version only.
    other_run = post(other_pipeline, run_event("train", outputs=[artifact("fraud-gbm/1/model.onnx", sha256=sha("x"))]))
    assert other_run.json()["modelVersion"]["reason"] == "sha256_differs"
    assert LineageRun.objects.get(run_id=run_id).model_version is None
    assert not AuditEvent.objects.filter(action="lineage.run_linked").exists()


# The facet ---------------------------------------------------------------------------------------------------


def test_the_facet_links_by_name_and_the_answer_says_so(project, pipeline):
    register(pipeline, project, uri=URI, sha256=sha("v1"))
    run_id = str(uuid.uuid4())
    response = post(pipeline, run_event("train", run_id=run_id, run_facets=model_facet("fraud-gbm", 1)))
    assert response.status_code == 201
    assert response.json()["modelVersion"] == {
        "linked": True, "by": "facet", "model": "fraud-gbm", "version": 1, "reason": None, "outputs": [],
        "message": f"Run {run_id} is linked to fraud-gbm v1 by its run facet tollgate_modelVersion.",
    }  # fmt: skip
    assert LineageRun.objects.get(run_id=run_id).model_version_link == "facet"


def test_the_facet_names_the_version_even_when_the_artifact_matched_another(project, pipeline):
    register(pipeline, project, "fraud-gbm", uri=URI, sha256=sha("v1"))
    register(pipeline, project, "fraud-lr", uri="s3://fraud-models/fraud-lr/1/model.onnx", sha256=sha("lr"))
    run_id = str(uuid.uuid4())
    post(pipeline, run_event("train", run_id=run_id, outputs=[artifact("fraud-gbm/1/model.onnx")]))
    moved = post(pipeline, run_event("train", run_id=run_id, event_type="OTHER", run_facets=model_facet("fraud-lr", 1)))
    assert moved.status_code == 409
    assert moved.json()["error"]["code"] == "run_model_version_mismatch"
    assert moved.json()["error"]["message"] == (
        f"Run {run_id} is linked to fraud-gbm v1 (by its output artifact); the event's tollgate_modelVersion "
        "names fraud-lr v1. A run produces one model version."
    )
    same = post(pipeline, run_event("train", run_id=run_id, event_type="OTHER", run_facets=model_facet("fraud-gbm", 1)))
    assert (same.status_code, same.json()["modelVersion"]["by"]) == (201, "facet")


@pytest.mark.parametrize(
    ("where", "name", "field", "says"),
    [
        ("job", "tollgate_modelVersion", "job.facets.tollgate_modelVersion", "is not read in job.facets"),
        ("run", "tollgate_model_version", "run.facets.tollgate_model_version", "is not a Tollgate facet"),
        ("run", "tollgateModelVersion", "run.facets.tollgateModelVersion", "is not a Tollgate facet"),
        ("run", "TOLLGATE_modelVersion", "run.facets.TOLLGATE_modelVersion", "is not a Tollgate facet"),
        ("run", "tollgate_artifact", "run.facets.tollgate_artifact", "is not read in run.facets"),
        ("output", "tollgate_artifact", "outputs[0].outputFacets.tollgate_artifact", "is not read in outputFacets"),
    ],
)
def test_a_facet_named_like_tollgates_in_the_wrong_place_is_refused_naming_the_right_one(
    project, pipeline, where, name, field, says
):
    value = facet("Custom", model="fraud-gbm", version=1, sha256=sha("v1"))
    event = run_event("train", outputs=[artifact("fraud-gbm/1/model.onnx")])
    if where == "job":
        event["job"]["facets"][name] = value
    elif where == "run":
        event["run"]["facets"][name] = value
    else:
        event["outputs"][0]["outputFacets"][name] = value
    response = post(pipeline, event)
    assert response.status_code == 400
    details = {d["field"]: d["message"] for d in response.json()["error"]["details"]}
    assert list(details) == [field]
    assert says in details[field]
    assert (
        "the run facet tollgate_modelVersion" in details[field]
        and "the dataset facet tollgate_artifact" in (details[field])
    )
    assert not LineageEvent.objects.exists() and not LineageRun.objects.exists()


def test_a_batch_says_per_event_whether_its_run_is_linked(project, pipeline):
    register(pipeline, project, uri=URI, sha256=sha("v1"))
    events = [run_event("train", outputs=[artifact("fraud-gbm/1/model.onnx")]), run_event("prepare")]
    response = pipeline.post("/api/v1/lineage/batch/", json.dumps(events), content_type="application/json")
    assert response.status_code == 200
    links = [r["modelVersion"] for r in response.json()["results"]]
    assert [(link["linked"], link["reason"]) for link in links] == [(True, None), (False, "no_outputs")]


# The README's example, with the real client --------------------------------------------------------------------


def readme_example() -> str:
    section = README.read_text().split("#### Linking a training run to its model version\n", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


@pytest.mark.django_db(transaction=True)
def test_the_readmes_client_example_links_both_runs(live_server, project, admin_user, monkeypatch):
    account, _, raw_key = service_account_create(
        actor=Principal(admin_user), project=project, name="ci-pipeline", role=Role.ML_ENGINEER
    )
    for number in (1, 2, 3):  # the tour's version 3, after the demo's two
        model_version_register(
            actor=Principal(account), project=project, model_name="fraud-gbm", signature=SIGNATURE,
            artifact_uri=f"s3://fraud-models/fraud-gbm/{number}/model.onnx",
            artifact_sha256=hashlib.sha256(f"v{number}".encode()).hexdigest(),
        )  # fmt: skip
    monkeypatch.setenv("TG", f"{live_server.url}/api/v1")
    monkeypatch.setenv("CI", raw_key)

    example = {"__name__": "train"}
    exec(compile(readme_example(), "README.md", "exec"), example)  # noqa: S102
    example["client"].transport.close()  # its kept-alive connection would hold the live server's database session

    runs = LineageRun.objects.filter(project=project).order_by("created_at", "id")
    assert [(r.state, r.model_version.version, r.model_version_link, r.agent) for r in runs] == [
        ("COMPLETE", 3, "artifact", account),
        ("COMPLETE", 3, "facet", account),
    ]
    answers = [
        json.loads(e.body)["eventType"] for e in LineageEvent.objects.filter(project=project).order_by("received_at")
    ]
    assert answers == ["START", "COMPLETE", "START", "COMPLETE"]
    audited = AuditEvent.objects.filter(action="lineage.ingested").order_by("sequence")
    assert [a.diff["model_version_link"] for a in audited] == [None, "artifact", None, "facet"]


# Races on PostgreSQL: a registration and a run's completion at the same moment ---------------------------------


def _waiting_on_an_advisory_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        return cursor.fetchone()[0] > 0


def _in_a_thread(call):
    answer, done = {}, threading.Event()

    def run():
        try:
            answer["response"] = call()
        finally:
            done.set()
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, answer, done


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_registration_racing_the_runs_completion_links_it(project, ml_engineer, pipeline):
    """The run's COMPLETE is ingested in an open transaction that found no version; the registration waits on
    the project's artifact lock, then sees the committed run and links it."""
    run_id = str(uuid.uuid4())
    with transaction.atomic():
        result = ingest(Principal(ml_engineer), project,
                        run_event("train", run_id=run_id, outputs=[artifact("fraud-gbm/1/model.onnx")]))  # fmt: skip
        assert result.link.reason == "no_matching_version"
        thread, answer, done = _in_a_thread(lambda: register(pipeline, project, uri=URI, sha256=sha("v1")))
        wait_for(lambda: done.is_set() or _waiting_on_an_advisory_lock(), message="the registration to wait")
    thread.join(timeout=30)
    assert answer["response"].status_code == 201, answer["response"].json()
    assert [r["run_id"] for r in answer["response"].json()["lineage_runs"]] == [run_id]
    assert LineageRun.objects.get(run_id=run_id).model_version_link == "artifact"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_runs_completion_racing_the_registration_links_at_ingest(project, ml_engineer, pipeline):
    """The version is registered in an open transaction; the COMPLETE event waits on the artifact lock, then
    sees the committed version and links the run in its own answer."""
    run_id = str(uuid.uuid4())
    with transaction.atomic():
        model_version_register(actor=Principal(ml_engineer), project=project, model_name="fraud-gbm",
                               artifact_uri=URI, artifact_sha256=sha("v1"), signature=SIGNATURE)  # fmt: skip
        event = run_event("train", run_id=run_id, outputs=[artifact("fraud-gbm/1/model.onnx")])
        thread, answer, done = _in_a_thread(lambda: post(pipeline, event))
        wait_for(lambda: done.is_set() or _waiting_on_an_advisory_lock(), message="the ingest to wait")
    thread.join(timeout=30)
    assert answer["response"].status_code == 201, answer["response"].json()
    assert (answer["response"].json()["modelVersion"]["linked"], answer["response"].json()["modelVersion"]["by"]) == (
        True,
        "artifact",
    )
    assert LineageRun.objects.get(run_id=run_id).model_version.version == 1
