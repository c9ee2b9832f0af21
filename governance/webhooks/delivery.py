"""Webhook delivery (DESIGN §6): signed events, sent by a worker to targets checked at send time.

- ``webhooks_enqueue(event)`` runs inside ``audit_record``'s transaction: one delivery row and one outbox row
  per active webhook of the project subscribed to the event's action. When none subscribes (most events) it
  costs one indexed query.
- ``webhook_delivery_attempt`` is what the task ``governance.tasks.webhook_deliver`` runs: claim the delivery
  with a conditional update, resolve the target and refuse private addresses (unless allowed), connect to
  the address that was checked (so a DNS answer that changes between check and connect cannot redirect the
  request: DNS rebinding), POST once, never follow a redirect, and write the outcome only if the claim
  still holds.
- A receiver verifies ``X-Tollgate-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``
  (README, "Webhooks").
"""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from celery.exceptions import SoftTimeLimitExceeded
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from controlplane.backoff import backoff_seconds
from controlplane.exceptions import DomainError
from controlplane.outbox import outbox_enqueue
from governance.accounts.access import Principal
from governance.audit.models import AuditEvent
from governance.audit.services import audit_record
from governance.audit.vocabulary import WEBHOOK_TEST_EVENT
from governance.webhooks.models import Webhook, WebhookDelivery

log = logging.getLogger(__name__)

TASK = "governance.tasks.webhook_deliver"
SECRET_PREFIX = "whsec_"
SIGNATURE_HEADER = "X-Tollgate-Signature"
DELIVERY_HEADER = "X-Tollgate-Delivery"
EVENT_HEADER = "X-Tollgate-Event"
USER_AGENT = "Tollgate-Webhooks/1"
MAX_TIMEOUT_SECONDS = 20  # the task's soft time limit (60 s) must cover connect + a few reads
RESPONSE_EXCERPT_BYTES = 1024
# A delivery left ``sending`` this long (a worker died mid-send) may be claimed again.
STALE_SENDING = datetime.timedelta(seconds=150)
# Retries may run a little before their due time (clocks of different workers).
CLAIM_SLACK = datetime.timedelta(milliseconds=500)


class TargetRefused(Exception):
    """The target is not allowed (scheme, address): no retry would change that."""


class SendFailed(Exception):
    """The target could not be reached or answered too slowly: worth another attempt."""


# Secrets -------------------------------------------------------------------------------------------------


def secret_generate() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


@functools.lru_cache(maxsize=4)
def _fernet_for(key_material: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"tollgate webhook secrets").derive(
        key_material.encode("utf-8")
    )
    return Fernet(base64.urlsafe_b64encode(key))


def _fernet() -> Fernet:
    return _fernet_for(settings.TOLLGATE_WEBHOOK_ENCRYPTION_KEY or settings.SECRET_KEY)


def secret_seal(secret: str) -> str:
    return _fernet().encrypt(secret.encode("utf-8")).decode("ascii")


