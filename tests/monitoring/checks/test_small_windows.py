"""Small windows (issue 14, item 13): a window below the size at which its drift methods tell drift from sampling
noise carries a structured warning -- in the run's result, in the report and in the check gate's reason -- and
never suspends a deployment, whatever the policy says. The report says which side it sampled, and only that."""

import json

import numpy as np
import pandas as pd
import pytest

from governance.accounts.access import Principal
from governance.audit.models import AuditEvent
from governance.promotion.models import Deployment
from governance.promotion.services import policy_publish
from monitoring.checks import engine
from monitoring.models import Alert, CheckRun
from monitoring.services.execution import run_below_reliable_size
from monitoring.vocabulary import WINDOW_BELOW_RELIABLE_SIZE
from tests.monitoring.conftest import create_monitor, drifted, link_reference, reference_frame, upload, url

pytestmark = pytest.mark.usefixtures("celery_eager")
flow = pytest.mark.django_db(transaction=True)  # checks run after commit

COLUMNS = {"amount": engine.NUMERICAL, "country": engine.CATEGORICAL, "score": engine.NUMERICAL}


def frames(reference_rows: int, window_rows: int):
    return reference_frame(reference_rows, seed=3), reference_frame(window_rows, seed=4)


# --- The engine: reliable sizes and the warning ---


def test_a_small_window_against_a_large_reference_is_warned_about_with_what_suits_it():
    reference, window = frames(20_000, 50)
    result = engine.drift_frames(reference, window, engine.DriftConfig.from_dict({"columns": COLUMNS}))
    assert {c.column: c.method for c in result.columns} == {
        "amount": "wasserstein", "score": "wasserstein", "country": "jensenshannon"}  # fmt: skip
    assert {c.column: c.reliable_rows for c in result.columns} == {"amount": 1500, "score": 1500, "country": 1000}
    [warning] = result.warnings
    assert {k: v for k, v in warning.items() if k != "message"} == {
        "code": WINDOW_BELOW_RELIABLE_SIZE,
        "columns": ["amount", "score", "country"],
        "methods": ["jensenshannon", "wasserstein"],
        "rows": 50,
        "reference_rows": 20_000,
        "effective_rows": 49,
        "reliable_rows": 1500,
        "suitable_methods": {"numerical": "ks", "categorical": "chi2_contingency"},
    }
    assert warning["message"] == (
        "The window has 50 rows: too few for wasserstein (1,500 rows; 2 columns), jensenshannon (1,000 rows; 1 "
        "column) to tell drift of the threshold's size from sampling noise, so the verdicts of these columns may be "
        'noise, not drift. For small windows use tests, which hold their false-alarm rate from 30 rows: "num_method": '
        '"ks", "cat_method": "chi2_contingency" in the monitor\'s configuration; or send larger windows.'
    )
    assert result.as_dict()["warnings"] == result.warnings


def test_the_tests_suit_a_small_window_and_a_large_window_suits_the_distances():
    reference, window = frames(20_000, 50)
    tests = engine.DriftConfig.from_dict({"columns": COLUMNS, "num_method": "ks", "cat_method": "chi2_contingency"})
    assert engine.drift_frames(reference, window, tests).warnings == []
    reference, window = frames(20_000, 2_000)  # an effective 1,818 rows
    assert engine.drift_frames(reference, window, engine.DriftConfig.from_dict({"columns": COLUMNS})).warnings == []


def test_the_reference_counts_too_and_a_wider_threshold_needs_fewer_rows():
    reference, window = frames(1_200, 1_200)  # equal windows: an effective 600 rows
    [warning] = engine.drift_frames(reference, window, engine.DriftConfig.from_dict({"columns": COLUMNS})).warnings
    assert (warning["rows"], warning["effective_rows"]) == (1200, 600)
    assert warning["message"].startswith("The window has 1,200 rows (against 1,200 reference rows: an effective "
                                         "sample of 600): too few for wasserstein")  # fmt: skip
    # Distance noise shrinks like 1/sqrt(n): twice the threshold, a quarter of the rows.
    assert engine.reliable_rows("wasserstein", 0.2) == 375
    assert engine.reliable_rows("psi", 0.2) == 500  # PSI is a divergence: like 1/n
    assert engine.reliable_rows("ks", 0.01) == 30


def test_the_reliable_sizes_are_what_the_engine_documents():
    """The thresholds live in one place; a method the engine computes has one."""
    assert set(engine.RELIABLE_ROWS) == set(engine.METHODS)
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"x": rng.normal(size=50_000)})
    config = engine.DriftConfig.from_dict({"columns": {"x": engine.NUMERICAL}})
    profile = engine.profile_reference(reference, config)
    # No drift at all, at the reliable size: the noise stays under the threshold (measured at 0.3 % per column).
    alarms = sum(engine.drift(profile, pd.DataFrame({"x": rng.normal(size=1_500)}), config).drift_detected
                 for _ in range(100))  # fmt: skip
    assert alarms <= 3
    # At 50 rows most windows alarm: the reason for the warning.
    alarms = sum(engine.drift(profile, pd.DataFrame({"x": rng.normal(size=50)}), config).drift_detected
                 for _ in range(100))  # fmt: skip
    assert alarms >= 50


