"""The drift engine gives Evidently's own scores and raw per-column verdicts, method by method.

Evidently's stattests are called directly (``evidently.legacy.calculations.stattests``) on the same columns,
cleaned as Evidently cleans them (+-inf to NaN, NaN dropped), which keeps these tests fast. Tolerances: scores
agree to a relative 1e-9 (absolute 1e-12): the engine sums the same terms in another order (sorted arrays
instead of SciPy's merged CDFs, set order of categories). A raw verdict is compared unless the score lies within
that tolerance of the threshold, where the order of summation may decide it.
"""

import math

import numpy as np
import pandas as pd
import pytest
from evidently.legacy.calculations.stattests import registry as ev_registry
from evidently.legacy.core import ColumnType
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from monitoring.checks import engine, stattests
from monitoring.checks.engine import CATEGORICAL, NUMERICAL, DriftConfig, drift_frames
from monitoring.checks.stattests import chi2_contingency_stattest, register_with_evidently


@pytest.fixture(autouse=True, scope="module")
def _registered():
    """Register the engine's test with Evidently for these tests only: the registry is process-wide."""
    stat_test = register_with_evidently()
    yield
    ev_registry._registered_stat_tests.pop(stat_test.name, None)
    ev_registry._impls.pop(stat_test, None)
    for func, name in list(ev_registry._registered_stat_test_funcs.items()):
        if name == stat_test.name:
            del ev_registry._registered_stat_test_funcs[func]
    stattests._stat_test = None


REL, ABS = 1e-9, 1e-12
TYPES = {NUMERICAL: ColumnType.Numerical, CATEGORICAL: ColumnType.Categorical}
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def clean(values) -> pd.Series:
    return pd.Series(values).replace([-np.inf, np.inf], np.nan).dropna()


def evidently(ref, cur, kind: str, method: str | None, threshold: float | None = None):
    """(method name, score, drifted) as Evidently's get_one_column_drift computes them."""
    ref, cur = clean(ref), clean(cur)
    stat_test = ev_registry.get_stattest(ref, cur, TYPES[kind], method)
    result = stat_test(ref, cur, TYPES[kind], threshold)
    return stat_test.name, float(result.drift_score), bool(result.drifted)


def ours(ref, cur, kind: str, method: str | None, threshold: float | None = None, **options):
    config = DriftConfig(
        **{"numerical" if kind == NUMERICAL else "categorical": ["x"]},
        per_column_method={"x": method} if method else {},
        per_column_threshold={"x": threshold} if threshold is not None else {},
        fdr=None,
        **options,
    )
    result = drift_frames(pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur}), config, threads=1)
    return result.columns[0]


def assert_same(ref, cur, kind, method, threshold=None, **options):
    name, score, drifted = evidently(ref, cur, kind, method, threshold)
    column = ours(ref, cur, kind, method, threshold, **options)
    assert column.method == name
    if math.isnan(score):
        assert math.isnan(column.score)
    else:
        assert math.isclose(column.score, score, rel_tol=REL, abs_tol=ABS), (column.score, score)
    if not math.isclose(score, column.threshold, rel_tol=REL, abs_tol=ABS):
        assert column.drifted == drifted, (column, score, drifted)
    return column


# --- generated columns: ties, few and many distinct values, NaN and +-inf, unequal sizes ---

finite = st.one_of(
    st.integers(-3, 3).map(float),
    st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32),
)
missing = st.sampled_from([math.nan, math.inf, -math.inf])
numbers = st.lists(st.one_of(finite, finite, finite, missing), min_size=1, max_size=250)
categories = st.lists(st.sampled_from(["a", "b", "c", "d", "e", "f", None]), min_size=1, max_size=250)


def has_finite(values) -> bool:
    return any(v is not None and math.isfinite(v) for v in values)


def has_value(values) -> bool:
    return any(v is not None for v in values)


@pytest.mark.parametrize("method", ["ks", "wasserstein", "jensenshannon", "psi"])
@SETTINGS
@given(ref=numbers, cur=numbers)
def test_numerical_scores_and_verdicts_equal_evidentlys(method, ref, cur):
    assume(has_finite(ref) and has_finite(cur))
    assert_same(ref, cur, NUMERICAL, method)


@pytest.mark.parametrize("method", ["chisquare", "z", "jensenshannon", "psi", "chi2_contingency"])
@SETTINGS
@given(ref=categories, cur=categories)
def test_categorical_scores_and_verdicts_equal_evidentlys(method, ref, cur):
    assume(has_value(ref) and has_value(cur))
    if method == "z":  # Evidently's z-test is for at most two values
        ref = [v if v in (None, "a") else "b" for v in ref]
        cur = [v if v in (None, "a") else "b" for v in cur]
    assert_same(ref, cur, CATEGORICAL, method)


