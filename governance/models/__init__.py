from .access import ApiKey, Project, Role, RoleBinding, User

__all__ = ["ApiKey", "Project", "Role", "RoleBinding", "User"]
