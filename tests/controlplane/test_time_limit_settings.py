"""Task time limits (DESIGN §7): an unset soft limit is 90 % of the hard one; a soft limit set explicitly and not
below its hard limit stops the worker (and every other process) from starting, saying why.

Each case is a fresh process with only the given ``TOLLGATE_*`` variables, as the processes start in production.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NAMES = ["CELERY_TASK_SOFT_TIME_LIMIT", "CELERY_TASK_TIME_LIMIT", "TOLLGATE_CHECK_SOFT_TIME_LIMIT",
         "TOLLGATE_CHECK_TIME_LIMIT"]  # fmt: skip


def _env(variables: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TOLLGATE_"))}
    # A broker nobody listens on: a worker that started anyway would consume nothing.
    env.update(DJANGO_SETTINGS_MODULE="controlplane.settings.base", REDIS_URL="redis://127.0.0.1:1/0", **variables)
    return env


def _run(args: list[str], variables: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=_env(variables), capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, [324, 360, 324, 360]),
        ({"TOLLGATE_TASK_TIME_LIMIT": "200"}, [180, 200, 180, 200]),
        ({"TOLLGATE_CHECK_TIME_LIMIT": "100"}, [324, 360, 90, 100]),
        ({"TOLLGATE_TASK_SOFT_TIME_LIMIT": "100"}, [100, 360, 324, 360]),
        ({"TOLLGATE_CHECK_SOFT_TIME_LIMIT": "50", "TOLLGATE_CHECK_TIME_LIMIT": "100"}, [324, 360, 50, 100]),
        ({"TOLLGATE_CHECK_TIME_LIMIT": "2"}, [324, 360, 1, 2]),
    ],
    ids=["defaults", "task hard only", "check hard only", "task soft only", "check both", "smallest"],
)
def test_an_unset_soft_limit_is_90_percent_of_the_hard_one(variables, expected):
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        f"print(json.dumps([getattr(s, n) for n in {NAMES!r}]))"
    )
    result = _run(["-c", code], variables)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == expected


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            {"TOLLGATE_CHECK_SOFT_TIME_LIMIT": "150", "TOLLGATE_CHECK_TIME_LIMIT": "100"},
            "ImproperlyConfigured: TOLLGATE_CHECK_SOFT_TIME_LIMIT=150 must be below TOLLGATE_CHECK_TIME_LIMIT=100",
        ),
        (
            {"TOLLGATE_TASK_SOFT_TIME_LIMIT": "360"},
            "ImproperlyConfigured: TOLLGATE_TASK_SOFT_TIME_LIMIT=360 must be below TOLLGATE_TASK_TIME_LIMIT "
            "(default 360)",
        ),
        (
            # The check limits default to the task's hard limit, not to an explicit soft limit above them.
            {"TOLLGATE_TASK_TIME_LIMIT": "100", "TOLLGATE_CHECK_SOFT_TIME_LIMIT": "120"},
            "ImproperlyConfigured: TOLLGATE_CHECK_SOFT_TIME_LIMIT=120 must be below TOLLGATE_CHECK_TIME_LIMIT "
            "(default 100)",
        ),
    ],
    ids=["check soft above hard", "task soft equal to the default hard", "check soft above the inherited hard"],
)
def test_a_worker_with_an_explicit_soft_limit_not_below_the_hard_one_refuses_to_start(variables, message):
    result = _run(["-m", "celery", "-A", "controlplane", "worker", "--loglevel", "INFO"], variables)
    assert result.returncode != 0
    assert message in result.stderr
