"""Monitoring through the API, with checks run in process (Celery eager): monitors and revisions, batches and
their signature check, check runs and reports, alerts, the check gate, voided decisions and suspension."""

import datetime
import hashlib

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from controlplane.models import OutboxMessage
from governance.accounts.access import Principal
from governance.audit.models import AuditEvent
from governance.promotion.models import Decision, Deployment
from governance.promotion.services import policy_publish
from monitoring.api.views import REPORT_CSP
from monitoring.models import Batch, CheckRun, MonitorRevision
from monitoring.services.execution import check_runs_reap
from monitoring.tasks import run_check
from tests.governance.promotion.test_promotion import request_promotion
from tests.governance.registry.test_registry import versions_url
from tests.monitoring.conftest import (
    create_monitor,
    csv_bytes,
    drifted,
    link_reference,
    parquet_bytes,
    same_as_reference,
    upload,
    url,
)

pytestmark = pytest.mark.usefixtures("celery_eager")
flow = pytest.mark.django_db(transaction=True)  # checks run after commit


def actions(project):
    return list(AuditEvent.objects.filter(project=project).values_list("action", flat=True))


# --- Monitors ---


@pytest.mark.django_db
def test_monitors_are_validated_and_revised(api, project, ml_engineer, auditor, deployed):
    engineer = api(ml_engineer)
    bad = engineer.post(url(project, "monitors/"), {"name": "d", "kind": "data_drift", "model": "fraud-gbm",
                        "environment": "production", "config": {"num_method": "nope", "columns": ["age"],
                        "per_column": {"country": {"method": "ks"}}, "extra": 1}}, format="json")  # fmt: skip
    assert bad.status_code == 400
    fields = {d["field"] for d in bad.json()["error"]["details"]}
    assert fields == {"config.extra", "config.num_method", "config.columns", "config.per_column.country.method"}

    monitor = create_monitor(engineer, project, config={"per_column": {"amount": {"method": "psi", "threshold": 0.2}}})
    assert (monitor["revision"], monitor["environment"], monitor["version"]) == (1, "production", 1)
    detail_url = url(project, f"monitors/{monitor['id']}/")
    same = engineer.patch(detail_url, {"config": monitor["config"]}, format="json")
    assert same.json()["revision"] == 1  # the same configuration is no new revision
    changed = engineer.patch(detail_url, {"config": {"max_drifted_columns": 1}}, format="json")
    assert changed.status_code == 200
    assert changed.json()["revision"] == 2
    assert [r["config"] for r in changed.json()["revisions"]] == [monitor["config"], {"max_drifted_columns": 1}]
    assert MonitorRevision.objects.filter(monitor_id=monitor["id"]).count() == 2
    assert api(auditor).patch(detail_url, {"active": False}, format="json").status_code == 403
    duplicate = {"name": monitor["name"], "kind": "data_quality", "model": "fraud-gbm", "version": 1}
    assert engineer.post(url(project, "monitors/"), duplicate, format="json").status_code == 409
    assert {"monitor.created", "monitor.updated"} <= set(actions(project))


@pytest.mark.django_db
def test_outsiders_see_nothing(api, project, ml_engineer, outsider, deployed):
    create_monitor(api(ml_engineer), project)
    stranger = api(outsider)
    for path in ("monitors/", "batches/", "check-runs/", "alerts/", "monitors/1/"):
        assert stranger.get(url(project, path)).status_code == 404


# --- Batches ---