def secret_open(sealed: str) -> str:
    try:
        return _fernet().decrypt(sealed.encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise TargetRefused(
            "the webhook's secret cannot be decrypted (was TOLLGATE_WEBHOOK_ENCRYPTION_KEY or SECRET_KEY changed?)"
        ) from None


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


# Targets -------------------------------------------------------------------------------------------------

LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


def address_forbidden(address: str) -> bool:
    """Private, loopback, link-local, multicast, reserved, unspecified or shared addresses: anything that is
    not a public unicast address (an IPv4-mapped IPv6 address is judged by its IPv4 address)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def target_validate(url: str) -> str:
    """Check a target URL when a webhook is created or changed (the address is checked again at send time).
    Returns the URL; raises ``DomainError`` on the ``url`` field."""
    try:
        _target_parts(url)
    except TargetRefused as exc:
        raise DomainError(
            f"The webhook URL is refused: {exc}.", details=[{"field": "url", "message": str(exc)}]
        ) from None
    return url


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int
    path: str
    host_header: str


def _target_parts(url: str) -> _Target:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    allowed = ("https", "http") if settings.TOLLGATE_WEBHOOK_ALLOW_HTTP else ("https",)
    if scheme not in allowed:
        raise TargetRefused("only https targets are allowed" if scheme != "https" else f"scheme {scheme!r}")
    if not parts.hostname:
        raise TargetRefused("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("credentials in the URL are not allowed; the signature authenticates Tollgate")
    host = parts.hostname.rstrip(".")
    if not settings.TOLLGATE_WEBHOOK_ALLOW_PRIVATE_TARGETS:
        if host in LOCAL_NAMES or host.endswith(".localhost"):
            raise TargetRefused(f"{host} is a local name")
        try:
            literal = address_forbidden(host)
        except ValueError:
            literal = False  # a name: checked on its resolved addresses at send time
        if literal:
            raise TargetRefused(f"{host} is not a public address")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return _Target(
        scheme=scheme,
        host=host,
        port=port or (443 if scheme == "https" else 80),
        path=path,
        host_header=parts.netloc,
    )


def _resolve(target: _Target) -> str:
    """The address to connect to: every address the name resolves to must be allowed, and the first is used."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise SendFailed(f"cannot resolve {target.host}: {exc}") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise SendFailed(f"{target.host} resolves to no address")
    if not settings.TOLLGATE_WEBHOOK_ALLOW_PRIVATE_TARGETS:
        forbidden = [a for a in addresses if address_forbidden(a)]
        if forbidden:
            raise TargetRefused(f"{target.host} resolves to a non-public address ({forbidden[0]})")
    return addresses[0]


@dataclass(frozen=True)
class Response:
    status: int
    excerpt: str
    duration_ms: int


def webhook_send(*, url: str, body: bytes, headers: dict[str, str]) -> Response:
    """POST ``body`` once to ``url``, connected to the checked address, never following a redirect."""
    target = _target_parts(url)
    address = _resolve(target)
    seconds = min(settings.TOLLGATE_WEBHOOK_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS)
    options = {
        "host": address,
        "port": target.port,
        "timeout": urllib3.Timeout(connect=seconds, read=seconds),
        "retries": False,
        "maxsize": 1,
    }
    if target.scheme == "https":
        # TLS for the name (SNI and certificate check), TCP to the address that was checked.
        pool = urllib3.HTTPSConnectionPool(
            **options, server_hostname=target.host, assert_hostname=target.host, cert_reqs="CERT_REQUIRED"
        )
    else:
        pool = urllib3.HTTPConnectionPool(**options)
    started = time.monotonic()
    try:
        with pool:
            response = pool.urlopen(
                "POST",
                target.path,
                body=body,
                headers={**headers, "Host": target.host_header, "User-Agent": USER_AGENT},
                redirect=False,
                retries=False,
                assert_same_host=False,
                preload_content=False,
            )
            try:
                excerpt = response.read(RESPONSE_EXCERPT_BYTES, decode_content=False)
            finally:
                response.release_conn()
    except (urllib3.exceptions.HTTPError, OSError, SoftTimeLimitExceeded) as exc:
        raise SendFailed(f"{type(exc).__name__}: {exc}"[:1000]) from None
    return Response(
        status=response.status,
        excerpt=excerpt.decode("utf-8", "replace"),
        duration_ms=int((time.monotonic() - started) * 1000),
    )


# Enqueueing ----------------------------------------------------------------------------------------------


def _dumps(body: dict) -> str:
    return json.dumps(body, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def event_payload(event: AuditEvent) -> str:
    """The body every subscriber of ``event`` receives: ``{id, type, occurred_at, project, data}``. ``id`` is
    the event's hash, unique and the same in the audit log; ``data.sequence`` is its place in the chain."""
    return _dumps(
        {
            "id": event.hash,
            "type": event.action,
            "occurred_at": event.occurred_at.isoformat(),
            "project": event.project.slug if event.project_id else None,
            "data": {
                "sequence": event.sequence,
                "actor": {"name": event.actor_name, "role": event.actor_role},
                "target": {"type": event.target_type, "id": event.target_id, "label": event.target_label},
                "diff": event.diff,
            },
        }
    )


def _subscribed(event: AuditEvent) -> list[Webhook]:
    """The active webhooks of the event's project subscribed to its action, by id. On PostgreSQL one small
    statement built without the ORM (``actions ? action``: the JSON list holds the action) that finds none
    for most events; the webhooks themselves are read only when there are some."""
    if connection.vendor != "postgresql":
        webhooks = Webhook.objects.filter(project_id=event.project_id, active=True).only("id", "actions")
        return [webhook for webhook in webhooks if event.action in webhook.actions]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {connection.ops.quote_name(Webhook._meta.db_table)} "
            "WHERE project_id = %s AND active AND actions ? %s ORDER BY id",
            [event.project_id, event.action],
        )
        ids = [row[0] for row in cursor.fetchall()]
    return list(Webhook.objects.filter(pk__in=ids).only("id", "actions").order_by("id")) if ids else []


def webhooks_enqueue(event: AuditEvent) -> int:
    """Called by ``audit_record`` in its transaction: a delivery (and its outbox row) for each active webhook
    of the event's project subscribed to its action. Returns how many."""
    if event.project_id is None:
        return 0
    subscribed = _subscribed(event)
    if not subscribed:
        return 0
    payload = event_payload(event)
    for webhook in subscribed:
        delivery = WebhookDelivery.objects.create(
            webhook=webhook, audit_event=event, event_type=event.action, payload=payload
        )
        outbox_enqueue(TASK, kwargs={"delivery_id": delivery.pk})
    return len(subscribed)


def webhook_test_payload(webhook: Webhook) -> str:
    return _dumps(
        {
            "id": f"test-{secrets.token_hex(16)}",
            "type": WEBHOOK_TEST_EVENT,
            "occurred_at": timezone.now().isoformat(),
            "project": webhook.project.slug,
            "data": {"webhook": webhook.pk, "message": "A test delivery from Tollgate."},
        }
    )


def delivery_enqueue(delivery: WebhookDelivery) -> WebhookDelivery:
    """Queue a delivery created by hand (a test or a redelivery), in the caller's transaction."""
    outbox_enqueue(TASK, kwargs={"delivery_id": delivery.pk})
    return delivery


# Sending -------------------------------------------------------------------------------------------------


def _claim(delivery_id: int) -> bool:
    now = timezone.now()
    due = Q(state=WebhookDelivery.State.PENDING) & (
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now + CLAIM_SLACK)
    )
    stale = Q(state=WebhookDelivery.State.SENDING, last_attempt_at__lt=now - STALE_SENDING)
    return bool(
        WebhookDelivery.objects.filter(due | stale, pk=delivery_id).update(
            state=WebhookDelivery.State.SENDING, attempts=F("attempts") + 1, last_attempt_at=now
        )
    )


