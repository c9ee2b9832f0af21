"""Checkpoints and verification of the audit chains (DESIGN §4, Audit).

Beat writes a signed checkpoint of each chain head to the storage backend. The verifier walks a chain from
its first event, re-hashing the stored canonical bytes (never re-serialising the JSON column), checking
that each row's columns agree with those bytes and that each event links to the one before, and compares
the chain with every checkpoint. It names the first event that does not match.

What it catches: an edited, removed or inserted event anywhere before the last checkpoint, a deleted tail,
and a consistent rewrite (all hashes recomputed) that reaches back before a checkpoint. The documented
limit: events written after the last checkpoint can be rewritten consistently (or dropped) without
detection, until the next checkpoint anchors them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable

import rfc8785
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from governance.audit.models import GENESIS_HASH, AuditChainHead, AuditEvent, AuditVerification

log = logging.getLogger(__name__)


def canonical(body: dict) -> str:
    return rfc8785.dumps(body).decode("utf-8")


def digest(payload: str) -> str:
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


CHECKPOINT_PREFIX = "audit/checkpoints"
BATCH = 5000


def _folder(chain: str) -> str:
    return f"{CHECKPOINT_PREFIX}/{chain.replace(':', '-')}"


def _signature(body: dict) -> str:
    key = settings.TOLLGATE_AUDIT_SIGNING_KEY.encode()
    return hmac.new(key, canonical(body).encode(), hashlib.sha256).hexdigest()


def checkpoint_write(chain: str) -> dict | None:
    """Store a signed checkpoint of ``chain``'s head, unless the last checkpoint already covers it."""
    head = AuditEvent.objects.filter(chain=chain).order_by("-sequence").values("sequence", "hash").first()
    if head is None:
        return None
    existing = checkpoint_list(chain)
    if existing and existing[-1]["sequence"] >= head["sequence"]:
        return None
    body = {
        "chain": chain,
        "sequence": head["sequence"],
        "hash": head["hash"],
        "written_at": timezone.now().isoformat(),
    }
    document = {**body, "signature": _signature(body)}
    name = f"{_folder(chain)}/{head['sequence']:015d}.json"
    default_storage.save(name, ContentFile(json.dumps(document, sort_keys=True).encode()))
    return document


def checkpoint_all() -> int:
    """Checkpoint every chain whose head moved; returns how many checkpoints were written."""
    chains = AuditChainHead.objects.values_list("chain", flat=True)
    return sum(1 for chain in chains if checkpoint_write(chain) is not None)


def checkpoint_list(chain: str) -> list[dict]:
    """The chain's checkpoints in sequence order; each carries ``valid`` (its signature checks out)."""
    folder = _folder(chain)
    try:
        _, files = default_storage.listdir(folder)
    except FileNotFoundError:
        return []
    checkpoints = []
    for name in sorted(files):
        if not name.endswith(".json"):
            continue
        with default_storage.open(f"{folder}/{name}") as handle:
            try:
                document = json.loads(handle.read())
                body = {k: document[k] for k in ("chain", "sequence", "hash", "written_at")}
                valid = hmac.compare_digest(str(document.get("signature", "")), _signature(body))
                valid = valid and body["chain"] == chain
            except (ValueError, KeyError, TypeError):
                document, valid = {"sequence": -1, "name": name}, False
        checkpoints.append({**document, "valid": valid, "file": name})
    return sorted(checkpoints, key=lambda c: c["sequence"])


def _columns_disagree(event: AuditEvent, body: dict) -> str | None:
    """The first column whose value differs from the hashed bytes, or None."""
    project = body.get("project") or {}
    actor = body.get("actor") or {}
    target = body.get("target") or {}
    expected = {
        "chain": body.get("chain"),
        "sequence": body.get("sequence"),
        "occurred_at": body.get("occurred_at"),
        "project_id": project.get("id"),
        "actor_id": actor.get("id"),
        "actor_name": actor.get("name"),
        "actor_role": actor.get("role"),
        "action": body.get("action"),
        "target_type": target.get("type"),
        "target_id": target.get("id"),
        "target_label": target.get("label", ""),  # version 1 bodies have no label, and an empty column
        "request_id": body.get("request_id"),
        "client_address": body.get("client_address"),
        "diff": body.get("diff"),
        "prev_hash": body.get("prev_hash"),
    }
    actual = {name: getattr(event, name) for name in expected}
    actual["occurred_at"] = event.occurred_at.isoformat()
    for name, value in expected.items():
        if actual[name] != value:
            return name
    return None


