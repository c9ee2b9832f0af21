"""Tollgate's API against MLflow's model registry, side by side, on loopback and the same PostgreSQL (issue 19).

    .venv/bin/python -m bench.api_load [--duration 20] [--rounds 3] [--versions 3000] [--no-readme]

See bench/README.md ("API load against MLflow") for what it starts, measures and writes. Not a test: nothing in
tests/ imports it and pytest's testpaths (tests/) never collect it.
"""

import argparse
import atexit
import datetime
import json
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import openloop

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VAR = ROOT / "var" / "bench"
APP_PYTHON = Path(os.environ.get("BENCH_APP_PYTHON", ROOT / ".venv" / "bin" / "python"))
MLFLOW_VENV = Path(os.environ.get("BENCH_MLFLOW_VENV", VAR / "mlflow-venv"))
ADMIN_URL = os.environ.get("BENCH_ADMIN_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")
PG_LOG = Path(os.environ.get("BENCH_PG_LOG", "/var/log/postgresql/postgresql-15-main.log"))
TOLLGATE_DB, MLFLOW_DB = "tollgate_bench_api_load", "tollgate_bench_api_load_mlflow"
THROTTLE = "100000000/min"
CONNECTIONS, WRK_THREADS = 8, 2
CLK_TCK = os.sysconf("SC_CLK_TCK")
README = ROOT / "bench" / "README.md"
BEGIN, END = "<!-- api_load:begin -->", "<!-- api_load:end -->"


def log(message: str) -> None:
    print(f"api_load: {message}", flush=True)


# Processes -------------------------------------------------------------------------------------------------

STARTED: list[subprocess.Popen] = []


def start(name: str, argv: list[str], env: dict) -> subprocess.Popen:
    out = open(VAR / f"{name}.log", "w")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    STARTED.append(process)
    return process


def stop_all() -> None:
    """Stop every process group this run started (each server runs in its own session): TERM, then KILL."""
    for process in STARTED:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    for process in STARTED:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(process.pid, signal.SIGKILL)  # stragglers of the group (MLflow's job runner and huey consumers)
        except ProcessLookupError:
            pass
    STARTED.clear()


def _on_signal(signum, frame):
    stop_all()
    sys.exit(128 + signum)


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        for child in children(current):
            out.append(child)
            todo.append(child)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def cpu_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14 and 15 of proc(5))


