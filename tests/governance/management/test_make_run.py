"""What a new user sees from ``make run`` in the embedded default (no DATABASE_URL, no REDIS_URL): a progress
line per phase, the seed's logs in ``var/seed_demo.log`` (only warnings and errors on the terminal too), and
the personas' credentials and the URLs as the last lines on the screen, once the server listens."""

import hashlib
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request

import pytest

from governance.management.commands.seed_demo import _logs_to
from tests.worker import REPO, wait_for

PERSONAS = ["staff", "mlengineer", "officer", "officer2", "auditor", "admin", "ci-pipeline@fraud-detection"]
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")
TERMINAL_ROWS = 24


def _installed_venv(path):
    """A venv folder holding only the Makefile's install stamp: ``make run`` skips pip and runs ``PY``."""
    path.mkdir()
    requirements = b"".join((REPO / name).read_bytes() for name in ("requirements.txt", "requirements-dev.txt"))
    (path / f".installed-{hashlib.sha256(requirements).hexdigest()[:12]}").touch()
    return path


@pytest.mark.slow
def test_make_run_ends_with_the_credentials_and_sends_the_seed_logs_to_var(tmp_path):
    environment = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
    }
    environment.update(TOLLGATE_VAR_DIR=str(tmp_path / "var"), PYTHONUNBUFFERED="1")
    venv = _installed_venv(tmp_path / "venv")
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"VENV={venv}", f"PY={sys.executable}", "BIND=127.0.0.1:0"],
        cwd=REPO,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one terminal: both streams, in the order they were written
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []

    def read():
        for line in process.stdout:
            lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read)
    reader.start()

    def listening():
        started = any("CONTROL-C" in line for line in lines)  # the server's last start-up line
        if process.poll() is not None and not started:
            pytest.fail(f"make run exited ({process.returncode}):\n" + "\n".join(lines))
        return started

    try:
        wait_for(listening, timeout=300, interval=0.5, message="make run to print its credentials")
        screen = list(lines)
        api = re.search(r"^  API       (http://127\.0\.0\.1:\d+/api/v1/)$", "\n".join(screen), re.MULTILINE)
        assert api, "no API URL in what make run printed:\n" + "\n".join(screen)
        api = api[1]
        keys = dict(re.findall(r"^  (\S+) .*\n      API key:  (tg_\S+)$", "\n".join(screen), re.MULTILINE))
        request = urllib.request.Request(f"{api}me/", headers={"Authorization": f"Bearer {keys['mlengineer']}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            me = response.status, json.loads(response.read())["username"]
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        reader.join(timeout=30)

    base = api.removesuffix("/api/v1/")
    assert screen[:5] == [
        "Tollgate: migrating the database ...",
        f"Tollgate: seeding the demo data (its log: {tmp_path / 'var' / 'seed_demo.log'}) ...",
        "",
        "Demo project 'fraud-detection' is ready. The console takes a username and password,",
        "the API a key (Authorization: Bearer <key>). staff creates projects and users.",
    ]
    assert [line for line in screen if LOG_LINE.match(line) or "kombu" in line or "celery" in line] == []
    assert list(keys) == PERSONAS
    assert screen[-5:] == [
        "",
        f"  console   {base}/console/",
        f"  API       {base}/api/v1/",
        f"  API docs  {base}/api/docs/",
        "A development server, not for production (see the README). Quit with CONTROL-C.",
    ]
    assert len(screen[3:]) < TERMINAL_ROWS  # the block and the URLs fit a terminal: nothing to scroll back for
    assert me == (200, "mlengineer")

    seed_log = (tmp_path / "var" / "seed_demo.log").read_text()
    assert "kombu" not in seed_log  # the in-memory broker has a host name: no "No hostname was supplied"
    assert len(re.findall(r"INFO celery\.app\.trace Task monitoring\.tasks\.\w+\[.*\] succeeded", seed_log)) >= 20


def test_the_seed_logs_to_its_file_and_lets_only_warnings_through_to_the_terminal(tmp_path):
    terminal = io.StringIO()
    handler = logging.StreamHandler(terminal)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with _logs_to(tmp_path / "var" / "seed_demo.log"):
            logging.getLogger("celery.app.trace").info("Task monitoring.tasks.run_check[1] succeeded")
            logging.getLogger("monitoring.services.execution").warning("run 7 ended in error")
        root.info("after the seed")
    finally:
        root.removeHandler(handler)

    assert terminal.getvalue().splitlines() == ["run 7 ended in error", "after the seed"]
    seed_log = (tmp_path / "var" / "seed_demo.log").read_text()
    assert "Task monitoring.tasks.run_check[1] succeeded" in seed_log and "run 7 ended in error" in seed_log
    assert "after the seed" not in seed_log
    assert handler.level == logging.NOTSET
