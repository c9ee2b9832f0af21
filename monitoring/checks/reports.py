"""The Evidently report of a check run -- a pure module: frames, the resolved config and the verdict's drift
options in, ``(snapshot_json, html)`` out; no ORM, no storage, no settings. The report service
(``monitoring.services.reports``) reads the data, calls this, and stores what it returns.

A data_drift report tests each column with the method and threshold the engine's verdict used
(``saved_drift_result`` -> ``engine.preset_options``), so the page and the verdict agree; ``note`` puts a banner
per line at the top (a sampled side, the run's warnings). The HTML draws with inline scripts and holds the data's
values: the API serves it only in a sandbox (DESIGN §6).
"""

from __future__ import annotations

import os
import tempfile
from html import escape

import pandas as pd
from evidently import Report
from evidently.metrics import ValueDrift

from monitoring.checks import engine
from monitoring.checks.definitions import DATA_DRIFT, NUMERICAL
from monitoring.checks.quality import (
    _check_frames,
    _model_quality_metrics,
    _quality_frame,
    _quality_metrics,
    _quality_plan,
    _run,
)


def report(
    kind: str,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    config: dict,
    *,
    drift_options: dict | None = None,
    note: str = "",
) -> tuple[str, str]:
    """The Evidently report of a check: ``(snapshot_json, html)``. The HTML draws with inline scripts and
    holds the data's values: serve it only in a sandbox (DESIGN §6).

    ``drift_options`` (``monitoring.checks.engine.preset_options(result)``): the method and threshold the verdict
    used per column, so the report tests each column the same way. ``note`` is shown at the top of the page, a
    banner per line (e.g. that the report was built on a sample, or the run's warnings)."""
    columns = config["columns"]
    _check_frames(reference, current, columns)
    if kind == DATA_DRIFT:
        if drift_options is not None:
            methods = drift_options.get("per_column_method") or {}
            thresholds = drift_options.get("per_column_threshold") or {}
            config = {**config, "per_column": {c: {"method": methods.get(c), "threshold": thresholds.get(c)}
                                               for c in columns}}  # fmt: skip
        metrics = _drift_metrics(config)
    else:
        metrics = _quality_metrics(_quality_plan(reference, config), config)
    snapshot = _run(reference, current, columns, metrics)
    return snapshot.json(), _html(snapshot, note)


def _drift_metric(column: str, column_type: str, config: dict):
    prefix = "num" if column_type == NUMERICAL else "cat"
    own = (config.get("per_column") or {}).get(column) or {}
    method = own.get("method") or config.get(f"{prefix}_method")
    threshold = own.get("threshold", config.get(f"{prefix}_threshold"))
    return ValueDrift(column=column, method=method, threshold=threshold)


def _drift_metrics(config: dict) -> list:
    return [_drift_metric(column, column_type, config) for column, column_type in config["columns"].items()]


def _html(snapshot, note: str) -> str:
    with tempfile.TemporaryDirectory() as directory:
        html_path = os.path.join(directory, "report.html")
        snapshot.save_html(html_path)
        with open(html_path, encoding="utf-8") as html:
            page = html.read()
    if note:  # one banner per line
        banner = "".join(
            '<div style="padding:8px 12px;background:#fff3cd;border-bottom:1px solid #e0c060;'
            f'font-family:sans-serif">{escape(line)}</div>'
            for line in note.splitlines()
            if line.strip()
        )
        page = page.replace("<body>", f"<body>{banner}", 1)
    return page


def report_model_quality(frame: pd.DataFrame, config: dict, *, note: str = "") -> tuple[str, str]:
    """The Evidently report of a model_quality check (its metrics and tests), as ``(snapshot_json, html)``."""
    frame, dataset = _quality_frame(frame, config)
    snapshot = Report([m for _, m in _model_quality_metrics(frame, config)], include_tests=True).run(dataset, None)
    return snapshot.json(), _html(snapshot, note)


def saved_drift_result(results: list[dict]) -> engine.DriftResult:
    """The saved per-column results of a data_drift run, as the engine's result (for ``preset_options``)."""
    fields = set(engine.ColumnResult.__dataclass_fields__)
    columns = tuple(engine.ColumnResult(**{k: v for k, v in r.items() if k in fields}) for r in results)
    return engine.DriftResult(columns, any(c.flagged for c in columns), "", 0.0, False)