def reaped_ticks(pid: int) -> int:
    """cutime + cstime of ``pid``: the CPU of its children that exited and were waited for."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[13]) + int(fields[14])


def parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def wait_http(url: str, timeout: float, headers: dict | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"api_load: {url} did not answer within {timeout:.0f} s")
        time.sleep(0.5)


# PostgreSQL ------------------------------------------------------------------------------------------------


def admin():
    import psycopg

    return psycopg.connect(ADMIN_URL, autocommit=True)


def database_url(name: str, driver: str = "postgres") -> str:
    parts = urllib.parse.urlsplit(ADMIN_URL)
    return urllib.parse.urlunsplit(parts._replace(scheme=driver, path=f"/{name}"))


def recreate(name: str) -> None:
    with admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def analyze(name: str) -> None:
    import psycopg

    with psycopg.connect(database_url(name), autocommit=True) as conn:
        conn.execute("ANALYZE")


def backends(name: str) -> list[int]:
    with admin() as conn:
        return [row[0] for row in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [name])]


def server_version() -> str:
    with admin() as conn:
        return conn.execute("SHOW server_version").fetchone()[0]


# The two sides ---------------------------------------------------------------------------------------------


class Side:
    name = ""
    database = ""
    port = 0
    process: subprocess.Popen

    def worker_pids(self) -> list[int]:
        raise NotImplementedError


class CpuMeter:
    """CPU (utime + stime) of a side's serving processes and of its database's PostgreSQL backends over a run.

    Backends come and go during a run (Django closes its connection once it is CONN_MAX_AGE = 60 s old, SQLAlchemy's
    pool closes its overflow connections), and an exited process's times are gone from /proc; so a thread samples
    every ``interval`` seconds and a backend counts up to the last sample that saw it: what an exiting backend used
    in its last interval is lost, and ``backends`` says how many were seen."""

    def __init__(self, side: Side, interval: float = 0.05):
        self.side, self.interval = side, interval

    def _sample(self, conn) -> None:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [self.side.database]).fetchall()
        for (pid,) in rows:
            ticks = cpu_ticks(pid)
            if ticks is not None:
                self.pg_base.setdefault(pid, 0 if self.running else ticks)  # a new backend: all of it is this run's
                self.pg_last[pid] = ticks

    def _loop(self) -> None:
        with admin() as conn:
            while not self.stop.wait(self.interval):
                self._sample(conn)
            self._sample(conn)

    def __enter__(self):
        self.workers = self.side.worker_pids()
        self.worker_base = {pid: cpu_ticks(pid) or 0 for pid in self.workers}
        self.pg_base, self.pg_last, self.running = {}, {}, False
        with admin() as conn:
            self._sample(conn)
            self.postmaster = parent(conn.execute("SELECT pg_backend_pid()").fetchone()[0])
        self.reaped_base = reaped_ticks(self.postmaster)
        self.running = True
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        ticks = sum((cpu_ticks(pid) or self.worker_base[pid]) - self.worker_base[pid] for pid in self.workers)
        self.workers_ms = ticks * 1000 / CLK_TCK
        self.pg_ms = sum(last - self.pg_base[pid] for pid, last in self.pg_last.items()) * 1000 / CLK_TCK
        self.backends = len(self.pg_last)
        # Every backend of the server that exited meanwhile (any database, other sessions' too): an upper bound on
        # what the sampling missed of this side's short-lived connections.
        self.reaped_ms = (reaped_ticks(self.postmaster) - self.reaped_base) * 1000 / CLK_TCK


class Tollgate(Side):
    name = "Tollgate"
    database = TOLLGATE_DB

    def __init__(self, port: int):
        self.port = port
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "controlplane.settings.production",
            "DJANGO_SECRET_KEY": "bench-api-load-" + "k" * 50,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": database_url(TOLLGATE_DB),
            "REDIS_URL": REDIS_URL,
            # The throttles (controlplane/settings/base.py) would otherwise answer 429 after 2,000 requests a minute.
            "TOLLGATE_THROTTLE_USER": THROTTLE,
            "TOLLGATE_THROTTLE_ANON": THROTTLE,
            "TOLLGATE_LOG_LEVEL": "WARNING",
            "TOLLGATE_VAR_DIR": str(VAR / "tollgate-var"),
        }
        for name in ("PGOPTIONS", "CI"):
            self.env.pop(name, None)

    def seed(self, versions: int) -> dict:
        result = subprocess.run(
            [str(APP_PYTHON), str(HERE / "seed_tollgate.py"), "--versions", str(versions)],
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            check=True,
            text=True,
        )
        self.facts = json.loads(result.stdout.strip().splitlines()[-1])
        self.headers = {"Authorization": f"Bearer {self.facts['key']}", "X-Forwarded-Proto": "https"}
        return self.facts

    def start(self) -> None:
        # As `make web` starts it (Makefile), with two workers and gunicorn's access log to a file.
        self.process = start(
            "tollgate-gunicorn",
            [
                str(APP_PYTHON),
                "-m",
                "gunicorn",
                "controlplane.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "2",
                "--access-logfile",
                str(VAR / "tollgate-access.log"),
                "--forwarded-allow-ips",
                "*",
            ],
            self.env,
        )

    def wait(self) -> None:
        wait_http(f"http://127.0.0.1:{self.port}/healthz", 60, {"X-Forwarded-Proto": "https"})

    def worker_pids(self) -> list[int]:
        return children(self.process.pid)

    def processes(self) -> str:
        return (
            f"{1 + len(self.worker_pids())} processes: the gunicorn master and {len(self.worker_pids())} sync workers"
        )

    def ops(self) -> dict:
        f = self.facts
        base = f"/api/v1/projects/{f['project']}"
        json_headers = {**self.headers, "Content-Type": "application/json"}
        register = {
            "artifact_uri": "s3://models/bench-writes/{SHA}/model.onnx",
            "artifact_sha256": "{SHA}",
            "framework": "sklearn",
            "signature": {
                "inputs": [{"name": "amount", "type": "float"}, {"name": "country", "type": "string"}],
                "outputs": [{"name": "score", "type": "float"}],
            },
            "params": {"max_depth": 6, "n_estimators": 200},
            "tags": ["gbm"],
        }
        deployment = f"{base}/deployments/{f['model']}/{f['environment']}/"
        return {
            "register": ("POST", f"{base}/models/{f['writes_model']}/versions/", json_headers, json.dumps(register)),
            "get": ("GET", f"{base}/models/{f['model']}/versions/{{V}}/", self.headers, ""),
            "list": ("GET", f"{base}/models/{f['model']}/versions/?page_size=20", self.headers, ""),
            "gates": (
                "GET",
                f"{base}/models/{f['model']}/versions/{f['gates_version']}/gates/?environment={f['environment']}",
                self.headers,
                "",
            ),
            "enforcement": ("GET", deployment, self.headers, ""),
            "verify": (
                "POST",
                f"{deployment}verify/",
                json_headers,
                json.dumps({"artifact_sha256": f["deployed_sha256"]}),
            ),
        }


class MLflow(Side):
    name = "MLflow"
    database = MLFLOW_DB
    model, writes_model = "bench-model", "bench-writes"

    def __init__(self, port: int):
        self.port = port
        self.env = {k: v for k, v in os.environ.items() if k not in ("PGOPTIONS", "DATABASE_URL")}
        self.headers = {}

    @staticmethod
    def ensure_venv() -> str:
        python = MLFLOW_VENV / "bin" / "python"
        if not python.exists():
            log(f"creating MLflow's own virtualenv in {MLFLOW_VENV} (pip install mlflow psycopg2-binary) ...")
            subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
            subprocess.run(
                [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", "mlflow", "psycopg2-binary"],
                check=True,
            )
        out = subprocess.run(
            [
                str(python),
                "-c",
                "import mlflow, sqlalchemy; print(f'{mlflow.__version__} (SQLAlchemy {sqlalchemy.__version__})')",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()

    def start(self) -> None:
        artifacts = VAR / "mlflow-artifacts"
        shutil.rmtree(artifacts, ignore_errors=True)
        artifacts.mkdir(parents=True)
        self.process = start(
            "mlflow-server",
            [
                str(MLFLOW_VENV / "bin" / "mlflow"),
                "server",
                "--backend-store-uri",
                database_url(MLFLOW_DB, "postgresql+psycopg2"),
                "--default-artifact-root",
                str(artifacts),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "2",
            ],
            self.env,
        )

    def wait(self) -> None:
        wait_http(f"http://127.0.0.1:{self.port}/health", 180)

    def worker_pids(self) -> list[int]:
        # mlflow server -> uvicorn supervisor -> two spawned worker processes (and multiprocessing's resource
        # tracker); the job runner and its huey consumers do not serve requests.
        return [pid for pid in descendants(self.process.pid) if "multiprocessing.spawn" in cmdline(pid)]

    def processes(self) -> str:
        every = descendants(self.process.pid)
        huey = sum("huey" in cmdline(pid) for pid in every)
        return (
            f"{1 + len(every)} processes: the mlflow CLI, a uvicorn supervisor, "
            f"{len(self.worker_pids())} uvicorn workers, "
            f"multiprocessing's resource tracker, a job runner and {huey} huey consumers"
        )

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        url = f"http://127.0.0.1:{self.port}/api/2.0/mlflow/{path}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def seed(self, versions: int) -> None:
        for name in (self.model, self.writes_model):
            self.call("POST", "registered-models/create", {"name": name})

        def create(n: int) -> None:
            self.call(
                "POST",
                "model-versions/create",
                {"name": self.model, "source": f"s3://models/{self.model}/{n}/model.onnx"},
            )

        with ThreadPoolExecutor(CONNECTIONS) as pool:
            list(pool.map(create, range(1, versions + 1)))
        self.call(
            "POST",
            "model-versions/create",
            {"name": self.writes_model, "source": f"s3://models/{self.writes_model}/1/model.onnx"},
        )

    def ops(self) -> dict:
        api = "/api/2.0/mlflow"
        search = urllib.parse.urlencode({"filter": f"name='{self.model}'", "max_results": 20})
        # The artifact's hash is part of the source URI: MLflow's model version has no hash field, and no tag is
        # sent, so MLflow stores as little as it can per version.
        register = {"name": self.writes_model, "source": "s3://models/bench-writes/{SHA}/model.onnx"}
        return {
            "register": (
                "POST",
                f"{api}/model-versions/create",
                {"Content-Type": "application/json"},
                json.dumps(register),
            ),
            "get": ("GET", f"{api}/model-versions/get?name={self.model}&version={{V}}", {}, ""),
            "list": ("GET", f"{api}/model-versions/search?{search}", {}, ""),
        }


# Load ------------------------------------------------------------------------------------------------------


def wrk(side: Side, op: str, duration: float, connections: int = CONNECTIONS, threads: int = WRK_THREADS) -> dict:
    method, path, headers, body = side.ops()[op]
    env = {
        **os.environ,
        "BENCH_METHOD": method,
        "BENCH_PATH": path,
        "BENCH_BODY": body,
        "BENCH_HEADERS": "|".join(f"{k}: {v}" for k, v in headers.items()),
        "BENCH_VERSIONS": str(ARGS.versions),
        "BENCH_NONCE": secrets.token_hex(8),
    }
    argv = [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{duration:g}s",
        "--timeout",
        "10s",
        "-s",
        str(HERE / "request.lua"),
        f"http://127.0.0.1:{side.port}",
    ]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("BENCH_RESULT "))
    result = json.loads(line.removeprefix("BENCH_RESULT "))
    result["errors"] = result["non2xx"] + sum(
        result[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
    )
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def measured(side: Side, op: str, duration: float) -> dict:
    with CpuMeter(side) as meter:
        result = wrk(side, op, duration)
    n = max(1, result["requests"])
    result["cpu_workers_ms"] = meter.workers_ms / n
    result["cpu_pg_ms"] = meter.pg_ms / n
    result["cpu_ms"] = result["cpu_workers_ms"] + result["cpu_pg_ms"]
    result["backends_seen"] = meter.backends
    result["pg_exited_any_db_ms"] = meter.reaped_ms / n
    return result


def count_statements(side: Side, op: str, duration: float) -> dict | None:
    """Statements per request from PostgreSQL's own log: log_statement = all on the side's database only (set
    on the database, so every new session of it logs), its sessions ended so the servers reconnect with it,
    then one connection at a time so that nothing else of that database is in the log meanwhile."""
    try:
        PG_LOG.stat()
        open(PG_LOG, "rb").close()
    except OSError:
        return None
    wrk(side, op, 2, connections=1, threads=1)  # reconnect and warm up
    offset = PG_LOG.stat().st_size
    result = wrk(side, op, duration, connections=1, threads=1)
    time.sleep(0.5)
    with open(PG_LOG, "rb") as handle:
        handle.seek(offset)
        text = handle.read().decode(errors="replace")
    pattern = re.compile(rf"@{re.escape(side.database)} LOG:  (?:statement|execute [^:]*): (.*)")
    statements = [m.group(1).strip() for m in pattern.finditer(text)]
    control = sum(bool(re.match(r"(BEGIN|COMMIT|ROLLBACK)\b", s, re.I)) for s in statements)
    n = max(1, result["requests"])
    per_request = round(len(statements) / n)
    return {
        "requests": result["requests"],
        "statements": len(statements) / n,
        "without_begin_commit": (len(statements) - control) / n,
        # What one request sends (the log's second request onwards, statements cut at 300 characters).
        "sample": [s[:300] for s in statements[per_request : 2 * per_request]],
    }


def logging_statements(database: str, on: bool) -> None:
    with admin() as conn:
        if on:
            conn.execute(f"ALTER DATABASE \"{database}\" SET log_statement = 'all'")
        else:
            conn.execute(f'ALTER DATABASE "{database}" RESET log_statement')
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [database],
        )


def check(side: Side, op: str) -> str:
    """One request of each operation before the load, answered as expected: the load measures correct answers."""
    method, path, headers, body = side.ops()[op]
    path = path.replace("{V}", "7")
    body = body.replace("{SHA}", secrets.token_hex(32))
    request = urllib.request.Request(
        f"http://127.0.0.1:{side.port}{path}", data=body.encode() if body else None, method=method, headers=headers
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
        status = response.status
    expect = {
        ("Tollgate", "register"): lambda a: (
            status == 201 and a["artifact_sha256"] == json.loads(body)["artifact_sha256"]
        ),
        ("Tollgate", "get"): lambda a: a["version"] == 7,
        ("Tollgate", "list"): lambda a: len(a["results"]) == 20 and a["count"] == ARGS.versions,
        ("Tollgate", "gates"): lambda a: len(a["gates"]) > 0,
        ("Tollgate", "enforcement"): lambda a: a["artifact_sha256"] == side.facts["deployed_sha256"],
        ("Tollgate", "verify"): lambda a: a["allowed"] is True,
        ("MLflow", "register"): lambda a: a["model_version"]["source"] == json.loads(body)["source"],
        ("MLflow", "get"): lambda a: a["model_version"]["version"] == "7",
        ("MLflow", "list"): lambda a: len(a["model_versions"]) == 20,
    }[(side.name, op)]
    if not expect(answer):
        raise SystemExit(f"api_load: {side.name} {op} answered {status} {str(answer)[:300]}")
    return f"{status}"


# Report ----------------------------------------------------------------------------------------------------

OPS = [
    ("register", "register a version (new artifact sha256 each time)"),
    ("get", "get a version (random of the model's N)"),
    ("list", "list 20 versions of N"),
    ("gates", "gates dry run (version 1, production)"),
    ("enforcement", "enforcement point GET"),
    ("verify", "enforcement point verify/"),
]
MLFLOW_OPS = {"register", "get", "list"}


def summarise(runs: list[dict]) -> dict:
    rps = [r["rps"] for r in runs]
    by_cpu = sorted(runs, key=lambda r: r["cpu_ms"])
    middle = by_cpu[(len(by_cpu) - 1) // 2]  # the run of median CPU per request, with its own split
    return {
        "rps_median": statistics.median(rps),
        "rps_min": min(rps),
        "rps_max": max(rps),
        "p50_ms": statistics.median(r["p50_us"] for r in runs) / 1000,
        "p99_ms": statistics.median(r["p99_us"] for r in runs) / 1000,
        "errors": sum(r["errors"] for r in runs),
        "requests": sum(r["requests"] for r in runs),
        "cpu_ms": middle["cpu_ms"],
        "cpu_workers_ms": middle["cpu_workers_ms"],
        "cpu_pg_ms": middle["cpu_pg_ms"],
    }


def fmt(value, digits=1):
    return "–" if value is None else f"{value:,.{digits}f}"


def report(meta: dict, results: dict, queries: dict, open_loop: dict | None) -> str:
    lines = [
        f"Measured {meta['date']} with `{meta['command']}`: {meta['machine']}; load average before "
        f"{meta['load_before']}, after {meta['load_after']}. PostgreSQL {meta['postgres']}; Tollgate at "
        f"{meta['commit']} ({meta['tollgate_processes']}); MLflow {meta['mlflow']} in its own virtualenv "
        f"({meta['mlflow_processes']}). {meta['versions']:,} versions seeded in each, then `ANALYZE`. wrk "
        f"{CONNECTIONS} connections ({WRK_THREADS} threads), {meta['rounds']} rounds of {meta['duration']} s per "
        "operation, interleaved run by run (each round alternates which side goes first). Throttle limits "
        f"raised: TOLLGATE_THROTTLE_USER = TOLLGATE_THROTTLE_ANON = {THROTTLE}.",
        "",
        "| operation | side | req/s median (min–max) | p50 ms | p99 ms | errors / requests | CPU ms/req = workers + PG "
        "| statements/req (without BEGIN/COMMIT) | req/s Tollgate ÷ MLflow | CPU/req MLflow ÷ Tollgate |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for op, label in OPS:
        for side in ("Tollgate", "MLflow"):
            s = results.get((side, op))
            if s is None:
                continue
            q = queries.get((side, op))
            qtext = f"{q['statements']:.1f} ({q['without_begin_commit']:.1f})" if q else "–"
            ratio = cpu_ratio = ""
            if side == "Tollgate" and ("MLflow", op) in results:
                m = results[("MLflow", op)]
                ratio = f"**{s['rps_median'] / m['rps_median']:.2f}×**"
                cpu_ratio = f"{m['cpu_ms'] / s['cpu_ms']:.2f}×" if s["cpu_ms"] else ""
            elif side == "Tollgate" and op in ("verify", "gates", "enforcement") and ("MLflow", "get") in results:
                m = results[("MLflow", "get")]
                ratio = f"{s['rps_median'] / m['rps_median']:.2f}× of MLflow get"
                cpu_ratio = f"{m['cpu_ms'] / s['cpu_ms']:.2f}× of MLflow get" if s["cpu_ms"] else ""
            lines.append(
                f"| {label if side == 'Tollgate' or op in MLFLOW_OPS else ''} | {side} | {fmt(s['rps_median'])} "
                f"({fmt(s['rps_min'])}–{fmt(s['rps_max'])}) | {fmt(s['p50_ms'])} | {fmt(s['p99_ms'])} | "
                f"{s['errors']} / {s['requests']:,} | {fmt(s['cpu_ms'])} = {fmt(s['cpu_workers_ms'])} + "
                f"{fmt(s['cpu_pg_ms'])} | {qtext} | {ratio} | {cpu_ratio} |"
            )
    if open_loop:
        o = open_loop
        lines += [
            "",
            f"Open loop, `verify/` at a fixed offered rate of half its closed-loop median ({fmt(o['offered_rps'])} "
            f"req/s for {fmt(o['elapsed_s'], 0)} s, `bench/api_load/openloop.py`, asyncio, latency counted from "
            f"when each request was due): achieved {fmt(o['achieved_rps'])} req/s, p50 {fmt(o['p50_ms'])} ms, "
            f"p90 {fmt(o['p90_ms'])} ms, **p99 {fmt(o['p99_ms'])} ms**, max {fmt(o['max_ms'])} ms, "
            f"{o['non2xx']} non-2xx, {o['socket']} socket errors; CPU {fmt(o.get('cpu_ms'))} ms/req.",
        ]
    return "\n".join(lines)


def write_readme(block: str) -> None:
    text = README.read_text()
    if BEGIN not in text:
        raise SystemExit(f"api_load: {README} has no {BEGIN} marker")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{BEGIN}\n{block}\n{END}{tail}")


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=20, help="seconds per wrk run (default 20)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--versions", type=int, default=3000, help="versions of the model seeded on each side")
    parser.add_argument("--open-loop-seconds", type=float, default=30)
    parser.add_argument("--count-seconds", type=int, default=4, help="per operation in the statement count pass")
    parser.add_argument("--ops", default=",".join(op for op, _ in OPS), help="comma-separated subset")
    parser.add_argument("--tollgate-port", type=int, default=18701)
    parser.add_argument("--mlflow-port", type=int, default=18702)
    parser.add_argument("--no-readme", action="store_true", help="print the table, do not rewrite bench/README.md")
    ARGS = parser.parse_args()
    ops = [op for op, _ in OPS if op in ARGS.ops.split(",")]

    if shutil.which("wrk") is None:
        raise SystemExit("api_load: needs wrk (apt-get install -y wrk)")
    VAR.mkdir(parents=True, exist_ok=True)
    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    meta = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": ".venv/bin/python -m bench.api_load" + "".join(f" {a}" for a in sys.argv[1:]),
        "machine": f"{os.cpu_count()} vCPUs, {platform.processor() or platform.machine()}, Python "
        f"{platform.python_version()}",
        "load_before": loadavg(),
        "rounds": ARGS.rounds,
        "duration": ARGS.duration,
        "versions": ARGS.versions,
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
    }
    meta["mlflow"] = MLflow.ensure_venv()
    meta["postgres"] = server_version()
    log(f"MLflow {meta['mlflow']}; PostgreSQL {meta['postgres']}; load average {meta['load_before']}")

    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()  # the throttle's counters and queued task messages of earlier runs
    tollgate, mlflow = Tollgate(ARGS.tollgate_port), MLflow(ARGS.mlflow_port)
    for database in (TOLLGATE_DB, MLFLOW_DB):
        recreate(database)
    log(f"fresh databases {TOLLGATE_DB} and {MLFLOW_DB}; starting MLflow (it migrates its schema) ...")
    mlflow.start()
    log(f"seeding Tollgate: {ARGS.versions:,} versions through its registry service ...")
    started = time.monotonic()
    tollgate.seed(ARGS.versions)
    log(
        f"  {time.monotonic() - started:.0f} s; starting gunicorn (production settings, two workers); throttle "
        f"limits raised to {THROTTLE} (TOLLGATE_THROTTLE_USER, TOLLGATE_THROTTLE_ANON)"
    )
    tollgate.start()
    tollgate.wait()
    mlflow.wait()
    log(f"seeding MLflow: {ARGS.versions:,} versions through its REST API ...")
    started = time.monotonic()
    mlflow.seed(ARGS.versions)
    log(f"  {time.monotonic() - started:.0f} s; ANALYZE both databases")
    for database in (TOLLGATE_DB, MLFLOW_DB):
        analyze(database)
    meta["tollgate_processes"], meta["mlflow_processes"] = tollgate.processes(), mlflow.processes()
    log(f"Tollgate runs {meta['tollgate_processes']}; MLflow runs {meta['mlflow_processes']}")

    pairs = [(side, op) for op in ops for side in (tollgate, mlflow) if side is tollgate or op in MLFLOW_OPS]
    for side, op in pairs:
        check(side, op)
    log("every operation answered correctly once; warming up (3 s each) ...")
    for side, op in pairs:
        wrk(side, op, 3)

    runs: dict = {}
    for round_number in range(1, ARGS.rounds + 1):
        log(f"round {round_number} of {ARGS.rounds}")
        for op in ops:
            sides = [s for s in (tollgate, mlflow) if s is tollgate or op in MLFLOW_OPS]
            if round_number % 2 == 0:
                sides.reverse()
            for side in sides:
                result = measured(side, op, ARGS.duration)
                runs.setdefault((side.name, op), []).append(result)
                extra = (
                    f" (last: {result['last_bad_status']} {result['last_bad_body'][:120]})" if result["errors"] else ""
                )
                log(
                    f"  {side.name:8} {op:11} {result['rps']:7.1f} req/s  p50 {result['p50_us'] / 1000:6.1f} ms  "
                    f"p99 {result['p99_us'] / 1000:6.1f} ms  errors {result['errors']}{extra}  CPU "
                    f"{result['cpu_ms']:.1f} ms/req ({result['cpu_workers_ms']:.1f} workers + "
                    f"{result['cpu_pg_ms']:.1f} PG, {result['backends_seen']} backends)"
                )
    results = {key: summarise(value) for key, value in runs.items()}

    open_loop = None
    if "verify" in ops:
        rate = results[("Tollgate", "verify")]["rps_median"] / 2
        log(f"open loop: verify/ at {rate:.1f} req/s for {ARGS.open_loop_seconds:.0f} s ...")
        method, path, headers, body = tollgate.ops()["verify"]
        payload = openloop.raw_request(method, path, f"127.0.0.1:{tollgate.port}", headers, body)
        with CpuMeter(tollgate) as meter:
            open_loop = openloop.run("127.0.0.1", tollgate.port, payload, rate=rate, duration=ARGS.open_loop_seconds)
        open_loop["cpu_ms"] = (meter.workers_ms + meter.pg_ms) / max(1, open_loop["answered"])
        log(
            f"  p50 {open_loop['p50_ms']:.1f} ms  p99 {open_loop['p99_ms']:.1f} ms  achieved "
            f"{open_loop['achieved_rps']:.1f} req/s  errors {open_loop['non2xx'] + open_loop['socket']}"
        )

    log("statement counts (log_statement = all on the two databases, one connection) ...")
    queries = {}
    for side in (tollgate, mlflow):
        logging_statements(side.database, True)
    try:
        for side, op in pairs:
            counted = count_statements(side, op, ARGS.count_seconds)
            if counted is None:
                log(f"  {PG_LOG} is not readable: no statement counts")
                break
            queries[(side.name, op)] = counted
            log(
                f"  {side.name:8} {op:11} {counted['statements']:.1f} statements/req "
                f"({counted['without_begin_commit']:.1f} without BEGIN/COMMIT)"
            )
    finally:
        for side in (tollgate, mlflow):
            logging_statements(side.database, False)

    meta["load_after"] = loadavg()
    block = report(meta, results, queries, open_loop)
    raw = VAR / f"api_load-{datetime.datetime.now(datetime.UTC).strftime('%Y%m%dT%H%M%S')}.json"
    raw.write_text(
        json.dumps(
            {
                "meta": meta,
                "runs": {f"{k[0]} {k[1]}": v for k, v in runs.items()},
                "queries": {f"{k[0]} {k[1]}": v for k, v in queries.items()},
                "open_loop": open_loop,
            },
            indent=1,
        )
    )
    print()
    print(block)
    print()
    log(f"raw results: {raw}")
    if not ARGS.no_readme:
        write_readme(block)
        log(f"wrote {README.relative_to(ROOT)}")


ARGS = argparse.Namespace()

if __name__ == "__main__":
    main()
