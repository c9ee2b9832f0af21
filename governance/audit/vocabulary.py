"""The one vocabulary of actions (DESIGN §4): what the audit log records and what a webhook subscribes to.

Every ``audit_record(action=...)`` in the code uses a name listed here; a test reads the source and holds the
two together, so adding an action means adding it here too (and it becomes subscribable at once).
"""

AUDIT_ACTIONS: frozenset[str] = frozenset(
    {
        # Access
        "access.denied",
        "api_key.created",
        "api_key.revoked",
        "auth.login",
        "project.created",
        "project.updated",
        "role.granted",
        "role.revoked",
        "service_account.created",
        "user.created",
        "user.password_set",
        # Provenance
        "dataset.created",
        "dataset.updated",
        "dataset_version.registered",
        "dataset_version.updated",
        "lineage.ingested",
        "lineage.run_linked",
        # Registry
        "model.created",
        "model.updated",
        "model_card.confirmation_voided",
        "model_card.edited",
        "model_card.risk_tier_confirmed",
        "model_version.archived",
        "model_version.datasets_linked",
        "model_version.metrics_recorded",
        "model_version.registered",
        "model_version.updated",
        # Governance and the promotion workflow
        "deployment.promoted",
        "deployment.resumed",
        "deployment.suspended",
        "environment.created",
        "environment.deleted",
        "exception.granted",
        "exception.revoked",
        "gate.evaluated",
        "policy.published",
        "promotion.approved",
        "promotion.emergency_requested",
        "promotion.rejected",
        "promotion.requested",
        "promotion.voided",
        "promotion.withdrawn",
        # Monitoring
        "alert.acknowledged",
        "alert.raised",
        "batch.labels_added",
        "batch.uploaded",
        "check.failed",
        "check.passed",
        "data_policy.updated",
        "monitor.created",
        "monitor.updated",
        "raw_data.purged",
        # Audit and webhooks themselves
        "access_log.digest",
        "webhook.created",
        "webhook.deleted",
        "webhook.disabled",
        "webhook.updated",
    }
)

# What a webhook may subscribe to: every action of a project's chain. (System-chain actions such as
# ``auth.login`` or ``access_log.digest`` belong to no project, so no project's webhook ever sees them.)
WEBHOOK_ACTIONS: frozenset[str] = AUDIT_ACTIONS

# The event type of a test delivery (``POST .../webhooks/{id}/test/``): sent, never audited.
WEBHOOK_TEST_EVENT = "webhook.test"
