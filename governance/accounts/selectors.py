"""Reads of accounts, scoped to the requesting principal (STYLE.md): projects, members, service accounts, API
keys and users. Out of scope is 404."""

from django.db.models import QuerySet
from django.utils import timezone

from controlplane.exceptions import DomainError, Forbidden, NotFound
from controlplane.prepared import Prepared
from governance.accounts.access import Principal, project_ids_of, require_role
from governance.accounts.models import ApiKey, Project, Role, RoleBinding, User


def project_list(*, principal: Principal) -> QuerySet[Project]:
    if principal.is_staff:
        return Project.objects.all()
    return Project.objects.filter(pk__in=principal.project_ids())


def project_get(*, principal: Principal, slug: str) -> Project:
    if principal.is_staff:
        project = Project.objects.filter(slug=slug).first()
    else:
        project = _project_in_scope.first(slug=slug, **principal.scope())
    if project is None:
        _refuse_key_pinned_elsewhere(principal, slug)
        raise NotFound(f"No project '{slug}'.")
    return project


# The project of every project-scoped path (controlplane.prepared).
_project_in_scope = Prepared(
    lambda slug, **scope: Project.objects.filter(slug=slug, pk__in=project_ids_of(**scope)).order_by(),
    slug="", user=0, at=timezone.now(), pinned=0,
)  # fmt: skip


def _refuse_key_pinned_elsewhere(principal: Principal, slug: str) -> None:
    """403 naming the pin when the caller's key is pinned to another project and the caller holds a role in
    ``slug``: that project's existence is no secret to them. Anyone else gets the 404 of a project that is
    not there, so nothing leaks."""
    if not principal.pinned_project_id:
        return
    binding = (
        RoleBinding.objects.active().filter(principal=principal.user, project__slug=slug).select_related("project")
    ).first()
    if binding is None:
        return
    pinned = Project.objects.filter(pk=principal.pinned_project_id).values_list("slug", flat=True).first()
    raise Forbidden(
        f"This API key is pinned to project '{pinned}', so it cannot act in '{slug}', where you hold a role. "
        f"Use a key pinned to '{slug}', or one pinned to no project.",
        code="key_pinned",
        details=[{"field": "project", "pinned_to": pinned}],
        project=binding.project,
    )


def member_list(*, principal: Principal, project: Project, filters: dict | None = None) -> QuerySet[RoleBinding]:
    """The project's role bindings: ``active`` ones, or (``state: all``) all of them, the history. Filters:
    state, principal (a username), role."""
    filters = filters or {}
    bindings = RoleBinding.objects.filter(project=project).select_related("principal", "granted_by", "revoked_by")
    if filters.get("state", "active") == "active":
        bindings = bindings.active()
    if filters.get("principal"):
        bindings = bindings.filter(principal__username=filters["principal"])
    if filters.get("role"):
        bindings = bindings.filter(role=filters["role"])
    if not principal.roles(project) and not principal.is_staff:
        return bindings.none()
    return bindings.order_by("-granted_at", "-id")


def member_get(*, principal: Principal, project: Project, binding_id: int) -> RoleBinding:
    binding = member_list(principal=principal, project=project, filters={"state": "all"}).filter(pk=binding_id).first()
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
    return ApiKey.objects.filter(owner=account).select_related("project", "owner")


def api_key_list(*, principal: Principal) -> QuerySet[ApiKey]:
    """The caller's own keys; a caller on a pinned key sees only the keys pinned to that project."""
    keys = ApiKey.objects.filter(owner=principal.user).select_related("project", "owner")
    if principal.pinned_project_id:
        keys = keys.filter(project_id=principal.pinned_project_id)
    return keys


def api_key_get(*, principal: Principal, key_id: int) -> ApiKey:
    key = api_key_list(principal=principal).filter(pk=key_id).first()
    if key is None:
        raise NotFound("No such API key.")
    return key


def user_list(*, principal: Principal) -> QuerySet[User]:
    if not principal.is_staff:
        return User.objects.none()
    return User.objects.filter(service_project__isnull=True).order_by("username")


def user_by_username(username: str, *, field: str = "principal") -> User:
    user = User.objects.filter(username=username).first()
    if user is None:
        raise DomainError(f"No user '{username}'.", details=[{"field": field, "message": "unknown user"}])
    return user


# Registry -------------------------------------------------------------------------------------------------


# Provenance: datasets and their versions ------------------------------------------------------------------


# Promotion: the officer's queue ---------------------------------------------------------------------------
