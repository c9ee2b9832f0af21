"""Real Celery workers and private Redis servers for tests (a pytest plugin, loaded by tests/conftest.py).

Fixtures:

- ``celery_worker_process``: a running ``celery -A controlplane worker`` subprocess (queues default, checks,
  reports; concurrency 1) against the *test* database and the test's broker; stopped after the test.
- ``celery_worker_factory``: ``start()`` such a worker when the test chooses (e.g. after publishing).
- ``private_redis``: a redis-server of the test's own, without persistence, that the test can ``stop()``
  and ``start()``; while it is requested, the app (and every worker of the test) uses it as the broker.
- ``celery_eager``: run tasks in process for one test, even with ``REDIS_URL`` set.

A test with a worker needs ``@pytest.mark.django_db(transaction=True)`` (the worker only sees committed
rows) and ``@pytest.mark.worker``; it runs on PostgreSQL only (the SQLite test database is in memory).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import kombu.pools
import pytest
import redis
from django.conf import settings
from kombu import Connection

from controlplane.celery import app as celery_app

QUEUES = ("default", "checks", "reports")
REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"
READY_TIMEOUT = 60


def wait_for(predicate, *, timeout: float = 30, interval: float = 0.1, message: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def _free_port(start: int = 6390, end: int = 6490) -> int:
    for port in range(start, end):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {start}..{end}")


class PrivateRedis:
    """A redis-server on its own port without persistence: ``stop()`` loses every message it held."""

    def __init__(self, directory: Path):
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = directory
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        assert self.process is None, "already running"
        self.process = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", str(self.directory)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)

        def answers():
            try:
                return client.ping()
            except redis.ConnectionError:
                assert self.process.poll() is None, f"redis-server on port {self.port} exited"
                return False

        wait_for(answers, timeout=10, message=f"redis-server on port {self.port}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def queue_length(self, queue: str = "default") -> int:
        return redis.Redis.from_url(self.url).llen(queue)


def _reset_broker_pool() -> None:
    """Forget the app's broker connections, so the next publish connects to the current ``broker_url``.

    Kombu's pool registry is emptied too: it is keyed by URL and would otherwise hand the closed pool back
    when a later test publishes to a URL used before ("Acquire on closed pool")."""
    if celery_app._pool is not None:
        celery_app._pool.force_close_all()
    celery_app._pool = None
    amqp = celery_app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None
    kombu.pools.reset()


def _use_broker(url: str, settings_fixture) -> None:
    settings_fixture.REDIS_URL = url
    settings_fixture.CELERY_BROKER_URL = url
    celery_app.conf.broker_url = url
    _reset_broker_pool()


@pytest.fixture
def private_redis(settings, tmp_path):
    """A redis-server of this test's own, made the app's broker for the test (and its workers')."""
    server = PrivateRedis(tmp_path)
    server.start()
    previous = celery_app.conf.broker_url
    _use_broker(server.url, settings)
    yield server
    celery_app.conf.broker_url = previous
    _reset_broker_pool()
    server.stop()


@pytest.fixture
def celery_eager(settings):
    """Tasks run in process, after commit, as without ``REDIS_URL``."""
    previous = celery_app.conf.task_always_eager
    settings.CELERY_TASK_ALWAYS_EAGER = True
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


def _test_database_url() -> str:
    db = settings.DATABASES["default"]
    credentials = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{credentials}@{host}{port}/{quote(str(db['NAME']), safe='')}"


def purge_queues(broker_url: str) -> None:
    with Connection(broker_url, connect_timeout=5) as connection:
        channel = connection.default_channel
        for queue in QUEUES:
            channel.queue_purge(queue)


class CeleryWorker:
    """A ``celery -A controlplane worker`` subprocess; its output goes to ``log_path``."""

    def __init__(self, broker_url: str, log_path: Path):
        self.broker_url = broker_url
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> CeleryWorker:
        assert self.process is None, "already running"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "controlplane.settings.test",
            "DATABASE_URL": _test_database_url(),
            "REDIS_URL": self.broker_url,
            "PYTHONUNBUFFERED": "1",
        }
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log_file = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "controlplane", "worker"),
                *("--queues", ",".join(QUEUES), "--concurrency", "1", "--loglevel", "INFO"),
                *("--hostname", f"test-{os.getpid()}-{time.monotonic_ns()}@%h"),
                *("--without-heartbeat", "--without-gossip", "--without-mingle"),
            ],
            cwd=REPO,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends the pool children too
        )
        log_file.close()

        def ready():
            assert self.process.poll() is None, f"the worker exited ({self.process.returncode}):\n{self.log()}"
            return " ready." in self.log(since_start=True)

        wait_for(ready, timeout=READY_TIMEOUT, interval=0.2, message=f"the Celery worker:\n{self.log()}")
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)  # warm shutdown: finishes the task it runs
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            self.process.wait()
        self.process = None

    def log(self, *, since_start: bool = False) -> str:
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_bytes()
        if since_start:
            text = text[self._offset :]
        return text.decode("utf-8", "replace")

    def succeeded(self, task_name: str) -> int:
        """How many times this worker has run ``task_name`` to the end."""
        return sum(1 for line in self.log().splitlines() if f"Task {task_name}[" in line and " succeeded in " in line)


@pytest.fixture
def celery_worker_factory(request, tmp_path):
    """``start()`` a real worker against the test database and the test's broker (``private_redis`` when the
    test uses it, else ``REDIS_URL``). The queues are purged when the fixture is set up, before the test
    publishes; every worker started is stopped after the test, and its log printed if the test failed."""
    if not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        reason = "a worker process needs the test database on PostgreSQL: set DATABASE_URL"
        if IN_CI:
            pytest.fail(f"{reason}; CI=true never skips it", pytrace=False)
        pytest.skip(reason)
    if "private_redis" in request.fixturenames:
        broker_url = request.getfixturevalue("private_redis").url
    elif os.environ.get("PYTEST_XDIST_WORKER"):
        # Parallel test processes must not consume each other's messages: each gets a Redis of its own.
        broker_url = request.getfixturevalue("private_redis").url
    else:
        broker_url = settings.REDIS_URL
    purge_queues(broker_url)  # before the test publishes anything: messages of earlier runs are not its own
    workers: list[CeleryWorker] = []
    log_dir = Path(tempfile.mkdtemp(prefix="celery-worker-", dir=tmp_path))

    def start() -> CeleryWorker:
        worker = CeleryWorker(broker_url, log_dir / f"worker-{len(workers)}.log")
        workers.append(worker)
        return worker.start()

    yield start
    for worker in workers:
        worker.stop()
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        for worker in workers:
            sys.stderr.write(f"\n--- {worker.log_path.name} ---\n{worker.log()[-8000:]}\n")


@pytest.fixture
def celery_worker_process(celery_worker_factory):
    """A running worker (see ``celery_worker_factory``)."""
    return celery_worker_factory()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
