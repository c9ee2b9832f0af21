"""The checks computed with Evidently 0.7 -- data_quality and model_quality -- a pure module: DataFrames and a
config in, plain results out; no ORM, no storage, no settings. Tested and benchmarked without a database. Only the
workers import it (it loads Evidently at import). A data_drift verdict comes from ``monitoring.checks.engine``
(proven equal to Evidently's own statistical tests); its report is ``monitoring.checks.reports``'s.

The config is a plain dict, already resolved by the caller (``monitoring.services.inputs.resolved_config``):

``columns``
    ``{name: "numerical" | "categorical"}`` -- the columns to check and how Evidently treats them (declared
    explicitly: Evidently's inference takes low-cardinality integers for categories).

data_quality keys (all optional)
    ``max_missing_share`` (0.05), ``max_out_of_range_share`` (0.01: share of values outside the reference's
    [min, max] or the column's ``range``), ``max_unseen_share`` (0.01: share of categories the reference
    never had), ``min_rows`` (1), ``max_rows`` (None); ``per_column``: ``{name: {"max_missing_share": ...,
    "range": [lo, hi], "max_out_of_range_share": ..., "max_unseen_share": ...}}``.

Every check yields a list of ``ColumnResult`` (``monitoring.checks.definitions``); ``quality_verdict`` and
``model_quality_verdict`` turn it into passed / failed with a reason.
For data_quality a result's ``drifted`` means "out of bounds", its ``method`` names the measure
(``missing_share``, ``out_of_range_share``, ``unseen_share``, ``row_count``), and row count has the column
``*``.
"""

from __future__ import annotations

import math
from typing import Any

import evidently.metrics as ev_metrics
import evidently.tests as ev_tests
import pandas as pd
from evidently import BinaryClassification, DataDefinition, Dataset, Regression, Report
from evidently.legacy.calculations.stattests.registry import _registered_stat_tests
from evidently.metrics import MissingValueCount, OutListValueCount, OutRangeValueCount, RowCount
from evidently.tests import gte, lte

from monitoring.checks.definitions import (
    CATEGORICAL,
    CLASSIFICATION,
    NUMERICAL,
    QUALITY_DEFAULTS,
    QUALITY_METRICS,
    REGRESSION,
    ROWS,
    CheckInputError,
    ColumnResult,
    MetricResult,
)
from monitoring.checks.stattests import register_with_evidently


