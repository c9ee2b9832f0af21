"""Provenance and registry: datasets and their immutable versions, models, versions, metrics and model cards
(DESIGN §4, Provenance and Registry)."""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from controlplane.labels import label_part


class RiskTier(models.TextChoices):
    MINIMAL = "minimal"
    LIMITED = "limited"
    HIGH = "high"
    UNACCEPTABLE = "unacceptable"


class RegisteredModel(models.Model):
    project = models.ForeignKey("Project", on_delete=models.PROTECT, related_name="models")
    name = models.CharField(max_length=200)
    owner = models.ForeignKey("User", on_delete=models.PROTECT, null=True, related_name="+")
    description = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="model_name_in_project")]

    def __str__(self):
        return self.name

    @property
    def audit_label(self) -> str:
        return f"model:{label_part(self.name)}"


class ModelVersion(models.Model):
    """Artifact uri, sha256 and signature are immutable. The control plane stores references and hashes;
    it never downloads or unpickles an artifact."""

    class Status(models.TextChoices):
        REGISTERED = "registered"
        ARCHIVED = "archived"

    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    artifact_uri = models.CharField(max_length=2000)
    artifact_sha256 = models.CharField(max_length=64)
    framework = models.CharField(max_length=100, blank=True)
    signature = models.JSONField(default=dict)
    params = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=list, blank=True)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.REGISTERED)
    created_by = models.ForeignKey("User", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["model_id", "version"]
        constraints = [
            models.UniqueConstraint(fields=["model", "version"], name="model_version_number_unique"),
            models.UniqueConstraint(fields=["model", "artifact_sha256"], name="model_version_artifact_unique"),
        ]

    def __str__(self):
        return f"{self.model.name} v{self.version}"

    @property
    def owning_project_id(self) -> int:
        """The project the version belongs to, through its model (``require_in_project`` reads it)."""
        return self.model.project_id

    @property
    def audit_label(self) -> str:
        return f"{self.model.audit_label}/{self.version}"


class Metric(models.Model):
    """One measured value, as a row so it can be filtered and indexed."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="metrics")
    name = models.CharField(max_length=100)
    value = models.FloatField()
    dataset_version = models.ForeignKey(
        "DatasetVersion", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    subgroup = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["model_version_id", "name", "subgroup", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["model_version", "name", "dataset_version", "subgroup"],
                condition=Q(dataset_version__isnull=False),
                name="metric_unique_per_dataset",
            ),
            models.UniqueConstraint(
                fields=["model_version", "name", "subgroup"],
                condition=Q(dataset_version__isnull=True),
                name="metric_unique_without_dataset",
            ),
        ]
        indexes = [models.Index(fields=["name", "value"], name="metric_name_value_idx")]

    def __str__(self):
        return f"{self.name}={self.value}"


MODEL_CARD_FIELDS = (
    "intended_use",
    "out_of_scope_uses",
    "users_and_affected_persons",
    "limitations",
    "ethical_considerations",
    "evaluation_data",
    "metrics_by_subgroup",
    "human_oversight",
    "proposed_risk_tier",
    "risk_tier_rationale",
)


class ModelCard(models.Model):
    """The current card of a version. ``content`` holds the fields of MODEL_CARD_FIELDS; every edit is a
    ``ModelCardRevision`` with its author and hash. The confirmed tier is set only by a governance officer and
    is bound to the revision they confirmed: a later edit voids it, and the ``confirmation_voided_*`` fields
    say who voided which revision's confirmation, when and why, until the next confirmation."""

    model_version = models.OneToOneField(ModelVersion, on_delete=models.PROTECT, related_name="card")
    content = models.JSONField(default=dict)
    revision = models.PositiveIntegerField(default=0)
    content_hash = models.CharField(max_length=64, blank=True)
    confirmed_risk_tier = models.CharField(max_length=16, choices=RiskTier.choices, blank=True)
    confirmed_revision = models.PositiveIntegerField(null=True, blank=True)
    confirmed_by = models.ForeignKey("User", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    confirmed_at = models.DateTimeField(null=True, blank=True)
    confirmation_comment = models.TextField(blank=True)
    confirmation_voided_at = models.DateTimeField(null=True, blank=True)
    confirmation_voided_by = models.ForeignKey(
        "User", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    confirmation_voided_revision = models.PositiveIntegerField(null=True, blank=True)
    confirmation_void_reason = models.TextField(blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(confirmed_risk_tier="") & Q(confirmed_revision__isnull=True))
                | (
                    ~Q(confirmed_risk_tier="")
                    & Q(confirmed_revision__isnull=False, confirmed_revision__lte=models.F("revision"))
                ),
                name="card_confirmation_bound_to_a_revision",
            )
        ]

    def __str__(self):
        return f"card of {self.model_version_id} r{self.revision}"

    @property
    def effective_risk_tier(self) -> str:
        return effective_risk_tier(self.confirmed_risk_tier)


def effective_risk_tier(confirmed: str) -> str:
    """The tier gates use: the confirmed one (if it counts); an unconfirmed tier counts as high (DESIGN §4)."""
    return confirmed or RiskTier.HIGH


class ModelCardRevision(models.Model):
    card = models.ForeignKey(ModelCard, on_delete=models.PROTECT, related_name="revisions")
    revision = models.PositiveIntegerField()
    content = models.JSONField()
    content_hash = models.CharField(max_length=64)
    author = models.ForeignKey("User", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["card_id", "revision"]
        constraints = [models.UniqueConstraint(fields=["card", "revision"], name="card_revision_unique")]

    def __str__(self):
        return f"{self.card_id} r{self.revision}"
