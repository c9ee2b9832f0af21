"""Per-request overhead of the access log middleware (DESIGN §10; target: under 1 ms).

The same requests through two WSGI handlers built from production settings, one with
``governance.audit.middleware.AccessLogMiddleware`` and one without, on a throwaway PostgreSQL database, in
alternation, one request each, so that drift (autovacuum, other load) hits both alike; medians reported.

    .venv/bin/python bench/access_log.py [--requests 1500]
"""

import argparse
import statistics
import time

from _common import call, configure, environ

DATABASE = "tollgate_bench_access_log"
MIDDLEWARE = "governance.audit.middleware.AccessLogMiddleware"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1500, help="per endpoint and variant (default 1500)")
    args = parser.parse_args()

    configure(DATABASE, create=True)
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connection
    from django.test.utils import override_settings

    from governance.accounts.access import Principal
    from governance.accounts.models import Role, User
    from governance.accounts.services import api_key_issue, project_create, role_grant
    from governance.audit.models import AccessLogEntry

    staff = User.objects.create_user("staff", is_staff=True)
    admin = User.objects.create_user("admin")
    auditor = User.objects.create_user("auditor")
    project = project_create(actor=Principal(staff), slug="bench", name="Bench", admin=admin)
    role_grant(actor=Principal(admin), project=project, principal=auditor, role=Role.AUDITOR)
    _, raw_key = api_key_issue(
        actor=Principal(auditor), owner=auditor, project=None, name="bench", read_only=False, expires_at=None
    )
    bearer = {"Authorization": f"Bearer {raw_key}"}

    assert MIDDLEWARE in settings.MIDDLEWARE
    with_log = WSGIHandler()
    with override_settings(MIDDLEWARE=[m for m in settings.MIDDLEWARE if m != MIDDLEWARE]):
        without_log = WSGIHandler()
    connection.close()

    cases = [
        ("GET project (API key)", environ("/api/v1/projects/bench/", headers=bearer), 200),
        ("GET members list (API key)", environ("/api/v1/projects/bench/members/", headers=bearer), 200),
        ("GET projects, anonymous (401)", environ("/api/v1/projects/"), 401),
        ("GET console login page", environ("/console/login/"), 200),
    ]
    print(f"PostgreSQL {connection.cursor().connection.info.server_version}, {args.requests} requests per cell")
    rows = []
    for name, env, expected in cases:
        for handler in (with_log, without_log):  # warm up both: imports, templates, connections
            for _ in range(50):
                status, _ = call(handler, dict(env))
                assert status == expected, (name, status)
        timings = {"with": [], "without": []}
        for i in range(args.requests):
            # One request each, in alternating order: load from elsewhere on the machine hits both alike.
            pair = (("without", without_log), ("with", with_log))
            for label, handler in pair if i % 2 else pair[::-1]:
                started = time.perf_counter()
                call(handler, dict(env))
                timings[label].append((time.perf_counter() - started) * 1000)
        off, on = statistics.median(timings["without"]), statistics.median(timings["with"])
        rows.append((name, off, on, on - off, on / off))

    header = f"{'request':<32} {'without ms':>10} {'with ms':>9} {'overhead ms':>12} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for name, off, on, delta, ratio in rows:
        print(f"{name:<32} {off:>10.3f} {on:>9.3f} {delta:>12.3f} {ratio:>7.3f}")
    print(f"\nmedian ms per request; access log entries written: {AccessLogEntry.objects.count()}")


if __name__ == "__main__":
    main()
