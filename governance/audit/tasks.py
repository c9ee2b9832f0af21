"""The audit trail's tasks: checkpoints, verification of a large chain, and the access log's daily digest and
pruning. Their registered names stay ``governance.tasks.*`` (queued messages and the beat schedule use them)."""

import datetime
import hashlib
import logging
from collections import Counter

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from governance.accounts.access import Principal
from governance.audit.chain import canonical, checkpoint_all, verification_run
from governance.audit.models import SYSTEM_CHAIN, AccessLogEntry, AuditChainHead, AuditEvent
from governance.audit.services import audit_record

log = logging.getLogger(__name__)


@shared_task(name="governance.tasks.audit_checkpoint_write")
def audit_checkpoint_write():
    """Beat: sign and store a checkpoint of every chain head that moved since its last checkpoint."""
    written = checkpoint_all()
    log.info("audit checkpoints written: %s", written)
    return written


@shared_task(name="governance.tasks.audit_verification_run")
def audit_verification_run(verification_id: int):
    """Verify one chain for an ``AuditVerification`` row, reporting progress on the row as it goes."""
    verification_run(verification_id=verification_id)


# --- Access log (DESIGN §4): retention and the daily digest into the system chain. ---

ACCESS_LOG_DIGEST_ACTION = "access_log.digest"
ACCESS_LOG_DIGEST_TARGET = "access_log_day"
ACCESS_LOG_PRUNE_BATCH = 5000
# The columns of an entry, in the order its canonical row lists them.
ACCESS_LOG_DIGEST_COLUMNS = (
    "id",
    "at",
    "principal_id",
    "principal_name",
    "key_prefix",
    "method",
    "path",
    "project_slug",
    "object",
    "status",
    "request_id",
    "client_address",
    "detail",
)


def _access_log_day_bounds(day):

    start = datetime.datetime.combine(day, datetime.time.min, tzinfo=datetime.UTC)
    return start, start + datetime.timedelta(days=1)


def access_log_day_summary(day) -> dict:
    """Counts and a SHA-256 over one UTC day of the access log, entries in id order.

    Each entry is the canonical JSON (governance.audit.canonical) of an array of its columns
    (``ACCESS_LOG_DIGEST_COLUMNS``; ``at`` as ISO 8601 in UTC), followed by a newline. Anyone holding the
    rows can recompute the hash, and a row changed or removed before the retention ends shows up."""

    start, end = _access_log_day_bounds(day)
    sha = hashlib.sha256()
    by_status: Counter = Counter()
    by_project: Counter = Counter()
    entries = 0
    rows = (
        AccessLogEntry.objects.filter(at__gte=start, at__lt=end)
        .order_by("id")
        .values_list(*ACCESS_LOG_DIGEST_COLUMNS)
        .iterator(chunk_size=5000)
    )
    for row in rows:
        values = list(row)
        values[1] = values[1].isoformat()
        sha.update(canonical(values).encode("utf-8"))
        sha.update(b"\n")
        entries += 1
        by_status[f"{row[9] // 100}xx"] += 1
        by_project[row[7]] += 1
    return {
        "day": day.isoformat(),
        "entries": entries,
        "sha256": sha.hexdigest(),
        "by_status": dict(sorted(by_status.items())),
        # A list, not a dict keyed by slug: the audit trail's redaction works on key names.
        "by_project": [{"project": slug or None, "entries": n} for slug, n in sorted(by_project.items())],
    }


@shared_task(name="governance.tasks.access_log_digest")
def access_log_digest(day: str | None = None) -> str:
    """Beat, daily: write the previous UTC day's access log digest into the system chain, once.

    ``day`` is an ISO date (Celery passes JSON). The rows are hashed outside any transaction; then the
    system chain's head is locked, the day is checked again, and the event is appended."""

    date = (
        datetime.date.fromisoformat(day)
        if day
        else timezone.now().astimezone(datetime.UTC).date() - datetime.timedelta(days=1)
    )
    existing = AuditEvent.objects.filter(
        chain=SYSTEM_CHAIN,
        action=ACCESS_LOG_DIGEST_ACTION,
        target_type=ACCESS_LOG_DIGEST_TARGET,
        target_id=date.isoformat(),
    )
    if existing.exists():
        log.info("access log digest of %s exists already", date)
        return "exists"
    summary = access_log_day_summary(date)
    with transaction.atomic():
        AuditChainHead.objects.bulk_create([AuditChainHead(chain=SYSTEM_CHAIN)], ignore_conflicts=True)
        AuditChainHead.objects.select_for_update().get(chain=SYSTEM_CHAIN)  # one digest writer at a time
        if existing.exists():
            return "exists"
        audit_record(
            action=ACCESS_LOG_DIGEST_ACTION,
            actor=Principal.system(),
            project=None,
            target=(ACCESS_LOG_DIGEST_TARGET, date.isoformat()),
            diff=summary,
        )
    log.info("access log digest of %s: %s entries", date, summary["entries"])
    return "written"


@shared_task(name="governance.tasks.access_log_prune")
def access_log_prune() -> int:
    """Beat, daily: delete entries older than ``TOLLGATE_ACCESS_LOG_RETENTION_DAYS``, in batches, so no
    statement holds many locks for long. Yesterday's entries are kept whatever the setting: the digest of
    yesterday may not be written yet."""

    now = timezone.now()
    start_of_yesterday, _ = _access_log_day_bounds(now.astimezone(datetime.UTC).date() - datetime.timedelta(days=1))
    cutoff = min(now - datetime.timedelta(days=settings.TOLLGATE_ACCESS_LOG_RETENTION_DAYS), start_of_yesterday)
    deleted = 0
    while True:
        batch = list(
            AccessLogEntry.objects.filter(at__lt=cutoff)
            .order_by("id")
            .values_list("id", flat=True)[:ACCESS_LOG_PRUNE_BATCH]
        )
        if not batch:
            break
        count, _ = AccessLogEntry.objects.filter(id__in=batch).delete()
        deleted += count
    log.info("access log: %s entries older than %s deleted", deleted, cutoff.isoformat())
    return deleted


# --- Webhooks (DESIGN §6): one attempt per run; a failed attempt retries itself with backoff, up to a cap. ---