def _number(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _registry() -> dict:
    """Evidently's stattest registry, with the engine's ``chi2_contingency`` registered (idempotent)."""
    register_with_evidently()
    return _registered_stat_tests


def drift_methods(column_type: str | None = None) -> list[str]:
    """The names of the drift methods Evidently knows (for one column type, or all)."""
    _registered_stat_tests = _registry()

    wanted = {NUMERICAL: "num", CATEGORICAL: "cat"}.get(column_type or "")
    return sorted(
        name
        for name, by_type in _registered_stat_tests.items()
        if wanted is None or any(getattr(t, "value", t) == wanted for t in by_type)
    )


def _check_frames(reference: pd.DataFrame, current: pd.DataFrame, columns: dict[str, str]) -> None:
    for label, frame in (("reference", reference), ("current", current)):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise CheckInputError(f"the {label} data has no column {', '.join(repr(c) for c in missing)}")
    if len(reference) == 0:
        raise CheckInputError("the reference data has no rows")


def _datasets(reference: pd.DataFrame, current: pd.DataFrame, columns: dict[str, str]):
    definition = DataDefinition(
        numerical_columns=[c for c, t in columns.items() if t == NUMERICAL],
        categorical_columns=[c for c, t in columns.items() if t == CATEGORICAL],
    )
    names = list(columns)
    return (
        Dataset.from_pandas(current[names].copy(), data_definition=definition),
        Dataset.from_pandas(reference[names].copy(), data_definition=definition),
    )


def _run(reference: pd.DataFrame, current: pd.DataFrame, columns: dict[str, str], metrics: list):
    _registry()
    current_ds, reference_ds = _datasets(reference, current, columns)
    return Report(metrics, include_tests=True).run(current_ds, reference_ds)  # current first, reference second


# --- data_quality ---


def _quality_plan(reference: pd.DataFrame, config: dict) -> list[dict]:
    """What to measure, column by column, with the bounds each measure must keep."""
    plan = []
    for column, column_type in config["columns"].items():
        own = (config.get("per_column") or {}).get(column) or {}

        def bound(key, own=own):
            return own.get(key, config.get(key, QUALITY_DEFAULTS[key]))

        plan.append({"column": column, "measure": "missing_share", "threshold": bound("max_missing_share")})
        if column_type == NUMERICAL:
            values = pd.to_numeric(reference[column], errors="coerce").dropna()
            low, high = own.get("range") or ((float(values.min()), float(values.max())) if len(values) else (0, 0))
            plan.append({"column": column, "measure": "out_of_range_share", "range": [low, high],
                         "threshold": bound("max_out_of_range_share")})  # fmt: skip
        else:
            known = sorted({_plain(v) for v in reference[column].dropna().unique()}, key=str)
            plan.append({"column": column, "measure": "unseen_share", "values": known,
                         "threshold": bound("max_unseen_share")})  # fmt: skip
    return plan


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _quality_metrics(plan: list[dict], config: dict) -> list:
    metrics = []
    for item in plan:
        column, tests = item["column"], [lte(item["threshold"])]
        if item["measure"] == "missing_share":
            metrics.append(MissingValueCount(column=column, share_tests=tests))
        elif item["measure"] == "out_of_range_share":
            low, high = item["range"]
            metrics.append(OutRangeValueCount(column=column, left=low, right=high, share_tests=tests))
        else:
            metrics.append(OutListValueCount(column=column, values=item["values"], share_tests=tests))
    rows = config.get("min_rows", QUALITY_DEFAULTS["min_rows"]), config.get("max_rows")
    metrics.append(RowCount(tests=[gte(rows[0])] + ([lte(rows[1])] if rows[1] is not None else [])))
    return metrics


def compute_quality(reference: pd.DataFrame, current: pd.DataFrame, config: dict) -> list[ColumnResult]:
    """Missing values, values outside the reference's range, categories the reference never had (shares of
    the current rows, each against its threshold), and the row count."""
    columns = config["columns"]
    _check_frames(reference, current, columns)
    plan = _quality_plan(reference, config)
    snapshot = _run(reference, current, columns, _quality_metrics(plan, config)).dict()
    metrics = snapshot["metrics"]
    results = []
    for item, metric in zip(plan, metrics, strict=False):
        share = _number(metric["value"]["share"]) if len(current) else 0.0
        share = 0.0 if share is None else share
        results.append(
            ColumnResult(column=item["column"], method=item["measure"], score=share, threshold=item["threshold"],
                         drifted=share > item["threshold"])
        )  # fmt: skip
    rows = len(current)
    low, high = config.get("min_rows", QUALITY_DEFAULTS["min_rows"]), config.get("max_rows")
    outside = rows < low or (high is not None and rows > high)
    threshold = float(low) if rows < low or high is None else float(high)
    results.append(ColumnResult(column=ROWS, method="row_count", score=float(rows), threshold=threshold,
                                drifted=outside))  # fmt: skip
    return results


# --- verdicts ---


def quality_verdict(results: list[ColumnResult]) -> tuple[bool, str]:
    """``(passed, reason)`` for the results of a data_quality check."""
    flagged = [r for r in results if r.drifted]
    if not flagged:
        return True, f"{len(results)} measure(s) within bounds"
    described = "; ".join(
        f"{r.column} {r.method} {r.score:g} > {r.threshold:g}"
        if r.method != "row_count"
        else f"row count {r.score:g} outside the bounds"
        for r in flagged
    )
    return False, f"{len(flagged)} of {len(results)} measure(s) out of bounds: {described}"


# --- model_quality ---


def uses_probabilities(frame: pd.DataFrame, config: dict) -> bool:
    """A classification whose prediction column holds floats is scored from probabilities of ``pos_label``."""
    return config.get("task") == CLASSIFICATION and pd.api.types.is_float_dtype(frame[config["prediction"]])


def _quality_frame(frame: pd.DataFrame, config: dict) -> tuple[pd.DataFrame, Any]:
    target, prediction = config["target"], config["prediction"]
    missing = [c for c in (target, prediction) if c not in frame.columns]
    if missing:
        raise CheckInputError(f"the labelled batch has no column {', '.join(repr(c) for c in missing)}")
    frame = frame[[target, prediction]].dropna()
    if len(frame) == 0:
        raise CheckInputError("no row of the batch has both a label and a prediction")

    if config["task"] == REGRESSION:
        definition = DataDefinition(numerical_columns=[target, prediction],
                                    regression=[Regression(target=target, prediction=prediction)])  # fmt: skip
    else:
        probas = uses_probabilities(frame, config)
        pos_label = config.get("pos_label", 1)
        definition = DataDefinition(
            numerical_columns=[prediction] if probas else [],
            categorical_columns=[target] if probas else [target, prediction],
            classification=[BinaryClassification(
                target=target, prediction_probas=prediction if probas else None,
                prediction_labels=None if probas else prediction, pos_label=pos_label,
            )],
        )  # fmt: skip
    return frame, Dataset.from_pandas(frame.copy(), data_definition=definition)


def _model_quality_metrics(frame: pd.DataFrame, config: dict) -> list[tuple[str, Any]]:
    task, thresholds = config["task"], config.get("thresholds") or {}
    probas = uses_probabilities(frame, config)
    metrics = []
    for name, (class_name, tests_argument) in QUALITY_METRICS[task].items():
        if name == "roc_auc" and not probas:
            continue  # a ROC curve needs scores, not labels
        tests = [getattr(ev_tests, op)(float(bound)) for op, bound in (thresholds.get(name) or {}).items()]
        options = {tests_argument: tests}
        if task == CLASSIFICATION and probas:
            options["probas_threshold"] = float(config.get("probas_threshold", 0.5))
        metrics.append((name, getattr(ev_metrics, class_name)(**options)))
    return metrics


def compute_model_quality(frame: pd.DataFrame, config: dict) -> list[ColumnResult]:
    """Classification or regression metrics of the labelled rows (``target`` against ``prediction``), each
    against its configured condition (``thresholds``: ``{metric: {"gte" | "gt" | "lte" | "lt": bound}}``)."""
    frame, dataset = _quality_frame(frame, config)
    named = _model_quality_metrics(frame, config)
    snapshot = Report([m for _, m in named], include_tests=True).run(dataset, None).dict()
    thresholds = config.get("thresholds") or {}
    statuses = {t["metric_config"]["metric_id"]: str(t["status"]).upper() for t in snapshot["tests"]}
    results = []
    for (name, _), metric in zip(named, snapshot["metrics"], strict=True):
        value = metric["value"]
        score = _number(value.get("mean") if isinstance(value, dict) else value)
        condition = next(iter(thresholds.get(name) or {}), None)
        bound = _number(thresholds[name][condition]) if condition else None
        # Evidently's test decides; a metric it could not compute fails its condition too.
        failed = condition is not None and (score is None or not statuses.get(metric["id"], "").endswith("SUCCESS"))
        results.append(MetricResult(column=name, method=name, score=score, threshold=bound, drifted=failed,
                                    condition=condition))  # fmt: skip
    results.append(MetricResult(column=ROWS, method="labelled_rows", score=float(len(frame)), threshold=None,
                                drifted=False))  # fmt: skip
    return results


def model_quality_verdict(results: list[ColumnResult]) -> tuple[bool, str]:
    failed = [r for r in results if r.drifted]
    rows = next((r.score for r in results if r.method == "labelled_rows"), 0)
    if not failed:
        return True, f"{len(results) - 1} metric(s) on {rows:g} labelled row(s) within bounds"
    described = "; ".join(
        f"{r.column} {'n/a' if r.score is None else format(r.score, '.4g')} not {r.condition} {r.threshold:g}"
        for r in failed
    )
    return False, f"{len(failed)} metric(s) out of bounds on {rows:g} labelled row(s): {described}"
