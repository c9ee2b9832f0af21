"""The engine's own drift test, registered with Evidently so its reports test the columns the same way.

``chi2_contingency``: a two-sample chi-square test of homogeneity on the 2 x k table of reference and current
counts. Evidently's default for small references (``chisquare``) compares the current counts with the
reference proportions as if those were exact, which roughly doubles the statistic's variance when the windows
are of similar size and flags drift in a quarter to a half of runs where nothing drifted. Both samples are
random here, so the test holds its level. Drift when p < threshold (default 0.05), as for ``chisquare``.

Call ``register_with_evidently()`` before building a report that names the method (it is idempotent), e.g.
``DataDriftPreset(**engine.preset_options(result))``. Only the workers import it (it loads Evidently at import).
"""

from __future__ import annotations

import threading

import pandas as pd
from evidently.legacy.calculations.stattests import StatTest, register_stattest
from evidently.legacy.core import ColumnType

from monitoring.checks.engine import METHODS, contingency_p_value

NAME = "chi2_contingency"
_lock = threading.Lock()
_stat_test = None


def chi2_contingency_stattest(
    reference_data: pd.Series, current_data: pd.Series, feature_type, threshold: float
) -> tuple[float, bool]:
    """Evidently's stattest signature: (p-value, drifted)."""
    ref = reference_data.value_counts(dropna=True)
    cur = current_data.value_counts(dropna=True)
    keys = list(set(ref.index[ref.to_numpy() > 0]) | set(cur.index[cur.to_numpy() > 0]))
    p_value = contingency_p_value(
        ref.reindex(keys, fill_value=0).to_numpy(dtype=float), cur.reindex(keys, fill_value=0).to_numpy(dtype=float)
    )
    return p_value, p_value < threshold


def register_with_evidently():
    """Register ``chi2_contingency`` for categorical and numerical columns; returns the ``StatTest``."""
    global _stat_test
    with _lock:
        if _stat_test is not None:
            return _stat_test
        _stat_test = StatTest(
            name=NAME,
            display_name="chi-square contingency p_value",
            allowed_feature_types=[ColumnType.Categorical, ColumnType.Numerical],
            default_threshold=METHODS[NAME].default_threshold,
        )
        register_stattest(_stat_test, default_impl=chi2_contingency_stattest)
        return _stat_test
