"""The record: a hash-chained, append-only audit log and the (unchained) access log (DESIGN §4, Audit).

Target labels: each event names its target as people know it, a path of ``/``-separated parts, broadest
first, so that a filter is a comparison with the label's start and needs no join into the target's concern:

    model:fraud-gbm                                  a model
    model:fraud-gbm/3                                its version 3
    model:fraud-gbm/3/promotion-request:12           a promotion request of that version (also exception:,
                                                     batch:, check-run:, alert:, lineage-run:, monitor:)
    model:fraud-gbm/deployment:production            the model's deployment in production (and its monitor:)
    dataset:customers    dataset:customers/2         a dataset by name; its version labelled 2
    project:fraud  user:alice  member:alice/auditor  api-key:1a2b3c4d  environment:production  policy:4
    webhook:3  data-policy                           and ``<target_type>:<target_id>`` for any other target

A name is written with ``%``, ``/`` and whitespace or control characters percent-encoded (``label_part``), so
a label splits back into its parts and a filter builds the label it looks for. Each model says its own label
(``audit_label``); ``governance.audit`` stores it with the event and hashes it with the rest.
"""

from django.db import models
from django.utils import timezone

from controlplane.labels import label_part

SYSTEM_CHAIN = "system"
GENESIS_HASH = "0" * 64


def chain_of(project_id: int | None) -> str:
    return f"project:{project_id}" if project_id else SYSTEM_CHAIN


def _label_and_below(label: str) -> models.Q:
    return models.Q(target_label=label) | models.Q(target_label__startswith=f"{label}/")


class AuditEventQuerySet(models.QuerySet):
    def about(
        self,
        *,
        model: str | None = None,
        version: int | None = None,
        dataset: str | None = None,
        dataset_version: str | None = None,
        promotion_request: int | None = None,
        deployment: tuple[str, str] | None = None,
    ) -> "AuditEventQuerySet":
        """Events by what people know, matched on the target label alone (no join): a model and what is
        under it (``version``: that version and what is under it), a dataset (and one version of it), a
        promotion request, a deployment given as (model, environment) and its monitors. Given together,
        all must hold."""
        if version is not None and model is None:
            raise ValueError("version needs model")
        if dataset_version is not None and dataset is None:
            raise ValueError("dataset_version needs dataset")
        condition = models.Q()
        if model is not None:
            label = f"model:{label_part(model)}"
            condition &= _label_and_below(f"{label}/{version}" if version is not None else label)
        if dataset is not None:
            label = f"dataset:{label_part(dataset)}"
            condition &= _label_and_below(f"{label}/{label_part(dataset_version)}" if dataset_version else label)
        if promotion_request is not None:
            condition &= models.Q(target_label__endswith=f"/promotion-request:{promotion_request}")
        if deployment is not None:
            deployed_model, environment = deployment
            condition &= _label_and_below(f"model:{label_part(deployed_model)}/deployment:{label_part(environment)}")
        return self.filter(condition)


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
    # The target as people know it (see the module's docstring); empty on events written before labels were.
    target_label = models.TextField(blank=True, default="")
    request_id = models.CharField(max_length=64, blank=True)
    client_address = models.CharField(max_length=64, blank=True)
    diff = models.JSONField(default=dict)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)
    payload = models.TextField()

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["chain", "sequence"]
        constraints = [models.UniqueConstraint(fields=["chain", "sequence"], name="one_event_per_chain_position")]
        indexes = [
            models.Index(fields=["project", "occurred_at"], name="audit_project_time_idx"),
            models.Index(fields=["project", "action"], name="audit_project_action_idx"),
            models.Index(fields=["project", "actor_name"], name="audit_project_actor_idx"),
            models.Index(fields=["project", "target_type", "target_id"], name="audit_project_target_idx"),
            # text_pattern_ops: PostgreSQL uses the index for the label filters' LIKE 'prefix%' in any collation.
            models.Index(
                fields=["project", "target_label"],
                name="audit_project_label_idx",
                opclasses=["int8_ops", "text_pattern_ops"],
            ),
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


def _url_parameter(name: str, value) -> models.Q:
    """``object`` is the URL's name, then its parameters as ``name=value``, each after a space."""
    return models.Q(object__contains=f" {name}={value} ") | models.Q(object__endswith=f" {name}={value}")


class AccessLogQuerySet(models.QuerySet):
    def about(
        self,
        *,
        model: str | None = None,
        version: int | None = None,
        promotion_request: int | None = None,
        deployment: tuple[str, str] | None = None,
    ) -> "AccessLogQuerySet":
        """Requests by the URL they named: under ``models/<model>/`` or ``deployments/<model>/`` (``version``:
        under ``.../versions/<version>/``), ``promotion-requests/<id>/...``, ``deployments/<model>/<environment>/``."""
        if version is not None and model is None:
            raise ValueError("version needs model")
        condition = models.Q()
        if model is not None:
            condition &= _url_parameter("model", model)
        if version is not None:
            condition &= _url_parameter("version", version)
        if promotion_request is not None:
            condition &= models.Q(object__startswith="promotion-") & _url_parameter("pk", promotion_request)
        if deployment is not None:
            condition &= (
                models.Q(object__startswith="deployment-")
                & _url_parameter("model", deployment[0])
                & _url_parameter("environment", deployment[1])
            )
        return self.filter(condition)


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

    objects = AccessLogQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["project_slug", "at"], name="access_project_time_idx"),
            models.Index(fields=["at"], name="access_time_idx"),
        ]

    def __str__(self):
        return f"{self.method} {self.path} {self.status}"
