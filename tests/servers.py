"""Real processes for HTTP tests: the web process as ``make web`` starts it, and a PostgreSQL cluster of the
test's own that it can stop and start.

- ``WebServer(database_url, log_path, **environment).start()``: ``make web`` (gunicorn, one worker) on a free
  port, with the test settings; ``stop()`` ends its process group.
- ``PrivatePostgres().start()``: ``initdb`` and ``pg_ctl`` from the machine's PostgreSQL on a free
  port (as the ``postgres`` user when the tests run as root: initdb refuses root); ``stop()`` is a fast
  shutdown, ``start()`` brings the same cluster back, ``remove()`` stops it and deletes its folder.
"""

from __future__ import annotations

import glob
import http.client
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.worker import REPO, _free_port, wait_for

READY_TIMEOUT = 60


class WebServer:
    def __init__(self, database_url: str, log_path: Path, **environment: str):
        self.port = _free_port(8790, 8890)
        self.database_url = database_url
        self.log_path = log_path
        self.environment = environment
        self.process: subprocess.Popen | None = None

    def start(self) -> WebServer:
        assert self.process is None, "already running"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "controlplane.settings.test",
            "DATABASE_URL": self.database_url,
            "PYTHONUNBUFFERED": "1",
            **self.environment,
        }
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                [
                    *("make", "--no-print-directory", "web", f"PY={sys.executable}"),
                    *(f"BIND=127.0.0.1:{self.port}", "WEB_WORKERS=1"),
                ],
                cwd=REPO,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends make, the arbiter and its worker
            )

        def answers():
            assert self.process.poll() is None, f"make web exited ({self.process.returncode}):\n{self.log()}"
            try:
                return self.request("GET", "/healthz").status == 200
            except OSError:
                return False

        wait_for(answers, timeout=READY_TIMEOUT, interval=0.2, message=f"make web on port {self.port}")
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            self.process.wait()
        self.process = None

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def request(self, method: str, path: str, body=None, headers: dict | None = None, **options):
        """One request on a fresh connection; the response is read (``.body``) before it is returned."""
        connection = self.connection()
        try:
            connection.request(method, path, body=body, headers=headers or {}, **options)
            response = connection.getresponse()
            response.body = response.read()
            return response
        finally:
            connection.close()

    def log(self) -> str:
        return self.log_path.read_text("utf-8", "replace") if self.log_path.exists() else ""


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    assert initdb, "no PostgreSQL server binaries (initdb, pg_ctl) on this machine"
    return Path(initdb).parent


class PrivatePostgres:
    def __init__(self):
        self.port = _free_port(5490, 5590)
        self.bin = _postgres_bin()
        # Its own folder under /tmp, not the test's tmp_path: the postgres user must be able to reach it.
        self.directory = Path(tempfile.mkdtemp(prefix="tollgate-postgres-"))
        self.data = self.directory / "data"
        self.url_base = f"postgres://postgres@127.0.0.1:{self.port}"
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            account = pwd.getpwnam("postgres")
            os.chown(self.directory, account.pw_uid, account.pw_gid)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")

    def _run(self, program: str, *arguments: str) -> str:
        command = [str(self.bin / program), *arguments]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.directory)
        assert done.returncode == 0, f"{program} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def start(self) -> None:
        if (self.data / "postmaster.pid").exists():
            return  # running
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.directory / "server.log"), "-w",
                  "start")  # fmt: skip

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def create_database(self, name: str) -> str:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return f"{self.url_base}/{name}"

    def psql(self, database: str, sql: str) -> str:
        return self._run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database,
                         "-v", "ON_ERROR_STOP=1", "-qAtc", sql)  # fmt: skip