@flow
def test_a_batch_is_checked_when_it_arrives(api, project, ml_engineer, officer, auditor, reference):
    engineer = api(ml_engineer)
    create_monitor(engineer, project)
    create_monitor(engineer, project, kind="data_quality")

    response = upload(engineer, project, same_as_reference(), environment="production")
    assert response.status_code == 201, response.json()
    batch = response.json()
    assert (batch["row_count"], batch["version"], batch["environment"], batch["kind"]) == (300, 1, "production",
                                                                                           "uploaded")  # fmt: skip
    assert batch["uri"].startswith("storage://projects/fraud/batches/")
    assert {run["kind"]: run["state"] for run in batch["runs"]} == {"data_drift": "passed", "data_quality": "passed"}
    stored = Batch.objects.get(pk=batch["id"])
    assert default_storage.exists(stored.storage_path) and stored.storage_path.endswith(".parquet")

    again = upload(engineer, project, same_as_reference(), environment="production")
    assert again.status_code == 200 and again.json()["id"] == batch["id"]  # pipelines retry

    # The governance officer reads the run: per-column scores and the Evidently report.
    reviewer = api(officer)
    run_id = next(r["id"] for r in batch["runs"] if r["kind"] == "data_drift")
    run = reviewer.get(url(project, f"check-runs/{run_id}/")).json()
    assert run["attempts"] == 1 and run["finished_at"] and run["duration_seconds"] is not None
    assert {r["column"]: (r["method"], r["drifted"]) for r in run["results"]} == {
        "amount": ("ks", False), "country": ("chi2_contingency", False), "score": ("ks", False)}  # fmt: skip
    assert run["results"][0]["p_value"] == 1.0 and run["results"][0]["threshold"] == 0.05
    # The drift engine's verdict: Benjamini-Hochberg over the p-value columns.
    assert run["results"][0]["adjusted_p_value"] == 1.0 and run["results"][0]["flagged"] is False
    assert "Benjamini-Hochberg" in run["verdict"]
    assert run["report"]["state"] == "ready" and run["report"]["sampled"] is False
    html = api(auditor).get(run["report"]["html"], HTTP_ACCEPT="text/html")
    assert html.status_code == 200
    assert html["Content-Security-Policy"] == REPORT_CSP
    assert html["Content-Type"].startswith("text/html")
    assert b"<script" in b"".join(html.streaming_content)
    snapshot = reviewer.get(run["report"]["json"])
    assert snapshot.status_code == 200 and snapshot["Content-Security-Policy"] == REPORT_CSP
    assert {"batch.uploaded", "check.passed"} <= set(actions(project))
    assert reviewer.get(url(project, "check-runs/"), {"state": "passed", "kind": "data_quality"}).json()["count"] == 1


@flow
def test_columns_that_miss_the_signature_are_refused(api, project, ml_engineer, reference):
    engineer = api(ml_engineer)
    missing = upload(engineer, project, same_as_reference().drop(columns=["country"]), environment="production")
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "signature_mismatch"
    assert [(d["column"], d["code"]) for d in missing.json()["error"]["details"]] == [("country", "missing_column")]

    wrong = same_as_reference()
    wrong["amount"] = "lots"
    refused = upload(engineer, project, wrong, environment="production")
    assert refused.status_code == 400
    assert "amount" in refused.json()["error"]["message"]
    assert refused.json()["error"]["details"][0]["code"] == "wrong_type"
    assert not Batch.objects.exists()
    folder = f"projects/fraud/batches/{reference.model_links.get().model_version_id}"
    assert not default_storage.exists(folder) or default_storage.listdir(folder)[1] == []  # nothing left behind


@flow
def test_parquet_uploads_and_storage_uris(api, project, ml_engineer, reference, settings):
    engineer = api(ml_engineer)
    create_monitor(engineer, project)
    parquet = upload(engineer, project, parquet_bytes(same_as_reference(2)), name="b.parquet", version=1)
    assert parquet.status_code == 201, parquet.json()
    assert parquet.json()["environment"] is None and parquet.json()["runs"] == []  # the monitor watches production

    default_storage.save("projects/fraud/incoming/good.parquet", _file(parquet_bytes(same_as_reference(3))))
    registered = engineer.post(url(project, "batches/"), {"model": "fraud-gbm", "environment": "production",
                               "uri": "storage://projects/fraud/incoming/good.parquet", "sha256": "a" * 64},
                               format="json")  # fmt: skip
    assert registered.status_code == 201, registered.json()
    assert registered.json()["runs"][0]["state"] == "passed"

    default_storage.save("projects/fraud/incoming/bad.parquet",
                         _file(parquet_bytes(same_as_reference(4).drop(columns="amount"))))  # fmt: skip
    bad = engineer.post(
        url(project, "batches/"),
        {
            "model": "fraud-gbm",
            "environment": "production",
            "uri": "storage://projects/fraud/incoming/bad.parquet",
            "sha256": "b" * 64,
        },
        format="json",
    )
    run = CheckRun.objects.get(batch_id=bad.json()["id"])
    assert run.state == "error" and "missing columns: amount" in run.error  # the worker names them
    elsewhere = engineer.post(
        url(project, "batches/"),
        {"model": "fraud-gbm", "version": 1, "uri": "storage://projects/other/x.parquet", "sha256": "c" * 64},
        format="json",
    )
    assert elsewhere.status_code == 400

    settings.TOLLGATE_MAX_BATCH_BYTES = 1024
    assert upload(engineer, project, same_as_reference(5), version=1).status_code == 413


