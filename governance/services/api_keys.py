"""API keys: random, shown once, stored as SHA-256, compared in constant time, expiring, revocable."""

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from controlplane.exceptions import DomainError, Forbidden, NotFound
from governance.access import Principal, require_in_project, require_role
from governance.audit.services import audit_record
from governance.models import ApiKey, Project, Role, User

KEY_PREFIX = "tg_"
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def _new_secret() -> tuple[str, str]:
    """A fresh key ``tg_<8 hex prefix>_<43 url-safe chars>`` and its prefix (unique, looked up by index)."""
    while True:
        prefix = secrets.token_hex(4)
        if not ApiKey.objects.filter(prefix=prefix).exists():
            return f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}", prefix


def api_key_authenticate(*, raw_key: str) -> ApiKey | None:
    """The live key for ``raw_key``, or None. The hash is compared in constant time."""
    if not raw_key.startswith(KEY_PREFIX) or len(raw_key) < 12 or raw_key[11] != "_":
        return None
    prefix = raw_key[3:11]
    key = ApiKey.objects.select_related("owner", "project").filter(prefix=prefix).first()
    if key is None or not hmac.compare_digest(key.hashed, _hash(raw_key)):
        return None
    now = timezone.now()
    if key.revoked_at or (key.expires_at and key.expires_at <= now) or not key.owner.is_active:
        return None
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        # One write a minute per key at most, not one per request.
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


def _default_expiry() -> datetime:
    return timezone.now() + timedelta(days=settings.TOLLGATE_API_KEY_DEFAULT_TTL_DAYS)


def _check_expiry(expires_at: datetime | None) -> datetime:
    if expires_at is None:
        return _default_expiry()
    if expires_at <= timezone.now():
        raise DomainError("expires_at must be in the future.", details=[{"field": "expires_at"}])
    return expires_at


def api_key_issue(
    *, actor: Principal, owner: User, project: Project | None, name: str, read_only: bool, expires_at
) -> tuple[ApiKey, str]:
    """Create a key and audit it. Callers have already decided that ``actor`` may issue it."""
    if owner.is_service_account:  # its keys are always pinned to its own project
        require_in_project(project, owner=owner)
    raw_key, prefix = _new_secret()
    key = ApiKey.objects.create(
        owner=owner,
        project=project,
        name=name,
        prefix=prefix,
        hashed=_hash(raw_key),
        read_only=read_only,
        expires_at=_check_expiry(expires_at),
        created_by=actor.user,
    )
    audit_record(
        action="api_key.created",
        actor=actor,
        project=project,
        target=key,
        diff={
            "owner": owner.username,
            "name": name,
            "prefix": prefix,
            "read_only": read_only,
            "expires_at": key.expires_at,
        },
    )
    return key, raw_key


@transaction.atomic
def api_key_create(
    *, actor: Principal, name: str, project: Project | None = None, read_only: bool = False, expires_at=None
) -> tuple[ApiKey, str]:
    """A key of the caller's own. It can never do more than the caller: a pinned caller makes pinned keys."""
    if actor.user.is_service_account:
        raise Forbidden("Service accounts do not create keys; a project admin does.")
    if actor.read_only:
        raise Forbidden("This API key is read-only; it may not create keys.", code="read_only_key")
    pinned = actor.pinned_project_id
    if pinned and (project is None or project.pk != pinned):
        raise Forbidden("A key pinned to a project can only create keys pinned to that project.")
    if project is not None and not actor.roles(project) and not actor.is_staff:
        raise NotFound("No such project.")
    return api_key_issue(
        actor=actor, owner=actor.user, project=project, name=name, read_only=read_only, expires_at=expires_at
    )


@transaction.atomic
def service_account_key_create(
    *, actor: Principal, service_account: User, name: str, read_only: bool = False, expires_at=None
) -> tuple[ApiKey, str]:
    """A key for a service account, always pinned to its project; only that project's admins issue them."""
    project = service_account.service_project
    require_role(actor, project, [Role.ADMIN], action="issue service account keys")
    return api_key_issue(
        actor=actor, owner=service_account, project=project, name=name, read_only=read_only, expires_at=expires_at
    )


@transaction.atomic
def api_key_revoke(*, actor: Principal, key: ApiKey) -> ApiKey:
    key = ApiKey.objects.select_for_update().get(pk=key.pk)
    if actor.pinned_project_id and key.project_id != actor.pinned_project_id:
        raise NotFound("No such API key.")
    if key.owner_id != actor.user.pk and not actor.is_system:
        # Someone else's key: only a service account's, by an admin of its project.
        project = key.owner.service_project
        if project is None:
            raise NotFound("No such API key.")
        require_role(actor, project, [Role.ADMIN], action="revoke service account keys")
    elif actor.read_only:
        raise Forbidden("This API key is read-only; it may not revoke keys.", code="read_only_key")
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit_record(
            action="api_key.revoked",
            actor=actor,
            project=key.project,
            target=key,
            diff={"owner": key.owner.username, "prefix": key.prefix},
        )
    return key
