"""Writing the audit trail: one hash chain per project plus the system chain (DESIGN §4, Audit).

``audit_record`` appends an event in the caller's transaction, so a change and its event commit together.
The hashed bytes are RFC 8785 canonical JSON (sorted keys, no whitespace), stored verbatim in
``AuditEvent.payload``: the verifier re-hashes that text and never re-serialises a JSON column.

Body version 2 adds the target's readable label (``target.label``, see governance.audit.models) to what is
hashed; version 1 bodies, written before labels were, have none and still verify (their label column is empty).
"""

from __future__ import annotations

import datetime
import decimal
import logging
import secrets
import uuid
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone

from controlplane.changes import model_update
from controlplane.context import current_request
from controlplane.outbox import outbox_enqueue
from governance.accounts.access import Principal, require_role
from governance.audit.chain import canonical, digest, verification_run
from governance.audit.models import GENESIS_HASH, AuditChainHead, AuditEvent, AuditVerification, chain_of
from governance.audit.selectors import AUDIT_READERS
from governance.audit.signals import event_recorded

log = logging.getLogger(__name__)

REDACTED = "[redacted]"
# Field names whose values never enter the audit trail: secrets, and personal data.
SECRET_FIELDS = ("password", "secret", "token", "hashed", "signing_key", "raw_key")
PERSONAL_FIELDS = ("email", "first_name", "last_name", "phone")


def _plain(value):
    """A JSON-safe value for the diff (canonical JSON knows no dates, decimals or models)."""
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN has no JSON form
        return "NaN"
    return value


def redact(diff: dict) -> dict:
    clean = {}
    for field, value in diff.items():
        name = field.lower()
        if any(word in name for word in SECRET_FIELDS) or any(word in name for word in PERSONAL_FIELDS):
            clean[field] = REDACTED
        elif isinstance(value, dict):
            clean[field] = redact(value)
        else:
            clean[field] = _plain(value)
    return clean


def _actor_fields(actor, project: models.Model | None) -> dict:
    """Who acted and as what. ``actor`` is a ``Principal`` (or None for an unattributed system job)."""
    if actor is None:
        return {"id": None, "name": "system", "role": "system", "key": None}
    return {
        "id": actor.user.pk,
        "name": actor.user.username,
        "role": _role_of(actor, project),
        "key": actor.key.prefix if actor.key else None,
    }


def _role_of(actor, project: models.Model | None) -> str:
    if actor is None or actor.is_system:
        return "system"
    roles = sorted(actor.roles(project)) if project is not None else []
    if not roles and actor.user.is_staff:
        roles = ["staff"]
    if actor.user.is_service_account:
        roles = [f"service_account:{r}" for r in roles] or ["service_account"]
    return ",".join(roles)


def _target(target: models.Model | tuple[str, object] | None) -> tuple[str, str, str]:
    """The target's type, id and label: a model's own ``audit_label``, else ``<type>:<id>``."""
    if target is None:
        return "", "", ""
    if isinstance(target, models.Model):
        target_type, target_id = target._meta.model_name, str(target.pk)
        label = getattr(target, "audit_label", None)
    else:
        target_type, target_id, label = target[0], str(target[1]), None
    return target_type, target_id, label or f"{target_type}:{target_id}"


def _head_locked(chain: str) -> AuditChainHead:
    """The chain's head, created if it is the chain's first event, and locked until the transaction ends: on
    PostgreSQL one upsert does both (its ``DO UPDATE`` takes the row lock), elsewhere an insert and a
    ``SELECT ... FOR UPDATE``."""
    if connection.vendor != "postgresql":
        AuditChainHead.objects.bulk_create([AuditChainHead(chain=chain)], ignore_conflicts=True)
        return AuditChainHead.objects.select_for_update().get(chain=chain)
    table = connection.ops.quote_name(AuditChainHead._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (chain, sequence, hash) VALUES (%s, 0, %s) "
            "ON CONFLICT (chain) DO UPDATE SET chain = EXCLUDED.chain RETURNING sequence, hash",
            [chain, GENESIS_HASH],
        )
        sequence, hash_ = cursor.fetchone()
    head = AuditChainHead(chain=chain, sequence=sequence, hash=hash_)
    head._state.adding = False
    return head


