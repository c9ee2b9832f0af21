"""False-alarm and detection rates of the engine's verdicts, with fixed seeds and binomial bounds.

A bound is the count a binomial with the claimed rate exceeds (or falls short of) with probability 0.001, so
each assertion would fail by chance at most one time in a thousand if the claim were only just true; the seeds
are fixed, so in practice the tests are deterministic.
"""

import numpy as np
import pandas as pd
from scipy.stats import binom

from monitoring.checks.engine import DriftConfig, drift_frames

LETTERS = np.array(list("abcdef"), dtype=object)
P_REFERENCE = np.array([0.3, 0.25, 0.2, 0.12, 0.08, 0.05])
P_DRIFTED = np.array([0.2, 0.25, 0.2, 0.15, 0.1, 0.1])
KINDS = {f"n{i}": "numerical" for i in range(20)} | {f"c{i}": "categorical" for i in range(5)}
DRIFTED = ("n0", "n1", "n2", "n3", "c0")  # 5 of 25 columns: the preset's drift_share=0.5 calls this "no drift"


def at_most(runs: int, rate: float) -> int:
    """The most alarms a true rate of ``rate`` gives in ``runs`` runs, but for a 0.001 chance."""
    return int(binom.ppf(0.999, runs, rate))


def at_least(runs: int, rate: float) -> int:
    return int(binom.ppf(0.001, runs, rate))


def letters(rng, rows: int, p=P_REFERENCE):
    return rng.choice(LETTERS, size=rows, p=p)


def frame(rng, rows: int, drifted=(), shift: float = 0.35) -> pd.DataFrame:
    columns = {}
    for column, kind in KINDS.items():
        moved = column in drifted
        if kind == "numerical":
            columns[column] = rng.normal(shift if moved else 0.0, 1.0, rows)
        else:
            columns[column] = letters(rng, rows, P_DRIFTED if moved else P_REFERENCE)
    return pd.DataFrame(columns)


# --- (a) a small reference and a categorical column with 3+ values ---

RUNS_A = 300


def test_evidentlys_default_chisquare_raises_false_alarms_on_small_references():
    from evidently.legacy.calculations import stattests
    from evidently.legacy.core import ColumnType

    rng = np.random.default_rng(101)
    alarms = 0
    for _ in range(RUNS_A):
        ref, cur = pd.Series(letters(rng, 500)), pd.Series(letters(rng, 500))
        alarms += bool(stattests.chi_stat_test(ref, cur, ColumnType.Categorical, 0.05).drifted)
    # nothing drifted, 5 % expected: Evidently's goodness-of-fit test flags far more (about 36 % here)
    assert alarms > at_most(RUNS_A, 0.20)


def test_the_engine_uses_a_two_sample_test_there_and_holds_its_level():
    rng = np.random.default_rng(101)
    config = DriftConfig(categorical=["c"], fdr=None)
    alarms = 0
    for _ in range(RUNS_A):
        result = drift_frames(pd.DataFrame({"c": letters(rng, 500)}), pd.DataFrame({"c": letters(rng, 500)}), config)
        assert result.columns[0].method == "chi2_contingency"
        alarms += result.columns[0].drifted
    assert alarms <= at_most(RUNS_A, 0.05)


def test_the_two_sample_test_detects_a_real_change():
    rng = np.random.default_rng(102)
    config = DriftConfig(categorical=["c"], fdr=None)
    detected = 0
    for _ in range(RUNS_A):
        ref, cur = pd.DataFrame({"c": letters(rng, 500)}), pd.DataFrame({"c": letters(rng, 500, P_DRIFTED)})
        detected += drift_frames(ref, cur, config, threads=1).columns[0].drifted
    assert detected >= at_least(RUNS_A, 0.90)


# --- (b) the dataset verdict over 25 columns ---

RUNS_B = 200


def test_small_windows_bh_keeps_the_dataset_false_alarm_rate_at_the_fdr():
    """500-row windows: K-S for numbers, the contingency test for letters, all corrected together."""
    rng = np.random.default_rng(201)
    config = DriftConfig.from_dict({"columns": KINDS})
    alarms = uncorrected = 0
    for _ in range(RUNS_B):
        result = drift_frames(frame(rng, 500), frame(rng, 500), config, threads=1)
        assert result.corrected
        alarms += result.drift_detected
        uncorrected += any(c.drifted for c in result.columns)
    assert alarms <= at_most(RUNS_B, 0.05)
    assert uncorrected >= at_least(RUNS_B, 0.5)  # 1 - 0.95**25 = 72 % without a correction


def test_small_windows_detect_five_drifted_columns_the_preset_calls_no_drift():
    rng = np.random.default_rng(202)
    config = DriftConfig.from_dict({"columns": KINDS})
    detected = preset = 0
    for _ in range(RUNS_B):
        result = drift_frames(frame(rng, 500), frame(rng, 500, DRIFTED), config, threads=1)
        detected += result.drift_detected
        preset += sum(c.drifted for c in result.columns) / len(result.columns) >= 0.5
    assert detected >= at_least(RUNS_B, 0.90)
    assert preset == 0


RUNS_C = 60


def test_large_windows_any_distance_over_threshold_rarely_alarms_without_drift():
    """5000-row windows: normed Wasserstein and Jensen-Shannon against 0.1, any column drifts the dataset.
    (Distances are effect sizes, not tests: just above 1000 rows, chance alone puts normed Wasserstein over
    0.1 in about 4 % of columns -- see bench/README.md -- so small windows should use a test or a share.)"""
    rng = np.random.default_rng(301)
    config = DriftConfig.from_dict({"columns": KINDS})
    alarms = 0
    for _ in range(RUNS_C):
        result = drift_frames(frame(rng, 5000), frame(rng, 5000), config, threads=1)
        assert not result.corrected and {c.method for c in result.columns} == {"wasserstein", "jensenshannon"}
        alarms += result.drift_detected
    assert alarms <= at_most(RUNS_C, 0.05)


def test_large_windows_detect_five_drifted_columns():
    rng = np.random.default_rng(302)
    config = DriftConfig.from_dict({"columns": KINDS})
    detected = 0
    for _ in range(RUNS_C):
        result = drift_frames(frame(rng, 5000), frame(rng, 5000, DRIFTED), config, threads=1)
        detected += result.drift_detected
        assert {c.column for c in result.columns if c.flagged} >= {"n0", "n1", "n2", "n3"}
    assert detected >= at_least(RUNS_C, 0.95)


def test_a_configured_drifted_share_applies_to_distance_columns():
    rng = np.random.default_rng(303)
    share = DriftConfig.from_dict({"columns": KINDS, "drift_share": 0.3})
    reference = frame(rng, 5000)
    five = drift_frames(reference, frame(rng, 5000, DRIFTED, shift=1.0), share)
    ten = drift_frames(reference, frame(rng, 5000, tuple(f"n{i}" for i in range(10)), shift=1.0), share)
    assert sum(c.drifted for c in five.columns) == 5 and not five.drift_detected  # 5 of 25 < 0.3
    assert ten.drift_detected and "at least 0.3" in ten.rule
