"""The Evidently report of a run with a verdict (reports queue): built after the verdict is written, so a slow
or failed report never holds up a check or its consequences."""

from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from governance.provenance.storage import delete_stored, project_prefix
from monitoring.checks import engine
from monitoring.checks.definitions import CheckInputError
from monitoring.models import CheckRun, MonitorKind, ReportState
from monitoring.selectors import reference_of

from .execution import TRANSIENT_ERRORS, describe_error
from .inputs import _parquet_schema, _read_arrow, labelled_frame, quality_config, resolved_config

log = logging.getLogger(__name__)


def _report_paths(run: CheckRun) -> tuple[str, str]:
    base = f"{project_prefix(run.project)}reports/check-runs/{run.pk}/{uuid.uuid4().hex}"
    return f"{base}.json", f"{base}.html"


def check_run_report_build(*, run_id: int) -> str | None:
    """Build the Evidently report (JSON snapshot and HTML) of a run with a verdict and store both under the
    project's prefix. Safe to run twice: only the first build that finds the report pending records it."""
    # Deferred: the report builder loads Evidently (seconds, hundreds of MB) at import; a worker loads it on its first
    # report, not at start-up (autodiscovery imports this module in every worker, whatever its queues).
    from monitoring.checks.reports import report_model_quality

    run = (
        CheckRun.objects.select_related("project", "monitor_revision", "batch", "model_version__model")
        .filter(pk=run_id, report_state=ReportState.PENDING)
        .first()
    )
    if run is None:
        log.info("check run %s has no pending report", run_id)
        return None
    samples: dict = {}
    try:
        if run.batch.purged_at is not None:
            raise CheckInputError("the batch's data was deleted under the project's retention")
        if run.kind == MonitorKind.MODEL_QUALITY:
            snapshot, html = report_model_quality(labelled_frame(run), quality_config(run))
        else:
            reference = reference_of(run.model_version)
            if reference is None:
                raise CheckInputError("the version has no stored reference dataset version any more")
            snapshot, html, samples = _data_report(run, reference)
    except TRANSIENT_ERRORS:
        raise
    except Exception as exc:
        log.exception("report of check run %s failed", run_id)
        CheckRun.objects.filter(pk=run_id, report_state=ReportState.PENDING).update(
            report_state=ReportState.FAILED, report_error=describe_error(exc)
        )
        return ReportState.FAILED
    json_path, html_path = _report_paths(run)
    json_path = default_storage.save(json_path, ContentFile(snapshot.encode("utf-8")))
    html_path = default_storage.save(html_path, ContentFile(html.encode("utf-8")))
    updated = CheckRun.objects.filter(pk=run_id, report_state=ReportState.PENDING).update(
        report_state=ReportState.READY,
        report_json_path=json_path,
        report_html_path=html_path,
        report_error="",
        report_samples=samples,
    )
    if not updated:  # another build recorded its report first
        delete_stored(json_path)
        delete_stored(html_path)
        return None
    return ReportState.READY


def _data_report(run: CheckRun, reference) -> tuple[str, str, dict]:
    """A data check's report, each side sampled above ``TOLLGATE_REPORT_MAX_ROWS`` rows -- and the page says which
    side was, and only that one; a drift report tests each column with the method and threshold of the engine's
    verdict, and shows the run's warnings (a window below the reliable size of its methods) at the top."""
    # Deferred, as in check_run_report_build: these load Evidently.
    from monitoring.checks import stattests
    from monitoring.checks.reports import report, saved_drift_result

    batch_schema = run.batch.schema or _parquet_schema(run.batch.storage_path)
    reference_schema = reference.schema or _parquet_schema(reference.storage_path)
    config = resolved_config(run, batch_schema, reference_schema)
    names = list(config["columns"])
    limit = settings.TOLLGATE_REPORT_MAX_ROWS
    samples, frames = {}, []
    for side, path in (("reference", reference.storage_path), ("batch", run.batch.storage_path)):
        table = _read_arrow(path, names)
        sample, sampled = engine.report_sample(table, limit)
        frames.append(sample.to_pandas())
        if sampled:
            samples[side] = {"rows": sample.num_rows, "of": table.num_rows}
    notes = [warning["message"] for warning in run.warnings or []]
    if samples:
        drawn = "; ".join(f"{side}: {s['rows']:,} of {s['of']:,} rows" for side, s in samples.items())
        whole = [side for side in ("reference", "batch") if side not in samples]
        notes.append(
            f"This report was built on a uniform random sample ({drawn})"
            + (f"; the {whole[0]} is shown whole" if whole else "")
            + "; the check's verdict and per-column results used every row."
        )
    options = None
    if run.kind == MonitorKind.DATA_DRIFT:
        stattests.register_with_evidently()
        options = engine.preset_options(saved_drift_result(run.results))
    snapshot, html = report(run.kind, frames[0], frames[1], config, drift_options=options,
                                   note="\n".join(notes))  # fmt: skip
    return snapshot, html, samples


def check_run_report_give_up(*, run_id: int, error: str) -> None:
    CheckRun.objects.filter(pk=run_id, report_state=ReportState.PENDING).update(
        report_state=ReportState.FAILED, report_error=error[:4000]
    )
