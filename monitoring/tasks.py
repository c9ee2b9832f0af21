"""Celery tasks of the monitoring app (DESIGN §7). Each takes an id and calls a service; every one is safe to
run twice (the outbox may deliver a message twice, and acks_late redelivers after a lost worker).

- ``run_check`` (checks queue): claim the run, compute it, write the verdict if this attempt still holds it.
- ``build_report`` (reports queue): the Evidently report of a run with a verdict.
- ``check_runs_reap`` (beat, every 30 s): runs past the hard time limit their worker recorded are re-queued or
  timed out.
- ``monitor_scheduled`` (beat, on each monitor's own schedule -- a django-celery-beat row the monitor's services
  create, change and delete): runs for unchecked batches, and the freshness alert.
- ``raw_data_prune`` (beat, daily): raw files past their project's retention are deleted.
"""

import logging
import os

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
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
    "max_retries": None,  # the run's attempts cap the retries of run_check
}
DB_RETRIES = 5


@shared_task(**TASK_OPTIONS)
def run_check(self, run_id: int):
    worker = f"{self.request.hostname or 'local'}:{os.getpid()}"
    try:
        while True:
            try:
                return execution.check_run_execute(
                    run_id=run_id, worker=worker, time_limit=self.time_limit, soft_timeout=SoftTimeLimitExceeded
                )
            except execution.RetryLater as retry:
                if not self.request.is_eager:
                    raise self.retry(countdown=retry.countdown, exc=retry.cause) from None
                # In process (no broker to come back through): the next attempt at once; attempts cap it.
    except execution.TRANSIENT_ERRORS as exc:  # the database failed before the claim or after: try again later
        if self.request.retries >= DB_RETRIES:
            raise  # the reaper re-queues the run (or times it out) once the database is back
        raise self.retry(countdown=min(2 ** (self.request.retries + 1), 60), exc=exc) from None


@shared_task(**TASK_OPTIONS)
def build_report(self, run_id: int):
    try:
        return reports.check_run_report_build(run_id=run_id)
    except execution.TRANSIENT_ERRORS as exc:
        if self.request.retries >= DB_RETRIES:
            reports.check_run_report_give_up(run_id=run_id, error=execution.describe_error(exc))
            raise
        raise self.retry(countdown=min(2 ** (self.request.retries + 1), 60), exc=exc) from None
    except SoftTimeLimitExceeded:
        reports.check_run_report_give_up(run_id=run_id, error="the report exceeded its time limit")
        raise


@shared_task(ignore_result=True)
def check_runs_reap() -> dict:
    """Beat: re-queue (or time out) check runs whose worker was lost, and re-queue orphaned queued runs."""
    return execution.check_runs_reap()


@shared_task(ignore_result=True)
def monitor_scheduled(monitor_id: int) -> dict:
    """Beat, on the monitor's schedule: queue runs for its unchecked batches; alert when data stopped coming."""
    return schedules.monitor_scheduled(monitor_id=monitor_id)


@shared_task(ignore_result=True)
def raw_data_prune() -> dict:
    """Beat, daily: delete raw batches and reference data past their project's retention (hashes stay)."""
    return retention.raw_data_prune()