@pytest.mark.django_db
def test_an_uppercase_hash_is_accepted_and_stored_lowercase(api, project, ml_engineer, version):
    data = parquet_bytes(same_as_reference())
    path = default_storage.save("projects/fraud/incoming/upper.parquet", _file(data))
    sha256 = hashlib.sha256(data).hexdigest()
    registered = api(ml_engineer).post(url(project, "batches/"), {"model": "fraud-gbm", "version": 1,
                                       "uri": f"storage://{path}", "sha256": sha256.upper()},
                                       format="json")  # fmt: skip
    assert registered.status_code == 201, registered.json()
    assert registered.json()["sha256"] == sha256
    assert Batch.objects.get(pk=registered.json()["id"]).sha256 == sha256


def _file(data: bytes):
    return ContentFile(data)


# --- Check runs: run now, revisions, failures, alerts ---


@flow
def test_run_now_returns_the_existing_run_until_the_configuration_changes(api, project, ml_engineer, officer,
                                                                          reference):  # fmt: skip
    engineer = api(ml_engineer)
    monitor = create_monitor(engineer, project)
    batch = upload(engineer, project, same_as_reference(), environment="production").json()
    first = batch["runs"][0]["id"]
    again = api(officer).post(url(project, "check-runs/"), {"monitor": monitor["id"]}, format="json")
    assert again.status_code == 200 and again.json()["id"] == first

    engineer.patch(url(project, f"monitors/{monitor['id']}/"), {"config": {"num_threshold": 0.01}}, format="json")
    rerun = engineer.post(url(project, "check-runs/"), {"monitor": monitor["id"], "batch": batch["id"]}, format="json")
    assert rerun.status_code == 201
    assert (rerun.json()["revision"], rerun.json()["state"]) == (2, "passed")
    assert {r["threshold"] for r in rerun.json()["results"] if r["method"] == "ks"} == {0.01}


@flow
def test_a_failing_check_of_a_deployed_version_raises_an_alert(api, project, ml_engineer, officer, auditor,
                                                                 reference):  # fmt: skip
    engineer = api(ml_engineer)
    create_monitor(engineer, project)
    batch = upload(engineer, project, drifted(), environment="production").json()
    run = batch["runs"][0]
    assert run["state"] == "failed" and "amount, country" in run["verdict"]

    alerts = api(auditor).get(url(project, "alerts/"), {"acknowledged": False}).json()["results"]
    assert len(alerts) == 1
    assert (alerts[0]["check_run"], alerts[0]["environment"], alerts[0]["suspended"]) == (run["id"], "production",
                                                                                          True)  # fmt: skip
    assert Deployment.objects.get().state == "suspended"  # the default policy suspends production deployments
    ack_url = url(project, f"alerts/{alerts[0]['id']}/acknowledge/")
    assert api(auditor).post(ack_url, {}, format="json").status_code == 403
    acknowledged = api(officer).post(ack_url, {"comment": "looking into it"}, format="json")
    assert acknowledged.status_code == 200 and acknowledged.json()["acknowledged_by"] == "officer"
    assert api(officer).post(ack_url, {}, format="json").status_code == 409
    assert {"check.failed", "alert.raised", "alert.acknowledged"} <= set(actions(project))


@flow
def test_the_default_policy_suspends_a_production_deployment_whose_check_fails(api, project, ml_engineer, officer,
                                                                                reference):  # fmt: skip
    engineer = api(ml_engineer)
    create_monitor(engineer, project)
    run = upload(engineer, project, drifted(), environment="production").json()["runs"][0]
    deployment = Deployment.objects.get()
    assert deployment.state == "suspended"
    assert deployment.state_reason.startswith(f"automatically: check run {run['id']} (data_drift) failed: ")
    verify = api(officer).post(
        url(project, "deployments/fraud-gbm/production/verify/"),
        {"artifact_sha256": deployment.model_version.artifact_sha256},
        format="json",
    )
    assert (verify.json()["allowed"], verify.json()["reason"]) == (
        False, f"the deployment is suspended: {deployment.state_reason}")  # fmt: skip
    assert api(officer).get(url(project, "alerts/")).json()["results"][0]["suspended"] is True
    assert "deployment.suspended" in actions(project)