def _append_to_head(fields: dict, actor: dict) -> AuditEvent | None:
    """On PostgreSQL, the whole append in one statement, when the chain has a head (None when it has none).

    The statement locks the head (``SELECT ... FOR UPDATE``: a writer that waited reads the head its
    predecessor left), numbers the event after it, links it to the head's hash, hashes the canonical bytes
    (``sha256`` of their UTF-8) in the database, inserts the event and moves the head to it. The bytes are
    the canonical JSON of the body, built here with two placeholders that the statement replaces by the
    head's hash and the next sequence, in their sorted places; the hash it returns is checked against those
    bytes, so the chain is what the two-statement append would have written. ``occurred_at`` is taken just
    before the statement, so under contention an event may be a few milliseconds older than the one before
    it in its chain; the chain's order is its sequence."""
    nonce = secrets.token_hex(16)
    fields = {**fields, "occurred_at": timezone.now()}
    text = canonical(_body(fields, actor, sequence=f"sequence-{nonce}", prev_hash=f"prev-{nonce}"))
    before, prev_marker, rest = text.partition(f'"prev_hash":"prev-{nonce}"')
    between, sequence_marker, after = rest.partition(f'"sequence":"sequence-{nonce}"')
    if not prev_marker or not sequence_marker or nonce in before + between + after:
        return None  # cannot happen with canonical JSON's sorted keys; the two-statement append still works
    before, between = before + '"prev_hash":"', '"' + between + '"sequence":'

    template = AuditEvent(**fields)
    placed = ("sequence", "prev_hash", "hash", "payload")
    columns = [field for field in AuditEvent._meta.concrete_fields if not field.primary_key]
    columns = [field for field in columns if field.attname not in placed]
    values = [field.get_db_prep_save(field.pre_save(template, True), connection) for field in columns]
    quote = connection.ops.quote_name
    events, heads = quote(AuditEvent._meta.db_table), quote(AuditChainHead._meta.db_table)
    names = ", ".join([*(quote(field.column) for field in columns), *placed])
    sql = (
        f"WITH head AS (SELECT sequence, hash FROM {heads} WHERE chain = %s FOR UPDATE), "
        "next AS (SELECT sequence + 1 AS sequence, hash AS prev_hash, "
        "%s || hash || %s || (sequence + 1)::text || %s AS payload FROM head), "
        f"event AS (INSERT INTO {events} ({names}) "
        f"SELECT {', '.join(['%s'] * len(columns))}, sequence, prev_hash, "
        "encode(sha256(convert_to(payload, 'UTF8')), 'hex'), payload FROM next "
        "RETURNING id, sequence, prev_hash, hash) "
        f"UPDATE {heads} SET sequence = event.sequence, hash = event.hash FROM event WHERE {heads}.chain = %s "
        "RETURNING event.id, event.sequence, event.prev_hash, event.hash"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [fields["chain"], before, between, after, *values, fields["chain"]])
        row = cursor.fetchone()
    if row is None:
        return None
    pk, sequence, prev_hash, hash_ = row
    payload = f"{before}{prev_hash}{between}{sequence}{after}"
    if digest(payload) != hash_:
        raise RuntimeError(f"audit chain {fields['chain']}: the database hashed other bytes than were built")
    event = AuditEvent(**fields, pk=pk, sequence=sequence, prev_hash=prev_hash, hash=hash_, payload=payload)
    event._state.adding, event._state.db = False, connection.alias
    return event


def _append(event: AuditEvent, head: AuditChainHead) -> None:
    """Insert ``event`` and move the locked ``head`` to it: on PostgreSQL in one statement (the insert in a
    data-modifying CTE, the head's update joined to what it returned, so neither happens without the other)."""
    if connection.vendor != "postgresql":
        event.save(force_insert=True)
        head.sequence, head.hash = event.sequence, event.hash
        head.save(update_fields=["sequence", "hash"])
        return
    fields = [field for field in AuditEvent._meta.concrete_fields if not field.primary_key]
    values = [field.get_db_prep_save(field.pre_save(event, True), connection) for field in fields]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    events, heads = quote(AuditEvent._meta.db_table), quote(AuditChainHead._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH event AS (INSERT INTO {events} ({columns}) VALUES ({placeholders}) RETURNING id) "
            f"UPDATE {heads} SET sequence = %s, hash = %s FROM event WHERE {heads}.chain = %s RETURNING event.id",
            [*values, event.sequence, event.hash, head.chain],
        )
        (event.pk,) = cursor.fetchone()
    event._state.adding, event._state.db = False, connection.alias
    head.sequence, head.hash = event.sequence, event.hash


