"""The worker side of a check run (DESIGN §7): claimed with attempt fencing, computed outside transactions,
and finished -- with its consequences (audit, voided decisions, alerts, automatic suspension) -- only while its
attempt still holds the run. The reaper recovers runs that started and whose worker was lost; the outbox, runs
that never reached a worker."""

from __future__ import annotations

import datetime
import logging
import math
import shutil
import tempfile
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import F
from django.utils import timezone

from controlplane.outbox import outbox_enqueue
from governance.audit.services import audit_record
from governance.promotion.services import promotion_on_check_finished
from monitoring.checks import engine
from monitoring.checks.definitions import CheckInputError
from monitoring.models import NOT_PASSED_STATES, Alert, Batch, CheckRun, CheckState, MonitorKind, ReportState
from monitoring.selectors import reference_of
from monitoring.vocabulary import WINDOW_BELOW_RELIABLE_SIZE

from ._common import _system
from .batches import _schema_mismatch, signature_problems
from .inputs import _parquet_schema, _read_parquet, labelled_frame, quality_config, resolved_config
from .runs import RUN_TASK, check_runs_release

log = logging.getLogger(__name__)

REPORT_TASK = "monitoring.tasks.build_report"
# Errors worth another attempt: storage or database trouble. Anything else is permanent for this run.
TRANSIENT_ERRORS = (OSError, OperationalError, InterfaceError)


class RetryLater(Exception):
    """A transient error (or the soft time limit) ended this attempt and the run is queued again: the task retries
    (Celery's backoff), and the next attempt claims it. Its cause is chained (``__cause__``)."""


def describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:4000]


def _claim(run_id: int, worker: str, time_limit: int | None = None) -> int | None:
    """queued -> running, attempts + 1, with the hard time limit the worker applies to this attempt; the attempt
    number, or None when another attempt holds the run."""
    now = timezone.now()
    claimed = CheckRun.objects.filter(pk=run_id, state=CheckState.QUEUED).update(
        state=CheckState.RUNNING, attempts=F("attempts") + 1, claimed_at=now, claimed_by=worker[:300],
        time_limit_seconds=time_limit,
    )  # fmt: skip
    if not claimed:
        return None
    return CheckRun.objects.values_list("attempts", flat=True).get(pk=run_id)


@dataclass
class Outcome:
    passed: bool
    verdict: str
    results: list[dict]
    warnings: list[dict] = field(default_factory=list)


def _compute(run: CheckRun) -> Outcome:
    """Read the reference and the batch, and check them. Outside any transaction: this is the heavy part."""
    # Deferred: the quality checks load Evidently (seconds, hundreds of MB) at import; a worker loads it on its first
    # check, not at start-up (autodiscovery imports this module in every worker, whatever its queues).
    from monitoring.checks import quality

    if run.kind == MonitorKind.MODEL_QUALITY:
        results = quality.compute_model_quality(labelled_frame(run), quality_config(run))
        passed, verdict = quality.model_quality_verdict(results)
        return Outcome(passed, verdict, [_finite(r.as_dict()) for r in results])
    reference = reference_of(run.model_version)
    if reference is None:
        raise CheckInputError(
            f"{run.model_version} has no reference dataset version stored under the project's prefix "
            "(link one with the role 'reference')"
        )
    batch = run.batch
    batch_schema = batch.schema or _parquet_schema(batch.storage_path)
    if batch.kind == Batch.Kind.URI:
        problems = signature_problems(run.model_version, batch_schema)
        if problems:
            raise CheckInputError(_schema_mismatch(run.model_version, problems).message)
    reference_schema = reference.schema or _parquet_schema(reference.storage_path)
    config = resolved_config(run, batch_schema, reference_schema)
    if run.kind == MonitorKind.DATA_DRIFT:
        return _compute_drift(reference, batch, config)
    names = list(config["columns"])
    current = _read_parquet(batch.storage_path, names)
    reference_frame = _read_parquet(reference.storage_path, names)
    if current.empty:
        raise _no_rows(batch)
    results = quality.compute_quality(reference_frame, current, config)
    passed, verdict = quality.quality_verdict(results)
    return Outcome(passed, verdict, [r.as_dict() for r in results])