def webhook_delivery_attempt(*, delivery_id: int, can_retry: bool = True) -> float | None:
    """Make one attempt of a delivery. Returns the seconds after which the caller should try again, or None
    when there is nothing more to do (sent, failed for good, or not this caller's to send)."""
    if not _claim(delivery_id):
        log.info("webhook delivery %s: not due or already taken; nothing to do", delivery_id)
        return None
    delivery = WebhookDelivery.objects.select_related("webhook", "webhook__project").get(pk=delivery_id)
    webhook, attempt = delivery.webhook, delivery.attempts
    mine = WebhookDelivery.objects.filter(pk=delivery.pk, state=WebhookDelivery.State.SENDING, attempts=attempt)
    if not webhook.active and not delivery.is_test:
        mine.update(
            state=WebhookDelivery.State.FAILED, last_error="the webhook is disabled", finished_at=timezone.now()
        )
        return None

    status, excerpt, duration_ms, retryable = None, "", None, True
    try:
        secret = secret_open(webhook.secret_encrypted)
        body = delivery.payload.encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(secret, int(time.time()), body),
            DELIVERY_HEADER: str(delivery.delivery_id),
            EVENT_HEADER: delivery.event_type,
        }
        response = webhook_send(url=webhook.url, body=body, headers=headers)
        status, excerpt, duration_ms = response.status, response.excerpt, response.duration_ms
        if 200 <= status < 300:
            error = ""
        elif 300 <= status < 400:
            error = f"HTTP {status}: redirects are not followed"
        else:
            error = f"HTTP {status}"
    except TargetRefused as exc:
        error, retryable = f"refused: {exc}", False
    except SendFailed as exc:
        error = str(exc)

    now = timezone.now()
    outcome = {"last_status_code": status, "last_response": excerpt, "last_duration_ms": duration_ms}
    if not error:
        if mine.update(state=WebhookDelivery.State.SUCCEEDED, last_error="", finished_at=now, **outcome):
            if not delivery.is_test:
                Webhook.objects.filter(pk=webhook.pk, consecutive_failures__gt=0).update(consecutive_failures=0)
        log.info("webhook delivery %s (%s) sent: HTTP %s", delivery.delivery_id, delivery.event_type, status)
        return None

    max_attempts = settings.TOLLGATE_WEBHOOK_MAX_ATTEMPTS if (can_retry and not delivery.is_test) else 1
    if retryable and attempt < max_attempts:
        delay = backoff_seconds(attempt, base=settings.TOLLGATE_WEBHOOK_BACKOFF_SECONDS,
                                cap=settings.TOLLGATE_WEBHOOK_BACKOFF_MAX_SECONDS, jitter=0.2)  # fmt: skip
        mine.update(
            state=WebhookDelivery.State.PENDING,
            last_error=error,
            next_attempt_at=now + datetime.timedelta(seconds=delay),
            **outcome,
        )
        log.warning("webhook delivery %s attempt %s failed (%s); again in %.1fs", delivery.pk, attempt, error, delay)
        return delay

    if mine.update(state=WebhookDelivery.State.FAILED, last_error=error, finished_at=now, **outcome):
        log.warning("webhook delivery %s failed after %s attempt(s): %s", delivery.pk, attempt, error)
        if not delivery.is_test:
            _count_failure(webhook_id=webhook.pk, error=error)
    return None


def _count_failure(*, webhook_id: int, error: str) -> None:
    """One more delivery failed for good; at the threshold the webhook is disabled, audited, with the reason."""
    with transaction.atomic():
        webhook = (
            Webhook.objects.select_for_update(of=("self",)).select_related("project").filter(pk=webhook_id).first()
        )
        if webhook is None:
            return
        webhook.consecutive_failures += 1
        fields = ["consecutive_failures"]
        threshold = settings.TOLLGATE_WEBHOOK_DISABLE_AFTER_FAILURES
        if webhook.active and webhook.consecutive_failures >= threshold:
            webhook.active = False
            webhook.disabled_at = timezone.now()
            webhook.disabled_reason = (f"{webhook.consecutive_failures} deliveries in a row failed; the last: {error}")[
                :500
            ]
            fields += ["active", "disabled_at", "disabled_reason"]
        webhook.save(update_fields=fields)
        if not webhook.active and "active" in fields:
            audit_record(
                action="webhook.disabled",
                actor=Principal.system(),
                project=webhook.project,
                target=webhook,
                diff={"reason": webhook.disabled_reason, "consecutive_failures": webhook.consecutive_failures},
            )
            log.warning("webhook %s disabled: %s", webhook.pk, webhook.disabled_reason)
