"""Selectors: reads, always scoped to the requesting principal (STYLE.md). Out of scope is 404."""

from django.db.models import QuerySet

from controlplane.api.errors import DomainError, NotFound

from .access import Principal, require_role
from .models import ApiKey, Project, Role, RoleBinding, User


def project_list(*, principal: Principal) -> QuerySet[Project]:
    if principal.is_staff:
        return Project.objects.all()
    return Project.objects.filter(pk__in=principal.project_ids())


def project_get(*, principal: Principal, slug: str) -> Project:
    project = project_list(principal=principal).filter(slug=slug).first()
    if project is None:
        raise NotFound(f"No project '{slug}'.")
    return project


def member_list(*, principal: Principal, project: Project, state: str = "active") -> QuerySet[RoleBinding]:
    """The project's role bindings: ``active`` ones, or ``all`` of them (the history)."""
    bindings = RoleBinding.objects.filter(project=project).select_related("principal", "granted_by", "revoked_by")
    if state == "active":
        bindings = bindings.active()
    if not principal.roles(project) and not principal.is_staff:
        return bindings.none()
    return bindings.order_by("-granted_at", "-id")


def member_get(*, principal: Principal, project: Project, binding_id: int) -> RoleBinding:
    binding = member_list(principal=principal, project=project, state="all").filter(pk=binding_id).first()
    if binding is None:
        raise NotFound("No such role binding in this project.")
    return binding


def service_account_list(*, principal: Principal, project: Project) -> QuerySet[User]:
    require_role(principal, project, [Role.ADMIN, Role.AUDITOR], action="see service accounts", write=False)
    return User.objects.filter(service_project=project).prefetch_related("role_bindings").order_by("username")


def service_account_get(*, principal: Principal, project: Project, account_id: int) -> User:
    account = service_account_list(principal=principal, project=project).filter(pk=account_id).first()
    if account is None:
        raise NotFound("No such service account in this project.")
    return account


def service_account_key_list(*, principal: Principal, account: User) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(owner=account).select_related("project")


def api_key_list(*, principal: Principal) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(owner=principal.user).select_related("project")


def api_key_get(*, principal: Principal, key_id: int) -> ApiKey:
    key = api_key_list(principal=principal).filter(pk=key_id).first()
    if key is None:
        raise NotFound("No such API key.")
    return key


def user_list(*, principal: Principal) -> QuerySet[User]:
    if not principal.is_staff:
        return User.objects.none()
    return User.objects.filter(service_project__isnull=True).order_by("username")


def user_by_username(username: str) -> User:
    user = User.objects.filter(username=username).first()
    if user is None:
        raise DomainError(f"No user '{username}'.", details=[{"field": "principal", "message": "unknown user"}])
    return user
