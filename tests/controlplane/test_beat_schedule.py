"""Configuration far from its code (STYLE.md): every periodic task the code or the README describes is in the
schedule that ``make beat`` loads.

The code describes a periodic task by its docstring: a task whose docstring starts with "Beat" runs on beat. The
README (and monitoring/README.md) describes one by naming it in a sentence about beat. The schedule is what beat
itself writes: ``make beat`` runs against the test database until django-celery-beat's DatabaseScheduler has
synced ``CELERY_BEAT_SCHEDULE`` into its ``PeriodicTask`` rows, which are the schedule it runs.
"""

import datetime
import importlib
import inspect
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django_celery_beat.models import PeriodicTask

from controlplane.celery import app as celery_app
from tests.worker import _test_database_url, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("controlplane", "governance", "monitoring")
READMES = (ROOT / "README.md", ROOT / "monitoring" / "README.md")
CHECKPOINT_TASK = "governance.tasks.audit_checkpoint_write"
CHECKPOINT_MINUTES = 7  # not the default: the interval must come from the setting
# Beat tasks that take an object's id run on that object's own django-celery-beat row, which its service
# writes; where that is tested. A new one must be added here.
PER_OBJECT = {"monitoring.tasks.monitor_scheduled": "tests/monitoring/services/test_schedules.py (one row per monitor)"}


def _our_tasks() -> dict:
    for package in PACKAGES:
        importlib.import_module(f"{package}.tasks")
    return {name: task for name, task in celery_app.tasks.items() if name.startswith(tuple(f"{p}." for p in PACKAGES))}


def described_by_the_code() -> tuple[set[str], set[str]]:
    """Tasks whose docstring says they run on beat: (those beat runs as they are, those it runs per object)."""
    plain, per_object = set(), set()
    for name, task in _our_tasks().items():
        if not (task.__doc__ or "").lstrip().startswith("Beat"):
            continue
        parameters = inspect.signature(task.run).parameters.values()
        needs_arguments = any(p.default is p.empty and p.kind is not p.VAR_KEYWORD for p in parameters)
        (per_object if needs_arguments else plain).add(name)
    return plain, per_object


def _sentences(text: str):
    text = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)  # examples, not prose
    for paragraph in re.split(r"\n\s*\n", text):
        lines = paragraph.splitlines()
        if all(line.startswith("|") for line in lines):
            yield from lines  # a table: each row on its own
            continue
        yield from re.split(r"(?<=[.;])\s+", " ".join(line.strip() for line in lines))


def described_by_the_readme() -> set[str]:
    """Tasks named (`name` or `module.name`) in a README sentence that mentions beat."""
    tasks = _our_tasks()
    short = {name.rsplit(".", 1)[1]: name for name in tasks}
    assert len(short) == len(tasks), "two tasks share a function name: name them in full in the READMEs"
    described = set()
    for readme in READMES:
        for sentence in _sentences(readme.read_text()):
            if re.search(r"\bbeat\b", sentence, re.IGNORECASE):
                for token in re.findall(r"`([\w.]+)`", sentence):
                    if token in tasks or token in short:
                        described.add(token if token in tasks else short[token])
    return described


def _stop(process: subprocess.Popen) -> None:
    """Stop make and beat (its process group), and wait until beat is gone too: nothing of it writes to the
    database once the test flushes it."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        process.wait()

    def group_gone():
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(group_gone, timeout=20, message="beat to exit")


@pytest.fixture
def beat_schedule(private_redis, tmp_path) -> list[PeriodicTask]:
    """The enabled entries ``make beat`` loads, written by beat itself (base settings, as ``make beat`` runs
    without DJANGO_SETTINGS_MODULE), with ``TOLLGATE_AUDIT_CHECKPOINT_MINUTES`` set to 7."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TOLLGATE_"))}
    env.update(
        DATABASE_URL=_test_database_url(),
        REDIS_URL=private_redis.url,  # whatever beat sends goes to a broker of this test's own
        TOLLGATE_AUDIT_CHECKPOINT_MINUTES=str(CHECKPOINT_MINUTES),
        PYTHONUNBUFFERED="1",
    )
    log_path = tmp_path / "beat.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "beat", f"PY={sys.executable}"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    names = set(settings.CELERY_BEAT_SCHEDULE)

    def synced():
        assert process.poll() is None, f"beat exited ({process.returncode}):\n{log_path.read_text()}"
        return set(PeriodicTask.objects.filter(name__in=names).values_list("name", flat=True)) == names

    try:
        wait_for(synced, timeout=60, interval=0.2, message=f"beat to write its schedule:\n{log_path.read_text()}")
    finally:
        _stop(process)
    return list(PeriodicTask.objects.filter(enabled=True).select_related("interval", "crontab"))


def test_every_periodic_task_the_code_describes_is_in_the_schedule_beat_loads(beat_schedule):
    plain, per_object = described_by_the_code()
    assert per_object == set(PER_OBJECT)
    assert CHECKPOINT_TASK in plain
    assert plain - {entry.task for entry in beat_schedule} == set()


def test_every_periodic_task_the_readme_describes_is_in_the_schedule_beat_loads(beat_schedule):
    described = described_by_the_readme() - set(PER_OBJECT)
    assert CHECKPOINT_TASK in described
    assert described - {entry.task for entry in beat_schedule} == set()


def test_beat_writes_the_audit_checkpoints_every_TOLLGATE_AUDIT_CHECKPOINT_MINUTES(beat_schedule):
    [entry] = [entry for entry in beat_schedule if entry.task == CHECKPOINT_TASK]
    assert entry.schedule.run_every == datetime.timedelta(minutes=CHECKPOINT_MINUTES)