def audit_record(
    *,
    action: str,
    actor,
    project: models.Model | None = None,
    target: models.Model | tuple[str, object] | None = None,
    diff: dict | None = None,
) -> AuditEvent:
    """Append one event to the project's chain (or the system chain), in the current transaction.

    The chain's head row is locked first, so concurrent writers queue up instead of forking the chain: on
    PostgreSQL by the one statement that appends the event (``_append_to_head``), except for a chain's first
    event, which creates the head.
    """
    target_type, target_id, target_label = _target(target)
    context = current_request.get()
    actor_fields = _actor_fields(actor, project)
    chain = chain_of(project.pk if project else None)
    clean_diff = redact(diff or {})

    # No savepoint of its own: the event belongs to the caller's transaction, and an error here undoes both.
    with transaction.atomic(savepoint=False):
        fields = {
            "chain": chain,
            "project": project,
            "actor_id": actor_fields["id"],
            "actor_name": actor_fields["name"],
            "actor_role": actor_fields["role"],
            "action": action,
            "target_type": target_type,
            "target_id": target_id,
            "target_label": target_label,
            "request_id": context.request_id,
            "client_address": context.client_address,
            "diff": clean_diff,
        }
        event = _append_to_head(fields, actor_fields) if connection.vendor == "postgresql" else None
        if event is None:  # the chain's first event, or not PostgreSQL
            head = _head_locked(chain)
            fields["occurred_at"] = timezone.now()
            payload = canonical(_body(fields, actor_fields, sequence=head.sequence + 1, prev_hash=head.hash))
            event = AuditEvent(
                **fields, sequence=head.sequence + 1, prev_hash=head.hash, hash=digest(payload), payload=payload
            )
            _append(event, head)
        if project is not None:
            event_recorded.send(sender=AuditEvent, event=event)  # webhooks: their deliveries commit with it
    return event


def _body(fields: dict, actor: dict, *, sequence, prev_hash) -> dict:
    """What is hashed: the event's columns (``fields``), who acted, its place in the chain and its link."""
    project = fields["project"]
    return {
        "v": 2,
        "chain": fields["chain"],
        "sequence": sequence,
        "occurred_at": fields["occurred_at"].isoformat(),
        "project": {"id": project.pk, "slug": project.slug} if project else None,
        "actor": actor,
        "action": fields["action"],
        "target": {"type": fields["target_type"], "id": fields["target_id"], "label": fields["target_label"]},
        "request_id": fields["request_id"],
        "client_address": fields["client_address"],
        "diff": fields["diff"],
        "prev_hash": prev_hash,
    }  # fmt: skip


def audited_update(
    instance: models.Model,
    data: Mapping[str, Any],
    *,
    actor,
    action: str,
    project: models.Model | None,
    also: Mapping[str, Any] | None = None,
) -> bool:
    """``controlplane.changes.model_update`` and, if anything changed, ``action`` in the audit trail with the
    field-level diff. Returns whether anything changed. The caller holds the row's lock."""
    diff = model_update(instance, data, also=also)
    if diff:
        audit_record(action=action, actor=actor, project=project, target=instance, diff=diff)
    return bool(diff)


def audit_denied(*, actor, project: models.Model | None, operation: str, reason: str) -> None:
    """Record ``access.denied`` in its own transaction, after the refused operation rolled back.

    Called by governance.audit.middleware.RefusalAuditMiddleware for every 403; a failure to record is logged, never
    turned into a 500."""
    try:
        with transaction.atomic():
            audit_record(
                action="access.denied",
                actor=actor,
                project=project,
                diff={"operation": operation, "reason": reason},
            )
    except Exception:  # noqa: BLE001
        log.exception("could not record access.denied for %s", operation)


def audit_verification_start(*, actor: Principal, project: models.Model) -> AuditVerification:
    """Verification reads only, so auditors and read-only keys may start it (DESIGN §6)."""
    require_role(actor, project, AUDIT_READERS, action="verify the audit chain", write=False)
    chain = chain_of(project.pk)
    total = AuditEvent.objects.filter(chain=chain).count()
    with transaction.atomic():
        verification = AuditVerification.objects.create(
            chain=chain, project=project, requested_by=actor.user, total=total
        )
        if total > settings.TOLLGATE_AUDIT_VERIFY_INLINE_MAX:
            outbox_enqueue("governance.tasks.audit_verification_run", kwargs={"verification_id": verification.pk})
    if total <= settings.TOLLGATE_AUDIT_VERIFY_INLINE_MAX:
        verification_run(verification_id=verification.pk)
    verification.refresh_from_db()
    return verification