@flow
def test_a_policy_may_turn_automatic_suspension_off(api, project, ml_engineer, officer, reference):
    document = {"environments": {"production": {"limited": [{"kind": "approvals", "min": 1}]}},
                "suspend_on_failed_check": []}  # fmt: skip
    policy_publish(actor=Principal(officer), project=project, source=document)
    engineer = api(ml_engineer)
    create_monitor(engineer, project)
    assert upload(engineer, project, drifted(), environment="production").json()["runs"][0]["state"] == "failed"
    deployment = Deployment.objects.get()
    assert deployment.state == "active"
    verify = api(officer).post(
        url(project, "deployments/fraud-gbm/production/verify/"),
        {"artifact_sha256": deployment.model_version.artifact_sha256},
        format="json",
    )
    assert verify.json()["allowed"] is True
    assert api(officer).get(url(project, "alerts/")).json()["results"][0]["suspended"] is False
    assert "deployment.suspended" not in actions(project)


# --- The check gate and voided decisions ---


@pytest.fixture
def high_risk(api, project, ml_engineer, high_risk_version):
    """Version 1, a high-risk model not deployed anywhere, with reference data and both monitors."""
    engineer, version = api(ml_engineer), high_risk_version
    link_reference(project, ml_engineer, version)
    create_monitor(engineer, project, version=1)
    create_monitor(engineer, project, kind="data_quality", version=1)
    return version


def check_gates(client, project):
    dry = client.get(f"{versions_url(project)}1/gates/", {"environment": "production"}).json()
    assert dry["risk_tier"] == "high"
    return [(g["spec"]["check_kind"], g["status"], g["evidence"].get("check_run")) for g in dry["gates"]
            if g["kind"] == "check"]  # fmt: skip


@flow
def test_the_check_gate_follows_the_latest_batch_window(api, project, ml_engineer, officer, high_risk):
    engineer = api(ml_engineer)
    assert check_gates(engineer, project) == [("data_drift", "failed", None), ("data_quality", "failed", None)]

    now = timezone.now()

    def window(end):
        return {"window_start": (end - datetime.timedelta(hours=1)).isoformat(), "window_end": end.isoformat()}

    good = upload(engineer, project, same_as_reference(), version=1, **window(now)).json()
    runs = {r["kind"]: r["id"] for r in good["runs"]}
    assert check_gates(engineer, project) == [("data_drift", "passed", runs["data_drift"]),
                                              ("data_quality", "passed", runs["data_quality"])]  # fmt: skip

    # An older window that drifted does not override the latest one.
    old = upload(engineer, project, drifted(), version=1, **window(now - datetime.timedelta(days=1)))
    assert {r["state"] for r in old.json()["runs"]} == {"failed"}
    assert [s for _, s, _ in check_gates(engineer, project)] == ["passed", "passed"]

    # A newer drifted window closes the gate.
    new = upload(engineer, project, drifted(seed=12), version=1, **window(now + datetime.timedelta(hours=1)))
    assert [s for _, s, _ in check_gates(engineer, project)] == ["failed", "failed"]
    assert {r["state"] for r in new.json()["runs"]} == {"failed"}

    # Evidence older than max_age_hours does not count.
    CheckRun.objects.filter(batch_id=new.json()["id"]).delete()
    CheckRun.objects.update(finished_at=now - datetime.timedelta(hours=169))
    gates = api(officer).get(f"{versions_url(project)}1/gates/", {"environment": "production"}).json()["gates"]
    reasons = [g["reason"] for g in gates if g["kind"] == "check"]
    assert all("must be at most 168 hours old" in reason for reason in reasons)


@flow
def test_a_failing_run_voids_earlier_decisions_and_a_passing_one_does_not(api, project, ml_engineer, officer,
                                                                          high_risk):  # fmt: skip
    engineer = api(ml_engineer)
    upload(engineer, project, same_as_reference(), version=1)
    request_id = request_promotion(engineer, project).json()["id"]
    approved = api(officer).post(url(project, f"promotion-requests/{request_id}/approve/"), {}, format="json")
    assert approved.status_code == 200
    decision = Decision.objects.get()
    assert sorted(decision.check_runs) == sorted(CheckRun.objects.values_list("pk", flat=True))

    upload(engineer, project, same_as_reference(9), version=1)  # passing runs void nothing
    decision.refresh_from_db()
    assert decision.voided_at is None

    failing = upload(engineer, project, drifted(), version=1).json()
    decision.refresh_from_db()
    assert decision.voided_at is not None
    assert any(f"check run {run['id']} " in decision.void_reason for run in failing["runs"])
    assert "promotion.voided" in actions(project)
    assert not api(officer).get(url(project, "alerts/")).json()["results"]  # not deployed: no alert


