"""Test-only: checks that take ``TOLLGATE_TEST_CHECK_DELAY_SECONDS`` (test settings, read from the environment of
the worker a test starts), so a test can kill the worker mid-run. The test settings install this app; its
``ready`` wraps the computation of a check, so production code has no test branch. Like a computation stuck in
native code, the delay does not notice the soft time limit (the hard one ends it)."""

import time

from celery.exceptions import SoftTimeLimitExceeded
from django.apps import AppConfig
from django.conf import settings


def _sleep(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(max(deadline - time.monotonic(), 0))
        except SoftTimeLimitExceeded:
            pass


class SlowChecks(AppConfig):
    name = "tests.monitoring"
    label = "tests_slow_checks"
    default = False

    def ready(self):
        from monitoring.services import execution

        compute = execution._compute

        def slow_compute(run):
            _sleep(settings.TOLLGATE_TEST_CHECK_DELAY_SECONDS)
            return compute(run)

        execution._compute = slow_compute