# --- What the user sees: the run, the report, the gate; suspension ---


@pytest.fixture
def large_reference(project, ml_engineer, deployed):
    """Version 1 runs in production; its reference has 5,000 rows, so the automatic methods are distances."""
    return link_reference(project, ml_engineer, deployed, frame=reference_frame(5_000))


def suspending_policy(project, officer):
    document = {"environments": {"production": {"limited": [{"kind": "approvals", "min": 1}]}},
                "suspend_on_failed_check": ["production"]}  # fmt: skip
    policy_publish(actor=Principal(officer), project=project, source=document)


@flow
def test_a_small_window_fails_with_a_warning_and_never_suspends(api, project, ml_engineer, officer, auditor,
                                                                large_reference, settings):  # fmt: skip
    settings.TOLLGATE_REPORT_MAX_ROWS = 1_000
    suspending_policy(project, officer)
    engineer = api(ml_engineer)
    create_monitor(engineer, project)
    batch = upload(engineer, project, drifted(rows=50), environment="production").json()
    run = engineer.get(url(project, f"check-runs/{batch['runs'][0]['id']}/")).json()
    assert run["state"] == "failed"
    [warning] = run["warnings"]
    assert (warning["code"], warning["rows"], warning["reliable_rows"]) == (WINDOW_BELOW_RELIABLE_SIZE, 50, 1500)
    assert warning["columns"] == ["amount", "country", "score"]
    assert warning["message"].startswith("The window has 50 rows: too few for wasserstein")
    assert {r["column"]: (r["current_rows"], r["reliable_rows"]) for r in run["results"]} == {
        "amount": (50, 1500), "country": (50, 1000), "score": (50, 1500)}  # fmt: skip
    assert run_below_reliable_size(CheckRun.objects.get(pk=run["id"]))

    # The policy suspends production on a failed check, but not on this one: an alert says why.
    deployment = Deployment.objects.get()
    assert deployment.state == "active"
    [alert] = api(officer).get(url(project, "alerts/")).json()["results"]
    assert (alert["suspended"], alert["check_run"]) == (False, run["id"])
    assert alert["message"].endswith("; the deployment was not suspended: the window is below the size at which "
                                     "the check's methods are reliable (see the run's warnings)")  # fmt: skip
    raised = AuditEvent.objects.get(action="alert.raised")
    assert (raised.diff["suspend"], raised.diff["not_suspended"]) == (False, WINDOW_BELOW_RELIABLE_SIZE)
    assert not AuditEvent.objects.filter(action="deployment.suspended").exists()
    verify_url = url(project, "deployments/fraud-gbm/production/verify/")
    verify = api(officer).post(verify_url, {"artifact_sha256": deployment.model_version.artifact_sha256},
                               format="json")  # fmt: skip
    assert verify.json()["allowed"] is True

    # The report shows the warning, and says it sampled the reference only: the 50-row batch is shown whole.
    assert run["report"] | {"html": None, "json": None} == {
        "state": "ready", "html": None, "json": None, "error": "", "sampled": True, "sample_rows": 1000,
        "samples": {"reference": {"rows": 1000, "of": 5000}}}  # fmt: skip
    html = b"".join(api(auditor).get(run["report"]["html"], HTTP_ACCEPT="text/html").streaming_content).decode()
    assert "The window has 50 rows: too few for wasserstein" in html
    assert ("uniform random sample (reference: 1,000 of 5,000 rows); the batch is shown whole; the check&#x27;s "
            "verdict and per-column results used every row") in html  # fmt: skip
    assert "batch: " not in html
    snapshot = json.loads(b"".join(api(auditor).get(run["report"]["json"]).streaming_content))
    assert {m["config"]["column"] for m in snapshot["metrics"] if "column" in m["config"]} == set(COLUMNS)


@flow
def test_a_window_of_reliable_size_that_fails_suspends_as_the_policy_says(api, project, ml_engineer, officer,
                                                                          large_reference):  # fmt: skip
    suspending_policy(project, officer)
    engineer = api(ml_engineer)
    create_monitor(engineer, project)
    batch = upload(engineer, project, drifted(rows=3_000), environment="production").json()  # effective 1,875
    run = CheckRun.objects.get(pk=batch["runs"][0]["id"])
    assert (run.state, run.warnings, run_below_reliable_size(run)) == ("failed", [], False)
    assert Deployment.objects.get().state == "suspended"
    assert Alert.objects.get().suspended is True


@flow
def test_the_check_gate_carries_the_small_window_warning(api, project, ml_engineer, high_risk_version):
    from tests.governance.registry.test_registry import versions_url

    engineer = api(ml_engineer)
    link_reference(project, ml_engineer, high_risk_version, frame=reference_frame(5_000))
    create_monitor(engineer, project, version=1)
    upload(engineer, project, drifted(rows=50), version=1)
    dry = engineer.get(f"{versions_url(project)}1/gates/", {"environment": "production"}).json()
    drift = next(g for g in dry["gates"] if g["kind"] == "check" and g["spec"]["check_kind"] == "data_drift")
    assert drift["status"] == "failed"
    assert " -- The window has 50 rows: too few for wasserstein" in drift["reason"]