# --- Faults handled in process: transient errors, the reaper ---


@flow
def test_a_transient_storage_error_is_retried(api, project, ml_engineer, reference, monkeypatch):
    from monitoring.services import execution

    real, calls = execution._read_table, []

    def flaky(path, config):
        calls.append(path)
        if len(calls) == 1:
            raise OSError("storage hiccup")
        return real(path, config)

    monkeypatch.setattr(execution, "_read_table", flaky)
    engineer = api(ml_engineer)
    create_monitor(engineer, project)
    run = upload(engineer, project, same_as_reference(), environment="production").json()["runs"][0]
    run = CheckRun.objects.get(pk=run["id"])
    assert (run.state, run.attempts) == ("passed", 2)


@flow
def test_a_run_whose_task_gives_up_on_the_database_is_published_again_by_the_outbox(
    api, project, ml_engineer, reference, monkeypatch
):
    from django.db import OperationalError

    from controlplane.outbox import outbox_republish_due
    from monitoring.services import execution

    real, calls = execution._claim, []

    def database_down(*args, **kwargs):
        calls.append(args)
        raise OperationalError("the database is down")

    monkeypatch.setattr(execution, "_claim", database_down)
    engineer = api(ml_engineer)
    create_monitor(engineer, project)
    run_id = upload(engineer, project, same_as_reference(), environment="production").json()["runs"][0]["id"]
    message = OutboxMessage.objects.get(task_name=execution.RUN_TASK, kwargs__run_id=run_id)
    assert len(calls) == run_check.max_retries + 1  # Celery's retries, in process at once
    assert (CheckRun.objects.get(pk=run_id).state, message.state) == ("queued", "pending")  # not lost

    monkeypatch.setattr(execution, "_claim", real)
    assert outbox_republish_due(now=timezone.now() + datetime.timedelta(hours=2)) == 1  # the sweeper's beat
    run = CheckRun.objects.get(pk=run_id)
    assert (run.state, run.attempts) == ("passed", 1)


@flow
def test_a_permanent_error_is_not_retried(api, project, ml_engineer, reference):
    engineer = api(ml_engineer)
    create_monitor(engineer, project)
    data = parquet_bytes(same_as_reference().drop(columns=["country"]))  # the web process reads a URI batch not
    path = default_storage.save("projects/fraud/batches/incoming/b.parquet", ContentFile(data))
    registered = engineer.post(url(project, "batches/"), {"model": "fraud-gbm", "environment": "production",
                               "uri": f"storage://{path}", "sha256": hashlib.sha256(data).hexdigest()},
                               format="json")  # fmt: skip
    assert registered.status_code == 201, registered.json()
    run = CheckRun.objects.get(pk=registered.json()["runs"][0]["id"])
    assert (run.state, run.attempts, run.report_state) == ("error", 1, "none")
    assert "missing columns: country" in run.error


@flow
def test_the_reaper_requeues_lost_runs_then_times_them_out(api, project, ml_engineer, officer, high_risk, settings):
    settings.TOLLGATE_CHECK_MAX_ATTEMPTS = 2
    engineer = api(ml_engineer)
    upload(engineer, project, same_as_reference(), version=1)
    run = CheckRun.objects.get(kind="data_drift")
    # As if a worker had claimed it and died: still running, long ago.
    CheckRun.objects.filter(pk=run.pk).update(state="running", attempts=1, claimed_at=timezone.now()
                                              - datetime.timedelta(hours=1))  # fmt: skip
    assert check_runs_reap()["requeued"] == 1  # and it ran again, in process
    run.refresh_from_db()
    assert (run.state, run.attempts) == ("passed", 2)

    CheckRun.objects.filter(pk=run.pk).update(state="running", claimed_at=timezone.now() - datetime.timedelta(hours=1))
    assert check_runs_reap() == {"requeued": 0, "timed_out": 1, "released": 0}
    run.refresh_from_db()
    assert run.state == "timed_out" and "hard time limit" in run.error
    gates = dict((k, s) for k, s, _ in check_gates(engineer, project))
    assert gates["data_drift"] == "failed"  # timed out counts as not passed


