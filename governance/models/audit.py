"""The record: a hash-chained, append-only audit log and the (unchained) access log (DESIGN §4, Audit)."""

from django.db import models
from django.utils import timezone

SYSTEM_CHAIN = "system"
GENESIS_HASH = "0" * 64


def chain_of(project_id: int | None) -> str:
    return f"project:{project_id}" if project_id else SYSTEM_CHAIN


class AuditEvent(models.Model):
    """One link of a chain. ``payload`` holds the exact canonical-JSON text that was hashed; the other
    columns repeat parts of it for querying, and the verifier checks that they agree with it.

    The database refuses UPDATE, DELETE and TRUNCATE of these rows (triggers in migration 0002)."""

    chain = models.CharField(max_length=40)
    sequence = models.BigIntegerField()
    occurred_at = models.DateTimeField()
    project = models.ForeignKey(
        "Project", on_delete=models.DO_NOTHING, db_constraint=False, null=True, related_name="+"
    )
    actor = models.ForeignKey("User", on_delete=models.DO_NOTHING, db_constraint=False, null=True, related_name="+")
    actor_name = models.CharField(max_length=200)
    actor_role = models.CharField(max_length=200, blank=True)
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=200, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    client_address = models.CharField(max_length=64, blank=True)
    diff = models.JSONField(default=dict)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)
    payload = models.TextField()

    class Meta:
        ordering = ["chain", "sequence"]
        constraints = [models.UniqueConstraint(fields=["chain", "sequence"], name="one_event_per_chain_position")]
        indexes = [
            models.Index(fields=["project", "occurred_at"], name="audit_project_time_idx"),
            models.Index(fields=["project", "action"], name="audit_project_action_idx"),
            models.Index(fields=["project", "actor_name"], name="audit_project_actor_idx"),
            models.Index(fields=["project", "target_type", "target_id"], name="audit_project_target_idx"),
        ]

    def __str__(self):
        return f"{self.chain}#{self.sequence} {self.action}"


class AuditChainHead(models.Model):
    """The tail of each chain, locked by writers so concurrent appends never fork a chain. A convenience
    for writers only: the verifier trusts the events and the checkpoints, never this row."""

    chain = models.CharField(max_length=40, primary_key=True)
    sequence = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, default=GENESIS_HASH)

    def __str__(self):
        return f"{self.chain}@{self.sequence}"


class AuditVerification(models.Model):
    """A verification of one chain, run as a task for large chains; it reports progress while it runs."""

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        ERROR = "error"

    chain = models.CharField(max_length=40)
    project = models.ForeignKey("Project", on_delete=models.PROTECT, null=True, related_name="+")
    requested_by = models.ForeignKey("User", on_delete=models.PROTECT, null=True, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    total = models.BigIntegerField(default=0)
    checked = models.BigIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]

    def __str__(self):
        return f"verification of {self.chain} ({self.state})"


class AccessLogEntry(models.Model):
    """Who read or wrote what. Not chained (a daily digest goes into the system chain); kept for a
    configurable number of days."""

    at = models.DateTimeField(default=timezone.now)
    principal = models.ForeignKey("User", on_delete=models.DO_NOTHING, db_constraint=False, null=True, related_name="+")
    principal_name = models.CharField(max_length=200, blank=True)
    key_prefix = models.CharField(max_length=8, blank=True)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    project_slug = models.CharField(max_length=64, blank=True)
    object = models.CharField(max_length=200, blank=True)
    status = models.PositiveSmallIntegerField()
    request_id = models.CharField(max_length=64, blank=True)
    client_address = models.CharField(max_length=64, blank=True)
    detail = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["project_slug", "at"], name="access_project_time_idx"),
            models.Index(fields=["at"], name="access_time_idx"),
        ]

    def __str__(self):
        return f"{self.method} {self.path} {self.status}"
