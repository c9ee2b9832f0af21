from rest_framework.permissions import SAFE_METHODS, BasePermission


class ReadOnlyKeyPermission(BasePermission):
    """A read-only API key changes nothing. Views whose POST only reads (the two ``verify/`` endpoints of
    DESIGN §6) declare ``read_like = True``."""

    message = "This API key is read-only."
    code = "read_only_key"

    def has_permission(self, request, view):
        key = request.auth
        if key is None or not getattr(key, "read_only", False):
            return True
        return request.method in SAFE_METHODS or getattr(view, "read_like", False)


class IsStaff(BasePermission):
    """Staff create projects and users; a staff member's key counts only when it is not pinned to a project."""

    message = "Only staff may do this."

    def has_permission(self, request, view):
        user, key = request.user, request.auth
        return bool(user and user.is_staff and (key is None or key.project_id is None))
