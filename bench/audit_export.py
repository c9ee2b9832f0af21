"""Streaming CSV and JSONL export of the audit trail: time and peak memory at 100k and 1M events.

Bulk-inserts a valid hash chain (governance.audit.canonical / digest, as audit_record writes it) for one
project per size into a throwaway PostgreSQL database, then streams each export through the real view
(production settings, a WSGI call with ``X-Forwarded-Proto: https``) in a fresh process per export, reading
the response to the end and reporting its peak RSS. Constant memory shows as the same growth at every size.

    .venv/bin/python bench/audit_export.py [--sizes 100000,1000000]
"""

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import time

from _common import call, configure, environ

DATABASE = "tollgate_bench_audit_export"
BATCH = 5000


def _rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def _reset_peak() -> bool:
    """Linux: reset the process's peak RSS (VmHWM), so the peak read afterwards is the export's alone."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def _peak_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def populate(sizes: list[int]) -> None:
    configure(DATABASE, create=True)
    from governance.accounts.access import Principal
    from governance.accounts.models import Role, User
    from governance.accounts.services import project_create, role_grant
    from governance.audit.chain import canonical, digest
    from governance.audit.models import AuditChainHead, AuditEvent, chain_of

    staff = User.objects.create_user("staff", is_staff=True)
    admin = User.objects.create_user("admin")
    auditor = User.objects.create_user("auditor")
    base = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    for size in sizes:
        project = project_create(actor=Principal(staff), slug=f"events-{size}", name=f"{size} events", admin=admin)
        role_grant(actor=Principal(admin), project=project, principal=auditor, role=Role.AUDITOR)
        chain = chain_of(project.pk)
        head = AuditChainHead.objects.get(chain=chain)
        sequence, prev = head.sequence, head.hash
        started = time.perf_counter()
        batch = []
        for n in range(size):
            sequence += 1
            occurred_at = base + datetime.timedelta(milliseconds=n)
            action = ("model_version.registered", "gate.evaluated", "promotion.approved")[n % 3]
            target = {"type": "modelversion", "id": str(n // 3)}
            diff = {"state": {"from": "open", "to": "executed"}, "n": n, "comment": f"batch {n // BATCH}"}
            body = {
                "v": 1,
                "chain": chain,
                "sequence": sequence,
                "occurred_at": occurred_at.isoformat(),
                "project": {"id": project.pk, "slug": project.slug},
                "actor": {"id": admin.pk, "name": "admin", "role": "admin", "key": None},
                "action": action,
                "target": target,
                "request_id": f"{n:032x}",
                "client_address": "198.51.100.7",
                "diff": diff,
                "prev_hash": prev,
            }
            payload = canonical(body)
            event_hash = digest(payload)
            batch.append(
                AuditEvent(
                    chain=chain,
                    sequence=sequence,
                    occurred_at=occurred_at,
                    project=project,
                    actor_id=admin.pk,
                    actor_name="admin",
                    actor_role="admin",
                    action=action,
                    target_type=target["type"],
                    target_id=target["id"],
                    request_id=body["request_id"],
                    client_address=body["client_address"],
                    diff=diff,
                    prev_hash=prev,
                    hash=event_hash,
                    payload=payload,
                )
            )
            prev = event_hash
            if len(batch) == BATCH:
                AuditEvent.objects.bulk_create(batch)
                batch = []
        AuditEvent.objects.bulk_create(batch)
        AuditChainHead.objects.filter(chain=chain).update(sequence=sequence, hash=prev)
        print(f"inserted {size:>9,} events into {chain} in {time.perf_counter() - started:6.1f} s", flush=True)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE governance_auditevent")


def measure(size: int, fmt: str) -> None:
    """In a fresh process: stream one export to the end; print a JSON line of figures."""
    configure(DATABASE, create=False)
    from django.core.handlers.wsgi import WSGIHandler

    from governance.accounts.access import Principal
    from governance.accounts.models import User
    from governance.accounts.services import api_key_issue

    auditor = User.objects.get(username="auditor")
    _, raw_key = api_key_issue(
        actor=Principal(auditor), owner=auditor, project=None, name="bench", read_only=True, expires_at=None
    )
    headers = {"Authorization": f"Bearer {raw_key}"}
    handler = WSGIHandler()
    path = f"/api/v1/projects/events-{size}/audit-events/"
    status, _ = call(handler, environ(path, query="page_size=10", headers=headers))  # warm up
    assert status == 200, status

    before = _rss_kib()
    reset = _reset_peak()
    started = time.perf_counter()
    env = environ(path, query=f"format={fmt}", headers=headers)
    lines = []

    def start_response(line, response_headers, exc_info=None):
        lines.append(line)

    response = handler(env, start_response)
    size_bytes = rows = 0
    try:
        for chunk in response:
            size_bytes += len(chunk)
            rows += chunk.count(b"\n")
    finally:
        response.close()
    elapsed = time.perf_counter() - started
    assert lines[0].startswith("200"), lines
    peak = _peak_kib() if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rows -= 1 if fmt == "csv" else 0  # the header line
    print(json.dumps({"rss_before": before, "peak": peak, "seconds": elapsed, "bytes": size_bytes, "rows": rows}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="events per project (default 100000,1000000)")
    parser.add_argument("--measure", nargs=2, metavar=("SIZE", "FORMAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(int(args.measure[0]), args.measure[1])
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    populate(sizes)
    results = []
    for size in sizes:
        for fmt in ("csv", "jsonl"):
            out = subprocess.run(
                [sys.executable, __file__, "--measure", str(size), fmt], check=True, capture_output=True, text=True
            ).stdout
            results.append((size, fmt, json.loads(out.strip().splitlines()[-1])))

    header = (
        f"{'events':>9} {'format':>6} {'rows':>9} {'MiB out':>8} {'seconds':>8} {'rows/s':>8} "
        f"{'RSS before MiB':>14} {'peak RSS MiB':>12} {'growth MiB':>10}"
    )
    print(header)
    print("-" * len(header))
    for size, fmt, r in results:
        mib = 1024
        print(
            f"{size:>9,} {fmt:>6} {r['rows']:>9,} {r['bytes'] / mib / mib:>8.1f} {r['seconds']:>8.1f} "
            f"{r['rows'] / r['seconds']:>8,.0f} {r['rss_before'] / mib:>14.1f} {r['peak'] / mib:>12.1f} "
            f"{(r['peak'] - r['rss_before']) / mib:>10.1f}"
        )


if __name__ == "__main__":
    main()
