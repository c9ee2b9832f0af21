"""Writes of accounts: projects, role bindings, users, service accounts and API keys (random, shown once, stored
as SHA-256, compared in constant time, expiring, revocable). Each change is recorded in the audit trail through
``signals.account_record``; a new project is announced (``signals.project_created``) for promotion to equip."""

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from controlplane.changes import model_update
from controlplane.exceptions import Conflict, DomainError, Forbidden, NotFound
from controlplane.prepared import Prepared
from governance.accounts.access import SYSTEM_USERNAME, Principal, require_in_project, require_role
from governance.accounts.models import SERVICE_ACCOUNT_ROLES, ApiKey, Project, Role, RoleBinding, User

from .signals import account_record, project_created


@transaction.atomic
def project_create(*, actor: Principal, slug: str, name: str, admin: User, description: str = "") -> Project:
    """Staff create a project and name its first admin."""
    if not actor.is_staff:
        raise Forbidden("Only staff create projects.")
    if admin.is_service_account:  # it belongs to another project, and holds no admin role even in its own
        raise DomainError("A project's first admin is a person, not a service account.", details=[{"field": "admin"}])
    try:
        with transaction.atomic():
            project = Project.objects.create(slug=slug, name=name, description=description, created_by=actor.user)
    except IntegrityError:
        raise Conflict(f"A project with the slug '{slug}' exists.", details=[{"field": "slug"}]) from None
    account_record(
        action="project.created",
        actor=actor,
        project=project,
        target=project,
        diff={"slug": slug, "name": name, "description": description},
    )
    role_grant(actor=actor, project=project, principal=admin, role=Role.ADMIN)
    project_created.send(sender=Project, project=project, actor=actor)
    return project


@transaction.atomic
def project_update(*, actor: Principal, project: Project, name: str | None, description: str | None) -> Project:
    require_role(actor, project, [Role.ADMIN], action="edit the project")
    project = Project.objects.select_for_update().get(pk=project.pk)
    data = {field: value for field, value in (("name", name), ("description", description)) if value is not None}
    diff = model_update(project, data)  # accounts record through their signal (signals.py), not audited_update
    if diff:
        account_record(action="project.updated", actor=actor, project=project, target=project, diff=diff)
    return project


def _require_granter(actor: Principal, project: Project, role: str, verb: str) -> None:
    """A project admin grants and revokes; staff may also name (or remove) a project's admins."""
    if actor.is_system or (role == Role.ADMIN and actor.is_staff):
        return
    require_role(actor, project, [Role.ADMIN], action=f"{verb} roles")


@transaction.atomic
def role_grant(
    *, actor: Principal, project: Project, principal: User, role: str, expires_at: datetime | None = None
) -> RoleBinding:
    _require_granter(actor, project, role, "grant")
    if principal.pk == actor.user.pk:
        raise Forbidden("Nobody grants a role to themselves.", code="self_grant", project=project)
    if not principal.is_active:
        raise DomainError(f"The user '{principal.username}' is deactivated.", details=[{"field": "principal"}])
    require_in_project(project, principal=principal)  # a service account holds roles only in its own project
    if principal.is_service_account:
        if role not in SERVICE_ACCOUNT_ROLES:
            raise DomainError("A service account may only be ml_engineer or auditor.", details=[{"field": "role"}])
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        raise DomainError("expires_at must be in the future.", details=[{"field": "expires_at"}])

    current = (
        RoleBinding.objects.select_for_update()
        .filter(principal=principal, project=project, role=role, revoked_at__isnull=True)
        .first()
    )
    if current is not None:
        if current.state == "active":
            raise Conflict(f"'{principal.username}' already holds the role {role} in this project.")
        # An expired binding is closed so the new grant starts a fresh line of history.
        current.revoked_at = now
        current.revoked_by = actor.user
        current.save(update_fields=["revoked_at", "revoked_by"])
    try:
        with transaction.atomic():
            binding = RoleBinding.objects.create(
                principal=principal,
                project=project,
                role=role,
                granted_by=actor.user,
                granted_at=now,
                expires_at=expires_at,
            )
    except IntegrityError:
        raise Conflict(f"'{principal.username}' already holds the role {role} in this project.") from None
    account_record(
        action="role.granted",
        actor=actor,
        project=project,
        target=binding,
        diff={"principal": principal.username, "role": role, "expires_at": expires_at},
    )
    return binding