@SETTINGS
@given(ref=numbers, cur=numbers)
def test_the_automatic_choice_for_numerical_columns_is_evidentlys(ref, cur):
    assume(has_finite(ref) and has_finite(cur))
    assert_same(ref, cur, NUMERICAL, None, contingency_for_small_reference=False)


@SETTINGS
@given(ref=categories, cur=categories)
def test_the_automatic_choice_for_categorical_columns_is_evidentlys(ref, cur):
    assume(has_value(ref) and has_value(cur))
    assert_same(ref, cur, CATEGORICAL, None, contingency_for_small_reference=False)


@SETTINGS
@given(ref=numbers, cur=numbers, threshold=st.sampled_from([0.01, 0.05, 0.2, 0.5]))
def test_thresholds_are_compared_as_evidently_does(ref, cur, threshold):
    assume(has_finite(ref) and has_finite(cur))
    for method in ("ks", "wasserstein"):
        assert_same(ref, cur, NUMERICAL, method, threshold)


# --- larger, seeded frames: above 1000 reference rows, SciPy's asymptotic K-S above 10000, integers ---


def random_column(rng, kind: str, rows: int, shift: float):
    shape = rng.integers(4)
    if kind == CATEGORICAL:
        k = int(rng.integers(2, 9))
        p = rng.dirichlet(np.ones(k))
        values = rng.choice([f"v{i}" for i in range(k)], size=rows, p=p).astype(object)
        if shift:
            values[rng.random(rows) < shift] = "v0"
        return values
    if shape == 0:  # few distinct values
        return rng.integers(0, int(rng.integers(1, 7)), size=rows) + (shift > 0.2)
    if shape == 1:  # integers with many values
        return rng.integers(-40, 40, size=rows) + int(10 * shift)
    values = rng.standard_t(5, size=rows) * rng.uniform(0.1, 100) + shift
    if shape == 3:
        values[rng.random(rows) < 0.02] = rng.choice([np.nan, np.inf, -np.inf])
    return values


@pytest.mark.parametrize("seed", range(6))
def test_random_frames_agree_column_by_column(seed):
    rng = np.random.default_rng(seed)
    ref_rows, cur_rows = (int(x) for x in rng.choice([300, 1000, 1001, 2500, 12_000], size=2))
    kinds = {f"n{i}": NUMERICAL for i in range(6)} | {f"c{i}": CATEGORICAL for i in range(3)}
    shifts = {c: float(rng.choice([0, 0, 0.05, 0.3])) for c in kinds}
    reference = pd.DataFrame({c: random_column(rng, k, ref_rows, 0) for c, k in kinds.items()})
    current = pd.DataFrame({c: random_column(rng, k, cur_rows, shifts[c]) for c, k in kinds.items()})
    config = DriftConfig.from_dict({"columns": kinds, "contingency_for_small_reference": False, "fdr": None})
    result = drift_frames(reference, current, config)
    for column in result.columns:
        name, score, drifted = evidently(reference[column.column], current[column.column], column.kind, None)
        assert column.method == name
        assert math.isclose(column.score, score, rel_tol=REL, abs_tol=ABS), (column, score)
        assert column.drifted == drifted


def test_large_windows_take_the_vectorised_paths_and_agree():
    rng = np.random.default_rng(7)
    ref = rng.normal(size=20_000)
    cur = rng.normal(0.03, 1.0, size=15_001)
    for method in ("ks", "wasserstein", "psi", "jensenshannon"):
        assert_same(ref, cur, NUMERICAL, method)
    same_size = rng.normal(0.02, 1.0, size=20_000)
    assert_same(ref, same_size, NUMERICAL, "wasserstein")
    assert_same(ref, same_size, NUMERICAL, "ks")


def test_parquet_input_gives_the_same_result_as_pandas(tmp_path):
    rng = np.random.default_rng(3)
    frames = []
    for shift in (0, 0.2):
        frames.append(
            pd.DataFrame(
                {
                    "x": rng.normal(shift, 1, 3000),
                    "i": rng.integers(0, 50, 3000),
                    "few": rng.integers(0, 3, 3000).astype(float),
                    "c": rng.choice(["a", "b", None, "d"], 3000),
                }
            )
        )
    frames[1].loc[5, "x"] = np.nan
    paths = []
    for i, frame in enumerate(frames):
        paths.append(tmp_path / f"{i}.parquet")
        frame.to_parquet(paths[-1])
    config = DriftConfig(numerical=["x", "i", "few"], categorical=["c"], per_column_method={"i": "psi"})
    from_pandas = drift_frames(frames[0], frames[1], config).as_dict()
    from_parquet = engine.drift(engine.profile_reference(paths[0], config), paths[1], config).as_dict()
    assert from_parquet == from_pandas


