"""What a check is, without Evidently: the kinds, the column types, the drift methods by column type, the
data-quality defaults, the model-quality metrics and conditions, the result types and the input error.

The web process validates monitor configurations with this module and the drift engine alone: it never imports
Evidently (seconds of start-up and much memory), which only the checks and reports workers load
(``monitoring.checks.quality``, ``monitoring.checks.reports``). A unit test keeps the method tables equal to
Evidently's registry.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

DATA_DRIFT = "data_drift"
DATA_QUALITY = "data_quality"
KINDS = (DATA_DRIFT, DATA_QUALITY)  # the kinds compared with reference data (model_quality: see below)
NUMERICAL, CATEGORICAL = "numerical", "categorical"
ROWS = "*"

QUALITY_DEFAULTS = {
    "max_missing_share": 0.05,
    "max_out_of_range_share": 0.01,
    "max_unseen_share": 0.01,
    "min_rows": 1,
    "max_rows": None,
}
# The drift methods Evidently registers, by column type (a unit test keeps these equal to its registry, so the
# web process validates configurations without importing Evidently).
# ``chi2_contingency`` is the drift engine's own test, registered with Evidently by ``monitoring.checks.stattests``
# before any report is built here.
NUMERICAL_METHODS = frozenset(
    {"anderson", "chi2_contingency", "cramer_von_mises", "ed", "empirical_mmd", "es", "hellinger", "jensenshannon",
     "kl_div", "ks", "mannw", "psi", "t_test", "wasserstein"}
)  # fmt: skip
CATEGORICAL_METHODS = frozenset(
    {"chi2_contingency", "chisquare", "fisher_exact", "g_test", "hellinger", "jensenshannon", "kl_div", "psi", "TVD",
     "z"}
)  # fmt: skip
METHODS = {
    NUMERICAL: NUMERICAL_METHODS,
    CATEGORICAL: CATEGORICAL_METHODS,
    None: NUMERICAL_METHODS | CATEGORICAL_METHODS,
}


@dataclass(frozen=True)
class ColumnResult:
    column: str
    method: str
    score: float | None
    threshold: float | None
    drifted: bool
    p_value: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class CheckInputError(ValueError):
    """The data cannot be checked as configured (a column missing from a frame, an empty reference):
    permanent, so the run ends in ``error`` without retrying."""


# --- model_quality ---

MODEL_QUALITY = "model_quality"
CLASSIFICATION, REGRESSION = "classification", "regression"
# Metric name in a monitor's configuration -> (Evidently metric class, the argument its tests go in).
QUALITY_METRICS = {
    CLASSIFICATION: {"accuracy": ("Accuracy", "tests"), "precision": ("Precision", "tests"),
                     "recall": ("Recall", "tests"), "f1": ("F1Score", "tests"), "roc_auc": ("RocAuc", "tests")},
    REGRESSION: {"mae": ("MAE", "mean_tests"), "rmse": ("RMSE", "tests"), "r2": ("R2Score", "tests"),
                 "mape": ("MAPE", "mean_tests")},
}  # fmt: skip
CONDITIONS = ("gte", "gt", "lte", "lt")


@dataclass(frozen=True)
class MetricResult(ColumnResult):
    """A model-quality metric: ``column`` and ``method`` are its name; ``drifted`` means its condition failed."""

    condition: str | None = None
