from .access import ApiKey, Project, Role, RoleBinding, User
from .audit import AccessLogEntry, AuditChainHead, AuditEvent, AuditVerification
from .registry import (
    Classification,
    Dataset,
    DatasetRole,
    DatasetVersion,
    Metric,
    ModelCard,
    ModelCardRevision,
    ModelVersion,
    ModelVersionDataset,
    RegisteredModel,
    RiskTier,
)

__all__ = [
    "Classification",
    "Dataset",
    "DatasetRole",
    "DatasetVersion",
    "Metric",
    "ModelCard",
    "ModelCardRevision",
    "ModelVersion",
    "ModelVersionDataset",
    "RegisteredModel",
    "RiskTier",
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