def test_the_registered_contingency_test_is_the_engines():
    rng = np.random.default_rng(11)
    ref = pd.Series(rng.choice(list("abcde"), 400))
    cur = pd.Series(rng.choice(list("abcdf"), 380))
    p_value, drifted = chi2_contingency_stattest(ref, cur, ColumnType.Categorical, 0.05)
    column = ours(ref, cur, CATEGORICAL, None)
    assert column.method == "chi2_contingency"
    assert column.score == pytest.approx(p_value, rel=REL) and column.drifted == drifted
    # Evidently resolves the name to the same test once registered
    assert ev_registry.get_registered_stattest("chi2_contingency", ColumnType.Categorical).name == "chi2_contingency"
    assert register_with_evidently() is register_with_evidently()


def test_an_evidently_report_built_with_the_engines_methods_gives_the_same_verdicts():
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    rng = np.random.default_rng(5)
    kinds = {"a": NUMERICAL, "b": NUMERICAL, "few": NUMERICAL, "c": CATEGORICAL, "bin": CATEGORICAL}
    reference = pd.DataFrame(
        {
            "a": rng.normal(size=600),
            "b": rng.exponential(size=600),
            "few": rng.integers(0, 4, 600),
            "c": rng.choice(list("pqrst"), 600),
            "bin": rng.choice(["y", "n"], 600),
        }
    )
    current = pd.DataFrame(
        {
            "a": rng.normal(0.3, 1, 500),
            "b": rng.exponential(size=500),
            "few": rng.integers(0, 4, 500),
            "c": rng.choice(list("pqrsu"), 500),
            "bin": rng.choice(["y", "n"], 500, p=[0.4, 0.6]),
        }
    )
    config = DriftConfig.from_dict({"columns": kinds})
    result = drift_frames(reference, current, config)
    options = engine.preset_options(result)
    metrics = [
        ValueDrift(
            column=c,
            method=options["per_column_method"].get(c),
            threshold=options["per_column_threshold"][c],
        )
        for c in kinds
    ]
    definition = DataDefinition(
        numerical_columns=[c for c, k in kinds.items() if k == NUMERICAL],
        categorical_columns=[c for c, k in kinds.items() if k == CATEGORICAL],
    )
    snapshot = (
        Report(metrics, include_tests=True)
        .run(Dataset.from_pandas(current, data_definition=definition), Dataset.from_pandas(reference, definition))
        .dict()
    )
    failed = {t["metric_config"]["params"]["column"] for t in snapshot["tests"] if str(t["status"]).endswith("FAIL")}
    scores = {m["config"]["column"]: m["value"] for m in snapshot["metrics"]}
    for column in result.columns:
        assert scores[column.column] == pytest.approx(column.score, rel=REL, abs=ABS)
        assert (column.column in failed) == column.drifted
    assert {c.column: c.method for c in result.columns}["c"] == "chi2_contingency"


def test_a_p_value_equal_to_the_threshold_is_compared_as_evidently_does():
    rng = np.random.default_rng(2)
    numbers_ref, numbers_cur = rng.normal(size=200), rng.normal(0.1, 1, 180)
    letters_ref, letters_cur = rng.choice(list("abc"), 200), rng.choice(list("abc"), 180)
    for ref, cur, kind, method in (
        (numbers_ref, numbers_cur, NUMERICAL, "ks"),  # drift when p <= threshold
        (letters_ref, letters_cur, CATEGORICAL, "chisquare"),  # drift when p < threshold
        (letters_ref, letters_cur, CATEGORICAL, "chi2_contingency"),
    ):
        threshold = ours(ref, cur, kind, method).score
        _, score, drifted = evidently(ref, cur, kind, method, threshold)
        column = ours(ref, cur, kind, method, threshold)
        assert column.score == score == threshold
        assert column.drifted == drifted == (method == "ks")


@pytest.mark.parametrize(
    "lo, hi, size, integer",
    [
        (0, 30, 2_000, True),
        (0, 21, 1_200_000, True),
        (-3.5, 7.25, 999, False),
        (5, 5, 100, False),
        (0, 1e-9, 50, False),
    ],
)
def test_sturges_bins_from_the_pooled_range_are_numpys(lo, hi, size, integer):
    pooled = np.full(size, lo, dtype=np.int64 if integer else np.float64)
    pooled[-1] = hi
    expected = np.histogram_bin_edges(pooled, bins="sturges")
    np.testing.assert_array_equal(engine.sturges_edges(pooled.min(), pooled.max(), size, integer), expected)


def test_psi_fills_empty_bins_as_evidently_does_when_shares_are_tiny():
    rng = np.random.default_rng(4)
    ref = np.array(["a"] * 12_000 + ["b"] * 8_000 + ["rare"] + ["gone"] * 3, dtype=object)
    cur = np.array(["a"] * 11_000 + ["b"] * 9_000 + ["new"] * 2, dtype=object)
    rng.shuffle(ref)
    for method in ("psi", "jensenshannon"):
        assert_same(ref, cur, CATEGORICAL, method)
