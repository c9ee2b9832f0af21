from .access import ApiKey, Project, Role, RoleBinding, User
from .audit import AccessLogEntry, AuditChainHead, AuditEvent, AuditVerification

__all__ = [
    "AccessLogEntry",
    "ApiKey",
    "AuditChainHead",
    "AuditEvent",
    "AuditVerification",
    "Project",
    "Role",
    "RoleBinding",
    "User",
]