@transaction.atomic
def role_revoke(*, actor: Principal, binding: RoleBinding) -> RoleBinding:
    binding = RoleBinding.objects.select_for_update().select_related("project", "principal").get(pk=binding.pk)
    _require_granter(actor, binding.project, binding.role, "revoke")
    if binding.revoked_at is not None:
        raise Conflict("This role binding is already revoked.")
    if binding.role == Role.ADMIN and binding.state == "active":
        admins = RoleBinding.objects.active().select_for_update().filter(project=binding.project, role=Role.ADMIN)
        if admins.count() <= 1:
            raise Conflict("This is the project's last admin; grant the role to someone else first.")
    binding.revoked_at = timezone.now()
    binding.revoked_by = actor.user
    binding.save(update_fields=["revoked_at", "revoked_by"])
    account_record(
        action="role.revoked",
        actor=actor,
        project=binding.project,
        target=binding,
        diff={"principal": binding.principal.username, "role": binding.role},
    )
    return binding


@transaction.atomic
def service_account_create(
    *, actor: Principal, project: Project, name: str, role: str, description: str = ""
) -> tuple[User, ApiKey, str]:
    """A service account of ``project`` with its role and a first key (its secret returned once)."""
    require_role(actor, project, [Role.ADMIN], action="create service accounts")
    if role not in SERVICE_ACCOUNT_ROLES:
        raise DomainError("A service account may only be ml_engineer or auditor.", details=[{"field": "role"}])
    username = f"{name}@{project.slug}"
    if User.objects.filter(username=username).exists():
        raise Conflict(f"The service account '{name}' exists in this project.", details=[{"field": "name"}])
    account = User(username=username, service_project=project, description=description)
    account.set_unusable_password()
    account.save()
    account_record(
        action="service_account.created",
        actor=actor,
        project=project,
        target=account,
        diff={"username": username, "description": description},
    )
    role_grant(actor=actor, project=project, principal=account, role=role)
    key, raw_key = api_key_issue(
        actor=actor, owner=account, project=project, name=f"{name} key", read_only=False, expires_at=None
    )
    return account, key, raw_key


@transaction.atomic
def user_create(*, actor: Principal, username: str, email: str = "", password: str | None = None) -> User:
    """Staff create human users (an OIDC login can come later)."""
    if not actor.is_staff:
        raise Forbidden("Only staff create users.")
    if username == SYSTEM_USERNAME or User.objects.filter(username=username).exists():
        raise Conflict(f"The user '{username}' exists.", details=[{"field": "username"}])
    user = User(username=username, email=email)
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    account_record(action="user.created", actor=actor, target=user, diff={"username": username, "email": email})
    return user


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


# Every API request's first lookup (controlplane.prepared): the key and its owner, by the prefix (unique).
_key_by_prefix = Prepared(
    lambda prefix: ApiKey.objects.select_related("owner").filter(prefix=prefix).order_by(), prefix=""
)


def api_key_authenticate(*, raw_key: str) -> ApiKey | None:
    """The live key for ``raw_key``, or None. The hash is compared in constant time."""
    if not raw_key.startswith(KEY_PREFIX) or len(raw_key) < 12 or raw_key[11] != "_":
        return None
    key = _key_by_prefix.first(prefix=raw_key[3:11])
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
    account_record(
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
        account_record(
            action="api_key.revoked",
            actor=actor,
            project=key.project,
            target=key,
            diff={"owner": key.owner.username, "prefix": key.prefix},
        )
    return key
