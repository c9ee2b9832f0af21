"""The caller as the rules see it: a user plus the API key they came with, and their roles per project.

Every selector takes a ``Principal`` and scopes its query by it; every service checks its roles here.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import QuerySet
from django.utils import timezone

from controlplane.exceptions import Forbidden, NotFound
from controlplane.prepared import Prepared
from governance.accounts.models import ApiKey, Project, RoleBinding, User

SYSTEM_USERNAME = "system"


class Principal:
    def __init__(self, user: User, key: ApiKey | None = None):
        self.user = user
        self.key = key
        self._roles: dict[int, frozenset[str]] | None = None

    @classmethod
    def system(cls) -> Principal:
        """The operator behind management commands and scheduled work. It cannot log in or hold keys."""
        user, _ = User.objects.get_or_create(
            username=SYSTEM_USERNAME, defaults={"is_staff": True, "is_active": False, "password": "!"}
        )
        return cls(user)

    @property
    def is_system(self) -> bool:
        return self.user.username == SYSTEM_USERNAME and not self.user.is_active and self.key is None

    @classmethod
    def from_request(cls, request) -> Principal:
        principal = getattr(request, "_tollgate_principal", None)
        if principal is None or principal.user != request.user:
            key = request.auth if isinstance(getattr(request, "auth", None), ApiKey) else None
            principal = cls(request.user, key)
            request._tollgate_principal = principal
        return principal

    def __repr__(self):
        return f"<Principal {self.user.username}{' key ' + self.key.prefix if self.key else ''}>"

    @property
    def pinned_project_id(self) -> int | None:
        if self.key and self.key.project_id:
            return self.key.project_id
        return self.user.service_project_id

    @property
    def read_only(self) -> bool:
        return bool(self.key and self.key.read_only)

    @property
    def is_staff(self) -> bool:
        """Staff powers (create projects and users, name admins) need a session or an unpinned key."""
        return bool(self.user.is_staff and self.pinned_project_id is None and not self.read_only)

    def bindings(self) -> QuerySet[RoleBinding]:
        return active_bindings(user=self.user.pk, at=timezone.now(), pinned=self.pinned_project_id)

    def project_ids(self) -> QuerySet:
        """A subquery of the projects where the caller holds a role: for ``filter(project__in=...)``."""
        return self.bindings().values("project_id")

    def scope(self) -> dict:
        """The values that ``project_ids_of`` takes, for a prepared query (controlplane.prepared) scoped to the
        caller: the user, the moment (bindings expire) and the project a key is pinned to, if any."""
        values = {"user": self.user.pk, "at": timezone.now()}
        if self.pinned_project_id:
            values["pinned"] = self.pinned_project_id
        return values

    def roles(self, project: Project | int) -> frozenset[str]:
        if self._roles is None:
            roles: dict[int, set[str]] = {}
            for binding in _bindings_in_force(**self.scope()):
                roles.setdefault(binding.project_id, set()).add(binding.role)
            self._roles = {pid: frozenset(r) for pid, r in roles.items()}
        project_id = project if isinstance(project, int) else project.pk
        return self._roles.get(project_id, frozenset())

    def has_role(self, project: Project | int, roles: Iterable[str]) -> bool:
        return bool(self.roles(project) & set(roles))


def active_bindings(*, user: int, at, pinned: int | None = None) -> QuerySet[RoleBinding]:
    """The user's role bindings in force at ``at`` (in the ``pinned`` project only, when a key is pinned)."""
    bindings = RoleBinding.objects.active(at).filter(principal_id=user)
    if pinned:
        bindings = bindings.filter(project_id=pinned)
    return bindings


def project_ids_of(*, user: int, at, pinned: int | None = None) -> QuerySet:
    """``Principal.project_ids`` from plain values (``Principal.scope()``): for prepared queries."""
    return active_bindings(user=user, at=at, pinned=pinned).values("project_id")


# The caller's roles, read once per request by every service that checks one (controlplane.prepared).
_bindings_in_force = Prepared(lambda **scope: active_bindings(**scope).order_by(), user=0, at=timezone.now(), pinned=0)


def require_role(
    principal: Principal, project: Project, roles: Iterable[str], *, action: str, write: bool = True
) -> None:
    """Refuse with 403 unless the caller holds one of ``roles`` in ``project`` (and, for a write, is not
    using a read-only key). ``action`` names the refused operation in the message."""
    roles = tuple(roles)
    if write and principal.read_only:
        raise Forbidden(f"This API key is read-only; it may not {action}.", code="read_only_key", project=project)
    if principal.has_role(project, roles):
        return
    wanted = " or ".join(roles)
    raise Forbidden(f"Only a project's {wanted} may {action}.", code="permission_denied", project=project)


def _owning_project_id(obj) -> int | None:
    """The project a row belongs to; None for a person, who belongs to no project (a service account does)."""
    if isinstance(obj, User):
        return obj.service_project_id
    if hasattr(obj, "owning_project_id"):  # a row that belongs to its project through its parent
        return obj.owning_project_id
    return obj.project_id


def require_in_project(project: Project | None, **objects) -> None:
    """Refuse with 404, as for an out-of-scope object, unless every object a service was given belongs to the
    project it acts in. Services check this themselves, so the console, the CLI and commands cannot skip it;
    each keyword names the field (``environment=environment``). ``None`` objects are absent, not foreign."""
    expected = project.pk if project is not None else None
    for field, obj in objects.items():
        if obj is None:
            continue
        owner = _owning_project_id(obj)
        if owner is not None and owner != expected:
            raise NotFound(f"No such {obj._meta.verbose_name} in this project.", details=[{"field": field}])
