"""What a new user meets first in monitoring (issue 14, items 3, 4 and 11): a monitor without reference data
waits visibly in ``needs_reference`` (no run queued, the check gate and the answer say how to link one);
monitoring before deployment answers 409 with the version-scoped way; empty batches and half windows are refused
at upload, saying why; alerts name the monitor that raised them. Checks run in process (Celery eager)."""

import datetime

import pandas as pd
import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from controlplane.models import OutboxMessage
from governance.provenance.models import DatasetVersion
from monitoring.models import Batch, CheckRun, Monitor
from monitoring.services.retention import raw_data_prune
from monitoring.services.runs import RUN_TASK
from tests.governance.registry.test_registry import versions_url
from tests.monitoring.conftest import (
    create_monitor,
    drifted,
    link_reference,
    parquet_bytes,
    same_as_reference,
    upload,
    url,
)

pytestmark = pytest.mark.usefixtures("celery_eager")
flow = pytest.mark.django_db(transaction=True)  # checks run after commit

LINK_URL = "/api/v1/projects/fraud/models/fraud-gbm/versions/1/datasets/"


def queued_run_messages() -> int:
    return OutboxMessage.objects.filter(task_name=RUN_TASK).count()


# --- Item 3: reference data ---


@flow
def test_a_drift_monitor_without_reference_data_waits_in_needs_reference(api, project, ml_engineer, deployed):
    engineer = api(ml_engineer)
    monitor = create_monitor(engineer, project)  # accepted, and it says what it is waiting for
    assert (monitor["state"], monitor["active"], monitor["reference"]) == ("needs_reference", True, None)
    assert monitor["state_reason"].startswith("no reference data linked to fraud-gbm v1. A data_drift check")
    assert f"POST {LINK_URL}" in monitor["state_reason"] and "'reference'" in monitor["state_reason"]
    assert monitor["link_reference"] == {
        "method": "POST",
        "url": LINK_URL,
        "body": [{"dataset_version": "<the id of a dataset version uploaded to Tollgate>", "role": "reference"}],
    }
    listed = engineer.get(url(project, "monitors/")).json()["results"]
    assert [(m["name"], m["state"]) for m in listed] == [("data-drift", "needs_reference")]

    # A batch is stored, and no run is queued for the monitor: the batch says which monitor did not run, and why.
    first = upload(engineer, project, same_as_reference(), environment="production")
    assert first.status_code == 201, first.json()
    assert first.json()["runs"] == []
    assert [(n["monitor"], n["monitor_id"], n["reason"]) for n in first.json()["not_checked"]] == [
        ("data-drift", monitor["id"], "needs_reference")]  # fmt: skip
    assert first.json()["not_checked"][0]["link_reference"]["url"] == LINK_URL
    assert (CheckRun.objects.count(), queued_run_messages()) == (0, 0)

    # "Run now" refuses, saying how to link reference data; nothing is queued.
    now = engineer.post(url(project, "check-runs/"), {"monitor": monitor["id"]}, format="json")
    assert now.status_code == 409
    error = now.json()["error"]
    assert error["code"] == "needs_reference"
    assert error["message"].startswith("This monitor needs reference data: no reference data linked to fraud-gbm v1")
    assert error["details"] == [{"monitor": monitor["id"], "link_reference": monitor["link_reference"]}]
    assert (CheckRun.objects.count(), queued_run_messages()) == (0, 0)

    # Linking reference data (the dataset-links endpoint, role reference) takes it out of needs_reference at once.
    reference = link_reference_through_the_api(engineer, project)
    shown = engineer.get(url(project, f"monitors/{monitor['id']}/")).json()
    assert (shown["state"], shown["state_reason"], shown["link_reference"]) == ("active", None, None)
    assert shown["reference"] == {
        "dataset_version": reference.pk,
        "url": url(project, f"datasets/{reference.dataset_id}/versions/{reference.pk}/"),
    }
    assert engineer.get(url(project, f"batches/{first.json()['id']}/")).json()["not_checked"] == []
    second = upload(engineer, project, drifted(), environment="production").json()
    assert [(r["monitor"], r["state"]) for r in second["runs"]] == [("data-drift", "failed")]
    caught_up = engineer.post(url(project, "check-runs/"), {"monitor": monitor["id"], "batch": first.json()["id"]},
                              format="json")  # fmt: skip
    assert caught_up.status_code == 201 and caught_up.json()["state"] == "passed"


