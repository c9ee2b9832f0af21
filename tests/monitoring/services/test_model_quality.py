"""model_quality monitors (issue 10): Evidently's classification and regression metrics against thresholds, on
labels that arrive after the batch -- a new batch revision that re-runs only model_quality."""

import numpy as np
import pandas as pd
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from governance.audit.models import AuditEvent
from monitoring.checks import quality
from monitoring.models import CheckRun
from tests.governance.registry.test_registry import versions_url
from tests.monitoring.conftest import create_monitor, csv_bytes, same_as_reference, upload, url
from tests.worker import wait_for

flow = pytest.mark.django_db(transaction=True)
QUALITY = {"task": "classification", "target": "is_fraud",
           "thresholds": {"accuracy": {"gte": 0.8}, "roc_auc": {"gte": 0.75}}}  # fmt: skip


def with_ids(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(txn_id=[f"t{i:04d}" for i in range(len(frame))])


def good_labels(batch: pd.DataFrame, flip: float = 0.05, seed: int = 3) -> pd.Series:
    """Labels a score of the batch predicts well: 1 above 0.5, a few flipped."""
    rng = np.random.default_rng(seed)
    labels = (batch["score"] > 0.5).astype(int)
    return labels.where(rng.random(len(batch)) > flip, 1 - labels)


def post_labels(client, project, batch_id: int, frame: pd.DataFrame, **fields):
    return client.post(
        url(project, f"batches/{batch_id}/labels/"),
        {"file": SimpleUploadedFile("labels.csv", csv_bytes(frame), content_type="text/csv"), **fields},
        format="multipart",
    )


@pytest.mark.django_db
def test_model_quality_configurations_are_validated(api, project, ml_engineer, deployed):
    engineer = api(ml_engineer)
    bad = engineer.post(url(project, "monitors/"), {"name": "q", "kind": "model_quality", "model": "fraud-gbm",
                        "environment": "production", "config": {"task": "ranking", "prediction": "nope",
                        "thresholds": {"accuracy": {"about": 1}}, "probas_threshold": 2}}, format="json")  # fmt: skip
    assert bad.status_code == 400
    fields = {d["field"] for d in bad.json()["error"]["details"]}
    assert fields == {"config.task", "config.target", "config.prediction", "config.probas_threshold",
                      "config.thresholds.accuracy"}  # fmt: skip
    wrong_metric = {"task": "regression", "target": "y", "thresholds": {"accuracy": {"gte": 0.8}}}
    refused = engineer.post(url(project, "monitors/"), {"name": "q", "kind": "model_quality", "model": "fraud-gbm",
                            "environment": "production", "config": wrong_metric}, format="json")  # fmt: skip
    assert refused.json()["error"]["details"][0]["message"] == "one of mae, rmse, r2, mape for regression"
    assert create_monitor(engineer, project, kind="model_quality", config=QUALITY)["config"] == QUALITY


@pytest.mark.usefixtures("celery_eager")
@flow
def test_labels_make_a_revision_that_reruns_only_model_quality(api, project, ml_engineer, officer, reference):
    engineer = api(ml_engineer)
    create_monitor(engineer, project)
    quality = create_monitor(engineer, project, kind="model_quality", config=QUALITY)
    frame = with_ids(same_as_reference())
    batch = upload(engineer, project, frame, environment="production").json()
    assert [r["kind"] for r in batch["runs"]] == ["data_drift"]  # no labels yet: no model_quality run
    no_labels = engineer.post(url(project, "check-runs/"), {"monitor": quality["id"]}, format="json")
    assert (no_labels.status_code, no_labels.json()["error"]["code"]) == (409, "no_labels")

    # Labels in the batch's row order (no key): revision 2, one new run -- model_quality's.
    labels = pd.DataFrame({"is_fraud": good_labels(frame)})
    labelled = post_labels(engineer, project, batch["id"], labels)
    assert labelled.status_code == 201, labelled.json()
    body = labelled.json()
    assert body["revision"] == 2 and [lab["revision"] for lab in body["labels"]] == [2]
    by_kind = {(r["kind"], r["state"]) for r in body["runs"]}
    assert by_kind == {("data_drift", "passed"), ("model_quality", "passed")}
    assert CheckRun.objects.filter(kind="data_drift").count() == 1  # the drift check did not run again
    run = CheckRun.objects.get(kind="model_quality")
    assert run.batch_revision == 2
    detail = api(officer).get(url(project, f"check-runs/{run.pk}/")).json()
    metrics = {r["column"]: r for r in detail["results"]}
    assert set(metrics) == {"accuracy", "precision", "recall", "f1", "roc_auc", "*"}
    assert metrics["accuracy"]["score"] >= 0.9 and metrics["accuracy"]["threshold"] == 0.8
    assert (metrics["accuracy"]["condition"], metrics["accuracy"]["drifted"]) == ("gte", False)
    assert metrics["*"] == {**metrics["*"], "method": "labelled_rows", "score": 300.0}
    assert detail["report"]["state"] == "ready"
    assert post_labels(engineer, project, batch["id"], labels).status_code == 200  # the same labels again

    # Worse labels joined on a key, for half the rows: revision 3 fails the thresholds.
    rng = np.random.default_rng(5)
    noisy = pd.DataFrame({"txn_id": frame["txn_id"], "is_fraud": rng.integers(0, 2, len(frame))}).head(150)
    keyed = post_labels(engineer, project, batch["id"], noisy, key="txn_id")
    assert keyed.status_code == 201 and keyed.json()["revision"] == 3
    failed = CheckRun.objects.get(kind="model_quality", batch_revision=3)
    assert failed.state == "failed" and "accuracy" in failed.verdict and "150 labelled row(s)" in failed.verdict
    assert CheckRun.objects.filter(kind="data_drift").count() == 1
    assert AuditEvent.objects.filter(action="batch.labels_added").count() == 2

    # The check gate reads model_quality like any kind.
    gates = engineer.get(f"{versions_url(project)}1/gates/", {"environment": "production"}).json()
    assert gates["environment"] == "production"
    missing_key = post_labels(engineer, project, batch["id"], noisy.head(100), key="order_id")
    assert missing_key.status_code == 400 and missing_key.json()["error"]["details"][0]["field"] == "key"
    short = post_labels(engineer, project, batch["id"], labels.head(10))
    assert short.status_code == 400 and "give the rows in the batch's order" in short.json()["error"]["message"]


def test_regression_metrics_against_thresholds():
    rng = np.random.default_rng(0)
    truth = rng.normal(100, 10, 200)
    frame = pd.DataFrame({"y": truth, "yhat": truth + rng.normal(0, 2, 200)})
    config = {"task": "regression", "target": "y", "prediction": "yhat",
              "thresholds": {"mae": {"lte": 3.0}, "r2": {"gte": 0.99}}}  # fmt: skip
    results = {r.column: r for r in quality.compute_model_quality(frame, config)}
    assert set(results) == {"mae", "rmse", "r2", "mape", "*"}
    assert not results["mae"].drifted and results["mae"].score == pytest.approx(1.6, abs=0.3)
    assert results["r2"].drifted  # about 0.96: below 0.99
    passed, verdict = quality.model_quality_verdict(list(results.values()))
    assert not passed and verdict.startswith("1 metric(s) out of bounds on 200 labelled row(s): r2 0.9")


@pytest.mark.worker
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_labels_rerun_model_quality_on_a_worker(shared_storage, api, project, ml_engineer, reference,
                                                celery_worker_process):  # fmt: skip
    engineer = api(ml_engineer)
    create_monitor(engineer, project)
    create_monitor(engineer, project, kind="model_quality", config=QUALITY)
    frame = same_as_reference()
    batch = upload(engineer, project, frame, environment="production").json()
    drift = wait_for(lambda: CheckRun.objects.filter(kind="data_drift", state="passed").first(), message="drift")
    labelled = post_labels(engineer, project, batch["id"], pd.DataFrame({"is_fraud": good_labels(frame)}))
    assert labelled.status_code == 201
    run = wait_for(lambda: CheckRun.objects.filter(kind="model_quality", state__in=["passed", "failed"]).first(),
                   message="the model_quality run")  # fmt: skip
    assert (run.state, run.batch_revision) == ("passed", 2)
    wait_for(lambda: CheckRun.objects.get(pk=run.pk).report_state == "ready", message="its report")
    assert list(CheckRun.objects.filter(kind="data_drift").values_list("pk", flat=True)) == [drift.pk]