def _failure(event_or_sequence, reason: str) -> dict:
    if isinstance(event_or_sequence, AuditEvent):
        return {"sequence": event_or_sequence.sequence, "event_id": event_or_sequence.pk, "reason": reason}
    return {"sequence": event_or_sequence, "event_id": None, "reason": reason}


def _check_event(event: AuditEvent, expected_sequence: int, prev_hash: str) -> dict | None:
    if event.sequence > expected_sequence:
        return _failure(expected_sequence, f"events {expected_sequence}..{event.sequence - 1} are missing")
    if event.sequence < expected_sequence:
        return _failure(event, f"sequence {event.sequence} appears twice")
    if digest(event.payload) != event.hash:
        return _failure(event, "the stored bytes do not hash to the stored hash: the event was altered")
    try:
        body = json.loads(event.payload)
    except ValueError:
        return _failure(event, "the stored bytes are not JSON")
    if canonical(body) != event.payload:
        return _failure(event, "the stored bytes are not canonical JSON")
    if body.get("prev_hash") != prev_hash:
        return _failure(event, "does not link to the previous event: an event was inserted, removed or rewritten")
    column = _columns_disagree(event, body)
    if column:
        return _failure(event, f"the column '{column}' disagrees with the hashed bytes")
    return None


def verify_chain(chain: str, *, progress: Callable[[int], None] | None = None) -> dict:
    """Verify ``chain`` against itself and its checkpoints. Reads in batches; memory stays flat."""
    checkpoints = checkpoint_list(chain)
    anchored = {c["sequence"]: c for c in checkpoints if c["valid"]}
    result = {
        "chain": chain,
        "ok": True,
        "events_checked": 0,
        "last_sequence": 0,
        "checkpoints": len(checkpoints),
        "last_checkpoint_sequence": max(anchored, default=0),
        "first_failure": None,
    }
    forged = [c for c in checkpoints if not c["valid"]]
    if forged:
        result.update(ok=False, first_failure=_failure(None, f"checkpoint {forged[0]['file']} has a bad signature"))
        return result

    expected, prev_hash = 1, GENESIS_HASH
    events = AuditEvent.objects.filter(chain=chain).order_by("sequence").iterator(chunk_size=BATCH)
    for event in events:
        failure = _check_event(event, expected, prev_hash)
        if failure is None and event.sequence in anchored and anchored[event.sequence]["hash"] != event.hash:
            written = anchored[event.sequence]["written_at"]
            failure = _failure(event, f"differs from the checkpoint written at {written}: the chain was rewritten")
        if failure:
            result.update(ok=False, first_failure=failure)
            return result
        prev_hash, expected = event.hash, expected + 1
        result["events_checked"] += 1
        if progress and result["events_checked"] % BATCH == 0:
            progress(result["events_checked"])
    result["last_sequence"] = expected - 1
    if result["last_checkpoint_sequence"] > result["last_sequence"]:
        result.update(
            ok=False,
            first_failure=_failure(
                expected,
                f"the chain ends at {expected - 1} but a checkpoint records {result['last_checkpoint_sequence']}: "
                "events were deleted from the tail",
            ),
        )
        return result
    result["unanchored_events"] = result["last_sequence"] - result["last_checkpoint_sequence"]
    return result


def verification_run(*, verification_id: int) -> None:
    """Run a queued ``AuditVerification``; claimed by a conditional update, so a duplicate is harmless."""
    claimed = AuditVerification.objects.filter(pk=verification_id, state=AuditVerification.State.QUEUED).update(
        state=AuditVerification.State.RUNNING
    )
    if not claimed:
        log.info("audit verification %s is gone or already claimed", verification_id)
        return
    verification = AuditVerification.objects.get(pk=verification_id)

    def progress(checked: int) -> None:
        AuditVerification.objects.filter(pk=verification_id).update(checked=checked)

    try:
        result = verify_chain(verification.chain, progress=progress)
    except Exception as exc:
        log.exception("audit verification %s failed", verification_id)
        AuditVerification.objects.filter(pk=verification_id).update(
            state=AuditVerification.State.ERROR, finished_at=timezone.now(), result={"error": str(exc)}
        )
        raise
    AuditVerification.objects.filter(pk=verification_id).update(
        state=AuditVerification.State.DONE,
        checked=result["events_checked"],
        finished_at=timezone.now(),
        result=result,
    )