def link_reference_through_the_api(engineer, project) -> DatasetVersion:
    """As the README's tour does it: a dataset, its version uploaded, linked to the version with role reference."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.monitoring.conftest import csv_bytes, reference_frame

    dataset = engineer.post(url(project, "datasets/"), {"namespace": "storage://fraud", "name": "reference",
                            "license": "internal", "classification": "internal"}, format="json")  # fmt: skip
    assert dataset.status_code == 201, dataset.json()
    version = engineer.post(
        url(project, f"datasets/{dataset.json()['id']}/versions/"),
        {"file": SimpleUploadedFile("reference.csv", csv_bytes(reference_frame()), content_type="text/csv")},
        format="multipart",
    )
    assert version.status_code == 201, version.json()
    linked = engineer.post(LINK_URL, [{"dataset_version": version.json()["id"], "role": "reference"}], format="json")
    assert linked.status_code == 201, linked.json()
    return DatasetVersion.objects.get(pk=version.json()["id"])


@flow
def test_the_check_gate_reads_no_reference_data_linked(api, project, ml_engineer, high_risk_version):
    engineer = api(ml_engineer)
    create_monitor(engineer, project, version=1)
    upload(engineer, project, same_as_reference(), version=1)
    dry = engineer.get(f"{versions_url(project)}1/gates/", {"environment": "production"}).json()
    reasons = {g["spec"]["check_kind"]: (g["status"], g["reason"], g["evidence"]) for g in dry["gates"]
               if g["kind"] == "check"}  # fmt: skip
    status, reason, evidence = reasons["data_drift"]
    assert status == "failed"
    assert reason.startswith("no reference data linked to fraud-gbm v1. A data_drift check compares each batch")
    assert evidence["link_reference"]["url"] == LINK_URL
    assert reasons["data_quality"][1].startswith("no reference data linked to fraud-gbm v1. A data_quality check")
    assert CheckRun.objects.count() == 0

    # With reference data and no batch yet, the gate names the version-scoped way to a check.
    link_reference_through_the_api(engineer, project)
    dry = engineer.get(f"{versions_url(project)}1/gates/", {"environment": "production"}).json()
    quality = next(g for g in dry["gates"] if g["kind"] == "check" and g["spec"]["check_kind"] == "data_quality")
    assert quality["reason"] == (
        'no data_quality check has run on this version\'s data: a data_quality monitor of the version ("version": 1; '
        "before it is deployed too) or of its deployment checks each batch sent for the version"
    )


@flow
def test_a_purged_reference_puts_the_monitor_back_in_needs_reference(api, project, admin_user, ml_engineer,
                                                                     reference):  # fmt: skip
    engineer = api(ml_engineer)
    monitor = create_monitor(engineer, project, kind="data_quality")
    assert monitor["state"] == "active" and monitor["reference"]["dataset_version"] == reference.pk
    api(admin_user).patch(url(project, "data-policy/"), {"reference_retention_days": 1}, format="json")
    DatasetVersion.objects.filter(pk=reference.pk).update(created_at=timezone.now() - datetime.timedelta(days=2))
    assert raw_data_prune() == {"batches": 0, "dataset_versions": 1}

    shown = engineer.get(url(project, f"monitors/{monitor['id']}/")).json()
    assert (shown["state"], shown["reference"]) == ("needs_reference", None)
    assert shown["state_reason"].startswith("no readable reference data linked to fraud-gbm v1: the linked dataset "
                                            "version is not stored in Tollgate")  # fmt: skip
    batch = upload(engineer, project, same_as_reference(), environment="production").json()
    assert (batch["runs"], CheckRun.objects.count()) == ([], 0)


@pytest.mark.django_db
def test_a_paused_monitor_says_so_and_a_model_quality_monitor_needs_no_reference(api, project, ml_engineer, deployed):
    engineer = api(ml_engineer)
    drift = create_monitor(engineer, project)
    paused = engineer.patch(url(project, f"monitors/{drift['id']}/"), {"active": False}, format="json").json()
    assert (paused["state"], paused["state_reason"]) == ("paused", 'paused: PATCH the monitor with {"active": true} '
                                                                   "to resume it")  # fmt: skip
    quality = create_monitor(engineer, project, kind="model_quality", config={"task": "regression", "target": "y"})
    assert (quality["state"], quality["reference"], quality["link_reference"]) == ("active", None, None)


# --- Item 4: monitoring before deployment ---


@flow
def test_monitoring_production_before_deployment_is_409_with_the_version_scoped_way(api, project, ml_engineer,
                                                                                    version):  # fmt: skip
    engineer = api(ml_engineer)
    refused = engineer.post(url(project, "monitors/"), {"name": "drift", "kind": "data_drift", "model": "fraud-gbm",
                            "environment": "production"}, format="json")  # fmt: skip
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "not_deployed"
    assert error["message"].startswith("Nothing of 'fraud-gbm' is deployed in production yet. To check a version "
                                       'before it is deployed, give the version instead of the environment '
                                       '("version": 1)')  # fmt: skip
    assert error["details"] == [{"field": "environment", "environment": "production",
                                 "hint": {"model": "fraud-gbm", "version": 1}}]  # fmt: skip
    assert not Monitor.objects.exists()

    batch = upload(engineer, project, same_as_reference(), environment="production")
    assert batch.status_code == 409 and batch.json()["error"]["code"] == "not_deployed"
    assert not Batch.objects.exists()
    assert not default_storage.exists("projects/fraud/batches") or default_storage.listdir("projects/fraud/batches")[
        0] == []  # fmt: skip

    # The way out: the version's own monitor and batches, which its check gate reads.
    link_reference(project, ml_engineer, version)
    create_monitor(engineer, project, version=1)
    checked = upload(engineer, project, same_as_reference(), version=1)
    assert checked.status_code == 201
    assert [(r["kind"], r["state"]) for r in checked.json()["runs"]] == [("data_drift", "passed")]


@pytest.mark.django_db
def test_an_unknown_environment_is_still_400(api, project, ml_engineer, version):
    refused = upload(api(ml_engineer), project, same_as_reference(), environment="moon")
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "No environment 'moon' in this project."


# --- Item 11: batches that cannot be checked are refused at upload ---


@flow
@pytest.mark.parametrize(
    "name, data",
    [("header-only.csv", b"amount,country,score\n"),
     ("empty.parquet", parquet_bytes(pd.DataFrame({"amount": pd.Series([], dtype=float),
                                                   "country": pd.Series([], dtype=str),
                                                   "score": pd.Series([], dtype=float)})))],
)  # fmt: skip
def test_a_batch_without_rows_is_refused_saying_so(api, project, ml_engineer, reference, name, data):
    engineer = api(ml_engineer)
    create_monitor(engineer, project)
    refused = upload(engineer, project, data, name=name, environment="production")
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "empty_batch"
    assert error["message"].startswith("The batch has no rows")
    assert "float" not in error["message"]  # not a type mismatch of a column with no values
    assert (Batch.objects.count(), CheckRun.objects.count()) == (0, 0)


@flow
def test_a_registered_batch_without_rows_ends_in_error_saying_so(api, project, ml_engineer, reference):
    import hashlib

    from django.core.files.base import ContentFile

    engineer = api(ml_engineer)
    create_monitor(engineer, project)
    data = parquet_bytes(pd.DataFrame({"amount": pd.Series([], dtype=float), "country": pd.Series([], dtype=str),
                                       "score": pd.Series([], dtype=float)}))  # fmt: skip
    path = default_storage.save("projects/fraud/batches/incoming/empty.parquet", ContentFile(data))
    registered = engineer.post(url(project, "batches/"), {"model": "fraud-gbm", "environment": "production",
                               "uri": f"storage://{path}", "sha256": hashlib.sha256(data).hexdigest()},
                               format="json")  # fmt: skip
    assert registered.status_code == 201  # the web process reads nothing of a registered batch
    run = CheckRun.objects.get(pk=registered.json()["runs"][0]["id"])
    batch_id = registered.json()["id"]
    assert (run.state, run.error) == ("error", f"batch {batch_id} has no rows: there is nothing to check")


@flow
def test_a_batch_window_is_given_whole_or_not_at_all(api, project, ml_engineer, reference):
    engineer = api(ml_engineer)
    end = timezone.now().replace(microsecond=0)
    start = end - datetime.timedelta(hours=6)
    for given, missing in (({"window_end": end.isoformat()}, "window_start"),
                           ({"window_start": start.isoformat()}, "window_end")):  # fmt: skip
        refused = upload(engineer, project, same_as_reference(), environment="production", **given)
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert error["details"][0]["field"] == missing
        assert "the time span its rows come from" in error["message"]
        assert f"only {next(iter(given))} was given" in error["message"]
    assert not Batch.objects.exists()

    whole = upload(engineer, project, same_as_reference(), environment="production", window_start=start.isoformat(),
                   window_end=end.isoformat()).json()  # fmt: skip
    assert (whole["window_start"], whole["window_end"]) == (start.isoformat().replace("+00:00", "Z"),
                                                            end.isoformat().replace("+00:00", "Z"))  # fmt: skip
    neither = upload(engineer, project, same_as_reference(2), environment="production").json()
    assert neither["window_start"] == neither["window_end"]  # the moment of the upload


@flow
def test_an_alert_names_the_monitor_that_raised_it(api, project, ml_engineer, officer, reference):
    engineer = api(ml_engineer)
    monitor = create_monitor(engineer, project)
    run = upload(engineer, project, drifted(), environment="production").json()["runs"][0]
    alerts = api(officer).get(url(project, "alerts/")).json()["results"]
    assert [(a["monitor"], a["check_run"], a["kind"]) for a in alerts] == [(monitor["id"], run["id"], "check_failed")]


@pytest.mark.django_db
def test_the_monitor_list_shows_each_state_in_a_fixed_number_of_queries(api, project, ml_engineer, deployed,
                                                                        django_assert_max_num_queries):  # fmt: skip
    engineer = api(ml_engineer)
    for index in range(3):
        create_monitor(engineer, project, name=f"drift-{index}")
    create_monitor(engineer, project, kind="model_quality", config={"task": "regression", "target": "y"})
    with django_assert_max_num_queries(8):  # authentication, the page, its count, the revisions: not per monitor
        listed = engineer.get(url(project, "monitors/")).json()["results"]
    assert [m["state"] for m in listed] == ["needs_reference"] * 3 + ["active"]
