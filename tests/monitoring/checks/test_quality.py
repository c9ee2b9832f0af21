"""The Evidently checks and reports (``monitoring.checks.quality``, ``monitoring.checks.reports``), on small in-memory
frames (no database)."""

import json

import numpy as np
import pandas as pd
import pytest

from monitoring.checks import definitions, quality, reports
from tests.monitoring.conftest import drifted, reference_frame, same_as_reference

COLUMNS = {"amount": "numerical", "country": "categorical", "score": "numerical"}


def by_column(results, method=None):
    return {r.column: r for r in results if method is None or r.method == method}


def test_data_like_the_reference_does_not_drift():
    results = quality.compute_drift(reference_frame(), same_as_reference(), {"columns": COLUMNS})
    assert [r.column for r in results] == ["amount", "country", "score"]
    assert not any(r.drifted for r in results)
    # Evidently's defaults for a reference of at most 1000 rows: K-S and chi-square, p-values at 0.05.
    assert {r.column: (r.method, r.threshold) for r in results} == {
        "amount": ("ks", 0.05), "country": ("chisquare", 0.05), "score": ("ks", 0.05),
    }  # fmt: skip
    assert all(r.p_value == r.score for r in results)
    assert quality.verdict("data_drift", results, {}) == (True, "0 of 3 column(s) drifted")


def test_shifted_amounts_and_new_countries_drift():
    results = by_column(quality.compute_drift(reference_frame(), drifted(), {"columns": COLUMNS}))
    assert results["amount"].drifted and results["amount"].p_value < 0.05
    assert results["country"].drifted
    assert not results["score"].drifted
    passed, reason = quality.verdict("data_drift", list(results.values()), {})
    assert not passed and reason == "2 of 3 column(s) drifted: amount, country"
    assert quality.verdict("data_drift", list(results.values()), {"max_drifted_columns": 2})[0] is True


def test_per_column_methods_and_thresholds_are_used():
    config = {"columns": COLUMNS, "num_method": "wasserstein", "per_column": {"country": {"method": "psi",
              "threshold": 5.0}, "score": {"threshold": 0.5}}}  # fmt: skip
    results = by_column(quality.compute_drift(reference_frame(), drifted(), config))
    assert (results["amount"].method, results["amount"].threshold, results["amount"].p_value) == ("wasserstein", 0.1,
                                                                                                  None)  # fmt: skip
    assert results["amount"].drifted and results["amount"].score >= 0.1
    assert (results["country"].method, results["country"].threshold) == ("psi", 5.0)
    assert not results["country"].drifted  # a lenient threshold
    assert (results["score"].method, results["score"].threshold) == ("wasserstein", 0.5)


def test_quality_measures_missing_out_of_range_unseen_and_rows():
    current = drifted()
    current.loc[:29, "score"] = np.nan  # 10 % missing
    results = quality.compute_quality(reference_frame(), current, {"columns": COLUMNS, "min_rows": 10})
    measures = {(r.column, r.method): r for r in results}
    assert measures[("score", "missing_share")].score == pytest.approx(0.1)
    assert measures[("score", "missing_share")].drifted
    assert measures[("amount", "out_of_range_share")].drifted
    assert measures[("country", "unseen_share")].score > 0.3
    assert measures[("*", "row_count")].score == 300 and not measures[("*", "row_count")].drifted
    passed, reason = quality.verdict("data_quality", results, {})
    assert not passed and "country unseen_share" in reason

    clean = quality.compute_quality(reference_frame(), same_as_reference(), {"columns": COLUMNS})
    assert quality.verdict("data_quality", clean, {})[0] is True
    too_few = quality.compute_quality(reference_frame(), same_as_reference().head(5), {"columns": COLUMNS,
                                                                                     "min_rows": 100})  # fmt: skip
    assert by_column(too_few, "row_count")["*"].drifted


def test_a_configured_range_replaces_the_reference_range():
    config = {"columns": {"amount": "numerical"}, "per_column": {"amount": {"range": [0, 1_000_000]}}}
    results = by_column(quality.compute_quality(reference_frame(), drifted(), config), "out_of_range_share")
    assert results["amount"].score == 0 and not results["amount"].drifted


def test_a_missing_column_is_an_input_error():
    with pytest.raises(definitions.CheckInputError, match="current data has no column 'country'"):
        quality.compute_drift(reference_frame(), same_as_reference().drop(columns="country"), {"columns": COLUMNS})
    with pytest.raises(definitions.CheckInputError, match="no rows"):
        quality.compute_drift(reference_frame().head(0), same_as_reference(), {"columns": COLUMNS})


def test_the_known_methods_are_evidently_s():
    assert set(quality.drift_methods("numerical")) == definitions.NUMERICAL_METHODS
    assert set(quality.drift_methods("categorical")) == definitions.CATEGORICAL_METHODS


@pytest.mark.parametrize("kind", definitions.KINDS)
def test_the_report_is_a_snapshot_and_a_scripted_page(kind):
    snapshot, html = reports.report(kind, reference_frame(), drifted(), {"columns": COLUMNS})
    assert json.loads(snapshot)["metrics"]
    assert "<script" in html and "<html" in html.lower()


def test_results_are_plain_dicts():
    result = quality.compute_drift(reference_frame(), same_as_reference(), {"columns": {"amount": "numerical"}})[0]
    assert result.as_dict() == {"column": "amount", "method": "ks", "score": 1.0, "threshold": 0.05, "drifted": False,
                                "p_value": 1.0}  # fmt: skip
    assert isinstance(pd.Series([result.score]).iloc[0], float)