def _compute_drift(reference, batch: Batch, config: dict) -> Outcome:
    """The verdict of a data_drift run, from the drift engine: the reference profile comes from the process
    cache by (reference sha256, columns); only the batch is read. ``max_drifted_columns`` > 0 replaces the
    engine's rule by a count of flagged columns."""
    drift_config = engine.DriftConfig.from_dict(config)
    profile = engine.profile_cached(
        reference.sha256, lambda: _read_table(reference.storage_path, drift_config), drift_config
    )
    current = _read_table(batch.storage_path, drift_config)
    if current.num_rows == 0:
        raise _no_rows(batch)
    result = engine.drift(profile, current, drift_config)
    allowed = int(config.get("max_drifted_columns") or 0)
    flagged = sum(c.flagged for c in result.columns)
    passed = flagged <= allowed if allowed else not result.drift_detected
    verdict = result.reason + (f"; at most {allowed} allowed" if allowed else "")
    order = list(config["columns"])  # the engine groups numerical columns first; keep the configured order
    columns = sorted(result.columns, key=lambda c: order.index(c.column))
    return Outcome(passed, verdict, [_finite(c.as_dict()) for c in columns], engine.small_window_warnings(columns))


def _no_rows(batch: Batch) -> CheckInputError:
    """An uploaded batch without rows is refused; a registered one (the web process reads none) is found here."""
    return CheckInputError(f"batch {batch.pk} has no rows: there is nothing to check")


