"""Projects, role bindings and service accounts."""

from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from controlplane.exceptions import Conflict, DomainError, Forbidden
from governance.access import SYSTEM_USERNAME, Principal, require_in_project, require_role
from governance.audit.services import audit_record, changes
from governance.models import ApiKey, Project, Role, RoleBinding, User
from governance.models.access import SERVICE_ACCOUNT_ROLES

from .api_keys import api_key_issue
from .workflow import project_bootstrap


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
    audit_record(
        action="project.created",
        actor=actor,
        project=project,
        target=project,
        diff={"slug": slug, "name": name, "description": description},
    )
    role_grant(actor=actor, project=project, principal=admin, role=Role.ADMIN)
    project_bootstrap(actor=actor, project=project)
    return project


@transaction.atomic
def project_update(*, actor: Principal, project: Project, name: str | None, description: str | None) -> Project:
    require_role(actor, project, [Role.ADMIN], action="edit the project")
    project = Project.objects.select_for_update().get(pk=project.pk)
    before = {"name": project.name, "description": project.description}
    if name is not None:
        project.name = name
    if description is not None:
        project.description = description
    diff = changes(before, {"name": project.name, "description": project.description})
    if diff:
        project.save(update_fields=["name", "description"])
        audit_record(action="project.updated", actor=actor, project=project, target=project, diff=diff)
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
    audit_record(
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
    audit_record(
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
    audit_record(
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
    audit_record(action="user.created", actor=actor, target=user, diff={"username": username, "email": email})
    return user
