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
    passed, reason = quality.quality_verdict(results)
    assert not passed and "country unseen_share" in reason

    clean = quality.compute_quality(reference_frame(), same_as_reference(), {"columns": COLUMNS})
    assert quality.quality_verdict(clean)[0] is True
    too_few = quality.compute_quality(reference_frame(), same_as_reference().head(5), {"columns": COLUMNS,
                                                                                     "min_rows": 100})  # fmt: skip
    assert by_column(too_few, "row_count")["*"].drifted


def test_a_configured_range_replaces_the_reference_range():
    config = {"columns": {"amount": "numerical"}, "per_column": {"amount": {"range": [0, 1_000_000]}}}
    results = by_column(quality.compute_quality(reference_frame(), drifted(), config), "out_of_range_share")
    assert results["amount"].score == 0 and not results["amount"].drifted


def test_a_missing_column_is_an_input_error():
    with pytest.raises(definitions.CheckInputError, match="current data has no column 'country'"):
        quality.compute_quality(reference_frame(), same_as_reference().drop(columns="country"), {"columns": COLUMNS})
    with pytest.raises(definitions.CheckInputError, match="no rows"):
        quality.compute_quality(reference_frame().head(0), same_as_reference(), {"columns": COLUMNS})


def test_the_known_methods_are_evidently_s():
    assert set(quality.drift_methods("numerical")) == definitions.NUMERICAL_METHODS
    assert set(quality.drift_methods("categorical")) == definitions.CATEGORICAL_METHODS


@pytest.mark.parametrize("kind", definitions.KINDS)
def test_the_report_is_a_snapshot_and_a_scripted_page(kind):
    snapshot, html = reports.report(kind, reference_frame(), drifted(), {"columns": COLUMNS})
    assert json.loads(snapshot)["metrics"]
    assert "<script" in html and "<html" in html.lower()


def test_results_are_plain_dicts():
    result = quality.compute_quality(reference_frame(), same_as_reference(), {"columns": {"amount": "numerical"}})[0]
    assert result.as_dict() == {"column": "amount", "method": "missing_share", "score": 0.0, "threshold": 0.05,
                                "drifted": False, "p_value": None}  # fmt: skip
    assert isinstance(pd.Series([result.score]).iloc[0], float)
