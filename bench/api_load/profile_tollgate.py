"""Where one Tollgate request's CPU goes: cProfile of an operation of ``bench.api_load`` in process.

Runs after ``python -m bench.api_load`` on the database it left behind (``tollgate_bench_api_load``), with the same
production settings and Redis, through Django's WSGI handler (no gunicorn, no socket), and prints the functions
with the most cumulative time and a split by area (database, serialisation, authentication, throttle, ...).

    .venv/bin/python bench/api_load/profile_tollgate.py get [--requests 300] [--time] [--database NAME]
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import secrets
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AREAS = [  # first match wins, on the file name of the function's code
    ("PostgreSQL driver (psycopg)", "/psycopg/"),
    ("Django ORM: SQL compiler", "django/db/models/sql/"),
    ("Django ORM: other", "django/db/"),
    ("DRF serializers / fields", "rest_framework/serializers.py"),
    ("DRF serializers / fields", "rest_framework/fields.py"),
    ("DRF other", "rest_framework/"),
    ("Redis client (throttle)", "/redis/"),
    ("Tollgate: governance", "/governance/"),
    ("Tollgate: controlplane", "/controlplane/"),
    ("Django other", "/django/"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("op", choices=["register", "get", "list", "gates", "enforcement", "verify"])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--database", help="another copy of the database the last run left (default: that one)")
    parser.add_argument("--time", action="store_true", help="CPU ms per request without cProfile, no profile")
    parser.add_argument("--dump", type=Path, help="also write the profile's stats to this file (pstats)")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from bench.api_load.__main__ import Tollgate

    side = Tollgate(0)
    os.environ.update({k: v for k, v in side.env.items() if k.startswith(("DJANGO", "TOLLGATE", "DATABASE", "REDIS"))})
    if args.database:
        os.environ["DATABASE_URL"] = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/" + args.database
    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler

    from governance.accounts.access import Principal
    from governance.accounts.models import User
    from governance.accounts.services import api_key_issue
    from governance.promotion.models import Deployment

    engineer = User.objects.get(username="mlengineer")
    raw_key = api_key_issue(
        actor=Principal(engineer), owner=engineer, project=None, name="profile", read_only=False, expires_at=None
    )[1]
    deployed = Deployment.objects.select_related("model_version").get(model__name="bench-model")
    side.facts = {
        "key": raw_key, "project": "bench", "model": "bench-model", "writes_model": "bench-writes",
        "environment": "production", "deployed_sha256": deployed.model_version.artifact_sha256, "gates_version": 1,
    }  # fmt: skip
    side.headers = {"Authorization": f"Bearer {raw_key}", "X-Forwarded-Proto": "https"}
    method, path, headers, body = side.ops()[args.op]
    handler = WSGIHandler()

    def once(i: int) -> int:
        url = path.replace("{V}", str(1 + i % 3000))
        data = body.replace("{SHA}", secrets.token_hex(32)).encode()
        script, _, query = url.partition("?")
        env = {
            "REQUEST_METHOD": method, "PATH_INFO": script, "QUERY_STRING": query, "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "127.0.0.1", "REMOTE_ADDR": "127.0.0.1",
            "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(data),
            "wsgi.errors": sys.stderr, "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
            "CONTENT_LENGTH": str(len(data)) if body else "",
        }  # fmt: skip
        if body:
            env["CONTENT_TYPE"] = "application/json"
        for name, value in headers.items():
            if name.lower() != "content-type":
                env["HTTP_" + name.upper().replace("-", "_")] = value
        status = []
        response = handler(env, lambda line, hdrs, exc_info=None: status.append(int(line.split()[0])))
        for _ in response:
            pass
        response.close()
        return status[0]

    for i in range(20):  # warm up: imports, connections, caches
        assert 200 <= once(i) < 300, args.op
    if args.time:  # the median of five batches: CPU of this process, and of its PostgreSQL backend
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
        stat = Path(f"/proc/{backend}/stat")

        def backend_seconds() -> float:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        batches, pg = [], []
        for _ in range(5):
            started, pg_started = time.process_time(), backend_seconds()
            for i in range(args.requests // 5):
                once(i)
            batches.append((time.process_time() - started) / (args.requests // 5) * 1000)
            pg.append((backend_seconds() - pg_started) / (args.requests // 5) * 1000)
        # Python function calls per request: a measure of the work that the machine's load does not move.
        calls = cProfile.Profile()
        calls.enable()
        for i in range(100):
            once(i)
        calls.disable()
        per_request = sum(row[1] for row in pstats.Stats(calls).stats.values()) / 100
        summary = {"op": args.op, "cpu_ms_per_request": sorted(batches)[2], "pg_ms_per_request": sorted(pg)[2]}
        print(json.dumps({**summary, "python_calls_per_request": round(per_request)}))
        return
    profile = cProfile.Profile(time.process_time)  # CPU, not waiting on PostgreSQL or Redis
    profile.enable()
    for i in range(args.requests):
        once(i)
    profile.disable()

    stats = pstats.Stats(profile)
    if args.dump:
        stats.dump_stats(args.dump)
    total = sum(row[2] for row in stats.stats.values())  # tottime of every function: the whole profiled time
    areas: dict[str, float] = {}
    for (filename, _, _), row in stats.stats.items():
        area = next((name for name, part in AREAS if part in filename), "other (stdlib, json, ...)")
        areas[area] = areas.get(area, 0.0) + row[2]
    print(f"{args.op}: {total / args.requests * 1000:.1f} ms CPU per request, cProfile ({args.requests})")
    print("self time by area:")
    for area, seconds in sorted(areas.items(), key=lambda item: -item[1]):
        print(f"  {area:32} {seconds / total * 100:5.1f} %")
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(45)
    print(out.getvalue())
    print(json.dumps({"op": args.op, "ms_per_request": total / args.requests * 1000}))


if __name__ == "__main__":
    main()