def _finite(result: dict) -> dict:
    """NaN and infinities are not JSON (PostgreSQL refuses them): stored as null."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in result.items()}


def _read_table(storage_path: str, config: engine.DriftConfig):
    """The configured columns of a stored Parquet file, read by the engine (from the storage's local path; a
    remote storage's file is copied to a temporary file first)."""
    try:
        local = default_storage.path(storage_path)
    except NotImplementedError:
        with (
            default_storage.open(storage_path, "rb") as handle,
            tempfile.NamedTemporaryFile(suffix=".parquet") as copy,
        ):
            shutil.copyfileobj(handle, copy)
            copy.flush()
            return engine.read_table(copy.name, config)
    return engine.read_table(local, config)


def check_run_execute(*, run_id: int, worker: str, time_limit: int | None = None,
                      soft_timeout: type[BaseException] | None = None) -> str | None:  # fmt: skip
    """Claim the run, compute it outside transactions, and write its result if this attempt still holds it.
    ``time_limit`` is the hard limit the worker applies (recorded on the run for the reaper). Returns the final
    state (None when the run was not claimable). Raises ``RetryLater`` for transient errors while attempts
    remain (the run is queued again first)."""
    attempt = _claim(run_id, worker, time_limit)
    if attempt is None:
        log.info("check run %s is gone or already claimed", run_id)
        return None
    started = time.monotonic()
    try:
        run = CheckRun.objects.select_related("monitor_revision", "batch", "model_version__model").get(pk=run_id)
        outcome = _compute(run)
    except (CheckInputError, engine.DriftError) as exc:
        return _finish(run_id, attempt, state=CheckState.ERROR, error=str(exc), started=started)
    except TRANSIENT_ERRORS as exc:
        log.warning("check run %s attempt %s: transient error %r", run_id, attempt, exc)
        if attempt < settings.TOLLGATE_CHECK_MAX_ATTEMPTS and _requeue(run_id, attempt, error=describe_error(exc)):
            raise RetryLater(describe_error(exc)) from exc
        return _finish(run_id, attempt, state=CheckState.ERROR, error=describe_error(exc), started=started)
    except Exception as exc:
        if soft_timeout is not None and isinstance(exc, soft_timeout):
            message = f"attempt {attempt} exceeded the soft time limit of {settings.TOLLGATE_CHECK_SOFT_TIME_LIMIT}s"
            if attempt < settings.TOLLGATE_CHECK_MAX_ATTEMPTS and _requeue(run_id, attempt, error=message):
                raise RetryLater(message) from exc
            return _finish(run_id, attempt, state=CheckState.TIMED_OUT, error=message, started=started)
        log.exception("check run %s attempt %s failed", run_id, attempt)
        return _finish(run_id, attempt, state=CheckState.ERROR, error=describe_error(exc), started=started)
    state = CheckState.PASSED if outcome.passed else CheckState.FAILED
    return _finish(run_id, attempt, state=state, verdict=outcome.verdict, results=outcome.results,
                   warnings=outcome.warnings, started=started)  # fmt: skip


def _requeue(run_id: int, attempt: int, *, error: str) -> bool:
    """running (this attempt) -> queued; False when the attempt no longer holds the run."""
    return bool(
        CheckRun.objects.filter(pk=run_id, state=CheckState.RUNNING, attempts=attempt).update(
            state=CheckState.QUEUED, queued_at=timezone.now(), claimed_by="", error=error
        )
    )


def _finish(run_id: int, attempt: int, *, state: str, verdict: str = "", results=None, error: str = "",
            warnings=None, started: float | None = None) -> str | None:  # fmt: skip
    """Write the outcome if (running, ``attempt``) still holds, with its consequences, in one transaction."""
    now = timezone.now()
    with transaction.atomic():
        has_verdict = state in (CheckState.PASSED, CheckState.FAILED)
        updated = CheckRun.objects.filter(pk=run_id, state=CheckState.RUNNING, attempts=attempt).update(
            state=state, finished_at=now, verdict=verdict, results=results or [], error=error, warnings=warnings or [],
            duration_seconds=None if started is None else round(time.monotonic() - started, 3),
            report_state=ReportState.PENDING if has_verdict else ReportState.NONE,
        )  # fmt: skip
        if not updated:
            log.warning("check run %s: attempt %s lost the run (reaped or re-queued); its result is dropped",
                        run_id, attempt)  # fmt: skip
            return None
        run = CheckRun.objects.select_related(
            "project", "monitor", "batch", "model_version__model", "monitor_revision"
        ).get(pk=run_id)
        _consequences(run)
        # A place in the queue is free: deferred runs of the project may go (the reaper's beat retries this).
        transaction.on_commit(lambda: check_runs_release(project_id=run.project_id), robust=True)
    return state


def _consequences(run: CheckRun) -> None:
    """In the transaction that writes the outcome: audit, the report, voided decisions, alerts, suspension."""
    version = run.model_version
    diff = {"check_run": run.pk, "monitor": run.monitor.name, "kind": run.kind,
            "revision": run.monitor_revision.revision, "batch": run.batch_id, "model": version.model.name,
            "version": version.version, "state": run.state, "attempts": run.attempts, "verdict": run.verdict,
            "error": run.error}  # fmt: skip
    passed = run.state == CheckState.PASSED
    audit_record(action="check.passed" if passed else "check.failed", actor=_system(), project=run.project,
                 target=run, diff=diff)  # fmt: skip
    if run.report_state == ReportState.PENDING:
        outbox_enqueue(REPORT_TASK, kwargs={"run_id": run.pk})
    if run.state not in NOT_PASSED_STATES:
        return
    why = run.verdict or run.error or run.state
    # What it means for promotion (voided decisions, suspension where the policy says) is promotion's to decide.
    # A window below the reliable size of its methods cannot tell drift from noise: it alerts, but never suspends.
    small_window = run_below_reliable_size(run)
    consequences = promotion_on_check_finished(
        version=version, failed=run.state == CheckState.FAILED, finished_at=run.finished_at,
        void_reason=f"check run {run.pk} ({run.kind}) ended {run.state} after it: {why}",
        suspend_reason=f"automatically: check run {run.pk} ({run.kind}) failed: {why}",
        below_reliable_size=small_window,
    )  # fmt: skip
    for consequence in consequences:
        deployment, suspend = consequence.deployment, consequence.suspended
        policy_suspends = consequence.policy_suspends
        message = f"{run.kind} check of {version} in {deployment.environment.name} ended {run.state}: {why}"
        if policy_suspends and small_window:
            message += (
                "; the deployment was not suspended: the window is below the size at which the check's methods "
                "are reliable (see the run's warnings)"
            )
        alert, created = Alert.objects.get_or_create(
            check_run=run, deployment=deployment,
            defaults={"project": run.project, "monitor": run.monitor, "model_version": version,
                      "kind": f"check_{run.state}", "message": message[:4000], "suspended": suspend},
        )  # fmt: skip
        if not created:
            continue
        audit_record(action="alert.raised", actor=_system(), project=run.project, target=alert,
                     diff={"check_run": run.pk, "monitor": run.monitor.name, "kind": alert.kind,
                           "model": version.model.name, "environment": deployment.environment.name,
                           "message": alert.message, "suspend": suspend,
                           **({"not_suspended": WINDOW_BELOW_RELIABLE_SIZE} if policy_suspends and small_window
                              else {})})  # fmt: skip


def run_below_reliable_size(run: CheckRun) -> bool:
    """A run on a window below the size at which its methods are reliable: it never suspends a deployment, whatever
    the policy says. The policy code that decides suspension asks this."""
    return run.below_reliable_size


# --- The reaper ----------------------------------------------------------------------------------------------


def check_runs_reap(*, now: datetime.datetime | None = None) -> dict:
    """Runs that started and are still ``running`` past the hard time limit plus the margin (their worker was lost,
    or the check is stuck in native code): queued again while attempts remain (through the outbox), else
    ``timed_out``. On the same beat, deferred runs are released where the queue bounds have room.

    Work that never reached a worker is the outbox's to recover: a queued run keeps a pending outbox row until a
    worker has run its task (the task's retries, and a task that gives up on a transient error, keep it pending),
    and the sweeper publishes a pending row again (``controlplane.outbox``).

    The hard limit is the one the claiming worker recorded on the run: the reaper runs wherever beat sends it,
    under settings that need not be that worker's. (A run claimed without one falls back to this process's.)"""
    now = now or timezone.now()
    margin = settings.TOLLGATE_CHECK_REAP_MARGIN_SECONDS
    running = CheckRun.objects.filter(state=CheckState.RUNNING).values_list(
        "pk", "attempts", "claimed_at", "time_limit_seconds"
    )
    requeued = timed_out = 0
    for run_id, attempt, claimed_at, time_limit in running:
        hard = time_limit or settings.TOLLGATE_CHECK_TIME_LIMIT
        if claimed_at is not None and claimed_at >= now - datetime.timedelta(seconds=hard + margin):
            continue
        message = f"attempt {attempt} was still running after the hard time limit of {hard}s"
        if attempt < settings.TOLLGATE_CHECK_MAX_ATTEMPTS:
            with transaction.atomic():
                if _requeue(run_id, attempt, error=message):
                    outbox_enqueue(RUN_TASK, kwargs={"run_id": run_id})
                    requeued += 1
        elif _finish(run_id, attempt, state=CheckState.TIMED_OUT, error=message):
            timed_out += 1
    deferred = CheckRun.objects.filter(state=CheckState.DEFERRED).order_by().values_list("project_id", flat=True)
    released = sum(check_runs_release(project_id=project_id) for project_id in deferred.distinct())
    if requeued or timed_out or released:
        log.info("check runs reaped: %s re-queued, %s timed out, %s deferred released", requeued, timed_out, released)
    return {"requeued": requeued, "timed_out": timed_out, "released": released}
