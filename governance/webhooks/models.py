"""Outgoing webhooks (DESIGN §4, §6): a project's subscriptions to audit actions and the log of deliveries."""

import json
import uuid

from django.db import models
from django.utils import timezone


class Webhook(models.Model):
    """A subscription of a receiver to some of a project's audit actions.

    The signing secret is stored encrypted (``governance.webhooks.delivery.secret_seal``): the worker can sign with
    it, nobody can read it back through the API. ``secret_hint`` (its first characters) tells secrets apart."""

    project = models.ForeignKey("Project", on_delete=models.PROTECT, related_name="webhooks")
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    actions = models.JSONField(default=list)
    secret_encrypted = models.TextField()
    secret_hint = models.CharField(max_length=12)
    active = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=500, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey("User", on_delete=models.PROTECT, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        # The one query every audited change of a project makes: its active webhooks.
        indexes = [models.Index(fields=["project", "active"], name="webhook_project_active_idx")]

    def __str__(self):
        return f"webhook #{self.pk} → {self.url}"

    @property
    def audit_label(self) -> str:
        return f"webhook:{self.pk}"


class WebhookDelivery(models.Model):
    """One event sent (or to be sent) to one webhook. ``payload`` is the exact body, fixed when the event
    happened, so a retry or a redelivery sends the same bytes (signed anew with a fresh timestamp).

    A redelivery is a new row (a new delivery id) pointing at the delivery it repeats."""

    class State(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    delivery_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    audit_event = models.ForeignKey(
        "AuditEvent", on_delete=models.DO_NOTHING, db_constraint=False, null=True, related_name="+"
    )
    event_type = models.CharField(max_length=64)
    payload = models.TextField()
    is_test = models.BooleanField(default=False)
    redelivery_of = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_response = models.TextField(blank=True)
    last_duration_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    requested_by = models.ForeignKey("User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["webhook", "-id"], name="webhook_delivery_log_idx")]

    def __str__(self):
        return f"{self.event_type} → webhook #{self.webhook_id} ({self.state})"

    @property
    def payload_json(self):
        return json.loads(self.payload)
