"""Django loads one ``models`` module per app: this one imports each concern's models, so the one app label
(``governance``) and its tables stay as they were. Code imports a model from its concern
(``governance.registry.models``), never from here."""

from governance.accounts.models import ApiKey, Project, RoleBinding, User
from governance.audit.models import AccessLogEntry, AuditChainHead, AuditEvent, AuditVerification
from governance.promotion.models import (
    Decision,
    Deployment,
    DeploymentHistory,
    Environment,
    Policy,
    PolicyException,
    PromotionRequest,
)
from governance.provenance.models import (
    Dataset,
    DatasetVersion,
    LineageEvent,
    LineageGraphEdge,
    LineageJob,
    LineageNode,
    LineageRun,
    LineageRunDataset,
    ModelVersionDataset,
)
from governance.registry.models import Metric, ModelCard, ModelCardRevision, ModelVersion, RegisteredModel
from governance.webhooks.models import Webhook, WebhookDelivery

__all__ = [
    "AccessLogEntry",
    "ApiKey",
    "AuditChainHead",
    "AuditEvent",
    "AuditVerification",
    "Dataset",
    "DatasetVersion",
    "Decision",
    "Deployment",
    "DeploymentHistory",
    "Environment",
    "LineageEvent",
    "LineageGraphEdge",
    "LineageJob",
    "LineageNode",
    "LineageRun",
    "LineageRunDataset",
    "Metric",
    "ModelCard",
    "ModelCardRevision",
    "ModelVersion",
    "ModelVersionDataset",
    "Policy",
    "PolicyException",
    "PromotionRequest",
    "Project",
    "RegisteredModel",
    "RoleBinding",
    "User",
    "Webhook",
    "WebhookDelivery",
]