@pytest.mark.parametrize(
    ("recorded", "elapsed", "state"),
    [(600, 450, "running"), (30, 100, "passed")],
    ids=["a longer limit than the reaper's is waited for", "a shorter one is not"],
)
@flow
def test_the_reaper_goes_by_the_hard_limit_the_worker_recorded(api, project, ml_engineer, high_risk, settings,
                                                                recorded, elapsed, state):  # fmt: skip
    settings.TOLLGATE_CHECK_TIME_LIMIT, settings.TOLLGATE_CHECK_REAP_MARGIN_SECONDS = 360, 60  # the reaper's own
    upload(api(ml_engineer), project, same_as_reference(), version=1)
    run = CheckRun.objects.get(kind="data_drift")
    now = timezone.now()
    CheckRun.objects.filter(pk=run.pk).update(state="running", attempts=1, time_limit_seconds=recorded,
                                              claimed_at=now - datetime.timedelta(seconds=elapsed))  # fmt: skip
    check_runs_reap(now=now)  # re-queued past the recorded limit plus the margin, and then run in process
    run.refresh_from_db()
    assert run.state == state


@pytest.mark.django_db
def test_results_are_fenced_by_attempt(project, ml_engineer, high_risk, django_capture_on_commit_callbacks):
    from monitoring.services import batches, execution

    with django_capture_on_commit_callbacks(execute=False):
        batch = batches.batch_upload(actor=Principal(ml_engineer), project=project, model_version=high_risk,
                                     file=_named(csv_bytes(same_as_reference())))  # fmt: skip
    run = batch.runs[0]
    first = execution._claim(run.pk, "w:1")
    assert first == 1 and execution._claim(run.pk, "w:2") is None  # a duplicate message claims nothing
    assert execution._requeue(run.pk, first, error="reaped")
    second = execution._claim(run.pk, "w:3")
    assert second == 2
    assert execution._finish(run.pk, first, state="passed", verdict="stale") is None  # the old attempt lost
    assert execution._finish(run.pk, second, state="failed", verdict="fresh") == "failed"
    run.refresh_from_db()
    assert (run.state, run.verdict) == ("failed", "fresh")


def _named(data: bytes):
    return ContentFile(data, name="batch.csv")


# --- The drift engine decides; the Evidently report follows it ---


@flow
def test_the_report_of_a_large_batch_is_built_on_a_sample_and_says_so(api, project, ml_engineer, reference,
                                                                      settings):  # fmt: skip
    settings.TOLLGATE_REPORT_MAX_ROWS = 200
    engineer = api(ml_engineer)
    create_monitor(engineer, project)
    batch = upload(engineer, project, same_as_reference(), environment="production").json()
    run = engineer.get(url(project, f"check-runs/{batch['runs'][0]['id']}/")).json()
    assert run["state"] == "passed" and {r["current_rows"] for r in run["results"]} == {300}  # every row
    assert run["report"] | {"html": None, "json": None} == {
        "state": "ready",
        "html": None,
        "json": None,
        "error": "",
        "sampled": True,
        "sample_rows": 200,
        "samples": {"reference": {"rows": 200, "of": 300}, "batch": {"rows": 200, "of": 300}},
    }
    html = b"".join(engineer.get(run["report"]["html"], HTTP_ACCEPT="text/html").streaming_content).decode()
    assert "uniform random sample (reference: 200 of 300 rows; batch: 200 of 300 rows)" in html
    # The report tests each column with the engine's method (the contingency test is registered with Evidently).
    import json

    snapshot = json.loads(b"".join(engineer.get(run["report"]["json"]).streaming_content))
    methods = {m["config"]["column"]: m["config"]["method"] for m in snapshot["metrics"]}
    assert methods["country"] == "chi2_contingency" and methods["amount"] == "ks"


@flow
def test_an_engine_error_ends_the_run_in_error(api, project, ml_engineer, deployed):
    empty = same_as_reference()
    empty["amount"] = float("nan")
    link_reference(project, ml_engineer, deployed, frame=empty)
    engineer = api(ml_engineer)
    create_monitor(engineer, project, config={"columns": ["amount"]})
    run = upload(engineer, project, same_as_reference(), environment="production").json()["runs"][0]
    run = CheckRun.objects.get(pk=run["id"])
    assert (run.state, run.attempts, run.report_state) == ("error", 1, "none")
    assert "column 'amount' should contain numerical values only" in run.error  # the engine's DriftError
