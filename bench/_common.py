"""Shared set-up for the benchmarks: production settings on a throwaway PostgreSQL database, and WSGI calls.

Not a test module; nothing here runs in CI.
"""

import io
import os
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get("BENCH_ADMIN_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def database_url(name: str) -> str:
    parts = urlsplit(ADMIN_URL)
    return urlunsplit(parts._replace(path=f"/{name}"))


def configure(database: str, *, create: bool) -> None:
    """Production settings (DESIGN §10) on ``database``, recreated first when ``create``; then django.setup()."""
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "controlplane.settings.production"
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-" + "x" * 60)
    os.environ["DATABASE_URL"] = database_url(database)
    # The throttles would otherwise answer 429 after the first few thousand requests.
    os.environ["TOLLGATE_THROTTLE_USER"] = "100000000/min"
    os.environ["TOLLGATE_THROTTLE_ANON"] = "100000000/min"
    os.environ.setdefault("TOLLGATE_LOG_LEVEL", "WARNING")
    if create:
        import psycopg

        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{database}"')

    import django
    from django.conf import settings

    django.setup()
    # The manifest storage of production needs collectstatic; do it into a temporary folder.
    settings.STATIC_ROOT = tempfile.mkdtemp(prefix="tollgate-bench-static-")
    from django.core.management import call_command

    call_command("collectstatic", interactive=False, verbosity=0)
    if create:
        call_command("migrate", verbosity=0)


def environ(path: str, *, method: str = "GET", query: str = "", headers: dict | None = None) -> dict:
    """A WSGI environ as the proxy in front of production hands it on: HTTPS, one forwarding hop."""
    env = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "443",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "localhost",
        "HTTP_X_FORWARDED_PROTO": "https",
        "HTTP_X_FORWARDED_FOR": "198.51.100.7",
        "REMOTE_ADDR": "10.0.0.2",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for name, value in (headers or {}).items():
        env["HTTP_" + name.upper().replace("-", "_")] = value
    return env


def call(handler, env: dict):
    """One request through ``handler``; returns (status, body iterator's bytes count)."""
    status = []

    def start_response(line, headers, exc_info=None):
        status.append(int(line.split(" ", 1)[0]))

    response = handler(env, start_response)
    size = 0
    try:
        for chunk in response:
            size += len(chunk)
    finally:
        response.close()  # request_finished: what a WSGI server does after the last byte
    return status[0], size
