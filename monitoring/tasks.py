"""Celery tasks of the monitoring app (DESIGN §7). Each takes an id and calls a service; every one is safe to
run twice (the outbox may deliver a message twice, and acks_late redelivers after a lost worker).

- ``run_check`` (checks queue): claim the run, compute it, write the verdict if this attempt still holds it.
- ``build_report`` (reports queue): the Evidently report of a run with a verdict.
- ``check_runs_reap`` (beat, every 30 s): runs past the hard time limit their worker recorded are re-queued or
  timed out (runs that never reached a worker are the outbox sweeper's).
- ``monitor_scheduled`` (beat, on each monitor's own schedule -- a django-celery-beat row the monitor's services
  create, change and delete): runs for unchecked batches, and the freshness alert.
- ``raw_data_prune`` (beat, daily): raw files past their project's retention are deleted.
"""

import logging
import os

from celery import shared_task
from celery.exceptions import Reject, SoftTimeLimitExceeded
from django.conf import settings

from .services import execution, reports, retention, schedules

log = logging.getLogger(__name__)

TASK_OPTIONS = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    # The worker's own limits (controlplane.celery.WorkerLimitsRequest); the settings keep soft below hard.
    "soft_time_limit": settings.TOLLGATE_CHECK_SOFT_TIME_LIMIT,
    "time_limit": settings.TOLLGATE_CHECK_TIME_LIMIT,
    # Transient errors retry with Celery's exponential backoff: 1, 2, 4 ... at most 60 s, jittered. In process
    # (eager), Celery runs the retry at once.
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "retry_jitter": True,
}
DB_RETRIES = 5
# Storage or database trouble, and an attempt of a check that ended in it (the run is queued again first).
RUN_RETRIED = (execution.RetryLater, *execution.TRANSIENT_ERRORS)


@shared_task(**TASK_OPTIONS, autoretry_for=RUN_RETRIED, max_retries=settings.TOLLGATE_CHECK_MAX_ATTEMPTS + DB_RETRIES)
def run_check(self, run_id: int):
    """The run's attempts cap its own retries; the database's trouble before the claim, ``DB_RETRIES`` more."""
    worker = f"{self.request.hostname or 'local'}:{os.getpid()}"
    try:
        return execution.check_run_execute(
            run_id=run_id, worker=worker, time_limit=self.time_limit, soft_timeout=SoftTimeLimitExceeded
        )
    except RUN_RETRIED as exc:
        if self.request.retries >= self.max_retries:
            # Given up for now, not lost: a rejected task keeps its outbox row pending, and the sweeper publishes
            # the run again later (a queued run has a pending outbox row until a worker claims it).
            raise Reject(exc, requeue=False) from exc
        raise


@shared_task(**TASK_OPTIONS, autoretry_for=execution.TRANSIENT_ERRORS, max_retries=DB_RETRIES)
def build_report(self, run_id: int):
    try:
        return reports.check_run_report_build(run_id=run_id)
    except execution.TRANSIENT_ERRORS as exc:
        if self.request.retries >= self.max_retries:  # the last try
            reports.check_run_report_give_up(run_id=run_id, error=execution.describe_error(exc))
        raise
    except SoftTimeLimitExceeded:
        reports.check_run_report_give_up(run_id=run_id, error="the report exceeded its time limit")
        raise


@shared_task(ignore_result=True)
def check_runs_reap() -> dict:
    """Beat: re-queue (or time out) check runs whose worker was lost; release deferred runs."""
    return execution.check_runs_reap()


@shared_task(ignore_result=True)
def monitor_scheduled(monitor_id: int) -> dict:
    """Beat, on the monitor's schedule: queue runs for its unchecked batches; alert when data stopped coming."""
    return schedules.monitor_scheduled(monitor_id=monitor_id)


@shared_task(ignore_result=True)
def raw_data_prune() -> dict:
    """Beat, daily: delete raw batches and reference data past their project's retention (hashes stay)."""
    return retention.raw_data_prune()
