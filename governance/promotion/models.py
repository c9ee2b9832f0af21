"""Governance: environments, policies, exceptions, promotion requests, decisions and deployments
(DESIGN §4 Governance, §5)."""

from __future__ import annotations

from django.db import connection, models
from django.db.models import Q
from django.db.models.expressions import RawSQL
from django.utils import timezone

from controlplane.labels import label_part


class EnvironmentKind(models.TextChoices):
    STAGING = "staging"
    PRODUCTION = "production"


DEFAULT_ENVIRONMENTS = (("staging", EnvironmentKind.STAGING), ("production", EnvironmentKind.PRODUCTION))


POLICY_IN_FORCE_FIELDS = ("id", "version", "document")


class EnvironmentQuerySet(models.QuerySet):
    def with_policy_in_force(self) -> EnvironmentQuerySet:
        """Each environment with its project's policy in force (the highest version) in the same query, for
        ``Environment.policy_in_force``: the gates' dry run reads both and nothing else of the policy. Plain
        correlated subqueries (``Subquery`` costs three times the CPU to compile, on the hottest read)."""
        quote = connection.ops.quote_name
        policy, environment = quote(Policy._meta.db_table), quote(Environment._meta.db_table)

        def latest(name: str) -> RawSQL:
            return RawSQL(
                f"SELECT {policy}.{quote(name)} FROM {policy} WHERE {policy}.{quote('project_id')} = "
                f"{environment}.{quote('project_id')} ORDER BY {policy}.{quote('version')} DESC LIMIT 1",
                (), output_field=Policy._meta.get_field(name),
            )  # fmt: skip

        return self.annotate(**{f"policy_in_force_{name}": latest(name) for name in POLICY_IN_FORCE_FIELDS})


class Environment(models.Model):
    """Every project starts with ``staging`` and ``production``; those cannot be deleted, and no
    environment's kind ever changes."""

    project = models.ForeignKey("Project", on_delete=models.PROTECT, related_name="environments")
    name = models.SlugField(max_length=64)
    kind = models.CharField(max_length=16, choices=EnvironmentKind.choices)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = EnvironmentQuerySet.as_manager()

    class Meta:
        ordering = ["project_id", "name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="environment_name_in_project")]

    def __str__(self):
        return self.name

    @property
    def audit_label(self) -> str:
        return f"environment:{label_part(self.name)}"

    @property
    def is_default(self) -> bool:
        return self.name in dict(DEFAULT_ENVIRONMENTS)

    @property
    def policy_in_force(self) -> Policy | None:
        """The policy ``with_policy_in_force`` loaded with this environment (its id, version and document; the
        rest loads on access), or None where it was not asked for or the project has none. Policies are
        immutable, so it is the row as published."""
        if getattr(self, "policy_in_force_id", None) is None:
            return None
        id_, version, document = (getattr(self, f"policy_in_force_{name}") for name in POLICY_IN_FORCE_FIELDS)
        return Policy.from_db(self._state.db, ["id", "project_id", "version", "document"],
                              [id_, self.project_id, version, document])  # fmt: skip


class Policy(models.Model):
    """A published version of a project's policy. Immutable; the highest version is in force."""

    project = models.ForeignKey("Project", on_delete=models.PROTECT, related_name="policies")
    version = models.PositiveIntegerField()
    document = models.JSONField()
    source = models.TextField(blank=True, help_text="The text as published (JSON or YAML).")
    document_hash = models.CharField(max_length=64)
    comment = models.TextField(blank=True)
    published_by = models.ForeignKey("User", on_delete=models.PROTECT, null=True, related_name="+")
    published_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["project_id", "-version"]
        constraints = [models.UniqueConstraint(fields=["project", "version"], name="policy_version_unique")]

    def __str__(self):
        return f"policy v{self.version} of {self.project_id}"

    @property
    def audit_label(self) -> str:
        return f"policy:{self.version}"


class WaivableGate(models.TextChoices):
    METRIC = "metric"
    CHECK = "check"
    PROVENANCE = "provenance"
    MODEL_CARD = "model_card"


class PolicyException(models.Model):
    """A named, justified, time-boxed waiver of one non-floor gate for one (model version, environment)."""

    project = models.ForeignKey("Project", on_delete=models.PROTECT, related_name="policy_exceptions")
    model_version = models.ForeignKey("ModelVersion", on_delete=models.PROTECT, related_name="policy_exceptions")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="policy_exceptions")
    gate = models.CharField(max_length=16, choices=WaivableGate.choices)
    target = models.CharField(max_length=200, blank=True, help_text="Which gate of that kind, e.g. a metric name.")
    name = models.CharField(max_length=200)
    justification = models.TextField()
    requested_by = models.ForeignKey("User", on_delete=models.PROTECT, related_name="+")
    granted_by = models.ForeignKey("User", on_delete=models.PROTECT, related_name="+")
    granted_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey("User", on_delete=models.PROTECT, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["-granted_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(granted_by=models.F("requested_by")), name="exception_not_self_granted"
            ),
            models.CheckConstraint(condition=Q(expires_at__gt=models.F("granted_at")), name="exception_expires"),
        ]

    def __str__(self):
        return self.name

    @property
    def audit_label(self) -> str:
        return f"{self.model_version.audit_label}/exception:{self.pk}"

    def is_active(self, at=None) -> bool:
        at = at or timezone.now()
        return self.revoked_at is None and self.expires_at > at


class PromotionRequest(models.Model):
    """A request to run a model version in an environment. "Ready to execute" is derived, never stored."""

    class State(models.TextChoices):
        OPEN = "open"
        REJECTED = "rejected"
        WITHDRAWN = "withdrawn"
        EXECUTED = "executed"

    project = models.ForeignKey("Project", on_delete=models.PROTECT, related_name="promotion_requests")
    model_version = models.ForeignKey("ModelVersion", on_delete=models.PROTECT, related_name="promotion_requests")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="promotion_requests")
    requested_by = models.ForeignKey("User", on_delete=models.PROTECT, related_name="+")
    comment = models.TextField(blank=True)
    emergency = models.BooleanField(default=False)
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN)
    created_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey("User", on_delete=models.PROTECT, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["model_version", "environment"], condition=Q(state="open"), name="one_open_request_per_target"
            )
        ]
        indexes = [models.Index(fields=["project", "state"], name="request_project_state_idx")]

    def __str__(self):
        return f"request {self.pk} ({self.state})"

    @property
    def audit_label(self) -> str:
        return f"{self.model_version.audit_label}/promotion-request:{self.pk}"


class Decision(models.Model):
    """A reviewer's approve or reject, bound to the evidence it was made on. It is void when the evidence
    digest recomputed later differs, or when a failing check run of the version finishes after it."""

    class Outcome(models.TextChoices):
        APPROVE = "approve"
        REJECT = "reject"

    request = models.ForeignKey(PromotionRequest, on_delete=models.PROTECT, related_name="decisions")
    reviewer = models.ForeignKey("User", on_delete=models.PROTECT, related_name="+")
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    comment = models.TextField(blank=True)
    evidence_digest = models.CharField(max_length=64)
    evidence = models.JSONField()
    check_runs = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    voided_at = models.DateTimeField(null=True, blank=True)
    void_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["request_id", "created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["request", "reviewer"],
                condition=Q(voided_at__isnull=True),
                name="one_valid_decision_per_reviewer",
            )
        ]

    def __str__(self):
        return f"{self.outcome} by {self.reviewer_id}"

    @property
    def is_valid(self) -> bool:
        return self.voided_at is None


class Deployment(models.Model):
    """What runs where: one version per (model, environment), enforced by the database."""

    class State(models.TextChoices):
        ACTIVE = "active"
        SUSPENDED = "suspended"

    project = models.ForeignKey("Project", on_delete=models.PROTECT, related_name="deployments")
    model = models.ForeignKey("RegisteredModel", on_delete=models.PROTECT, related_name="deployments")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="deployments")
    model_version = models.ForeignKey("ModelVersion", on_delete=models.PROTECT, related_name="deployments")
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    state_reason = models.TextField(blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["model_id", "environment_id"]
        constraints = [models.UniqueConstraint(fields=["model", "environment"], name="one_version_per_deployment")]

    def __str__(self):
        return f"{self.model_id}@{self.environment_id}"

    @property
    def audit_label(self) -> str:
        return f"{self.model.audit_label}/deployment:{label_part(self.environment.name)}"


class DeploymentHistory(models.Model):
    """Append-only: which version ran in a deployment from when to when, approved by whom, under which
    policy version. "What was in production on date X" is one query on this table."""

    deployment = models.ForeignKey(Deployment, on_delete=models.PROTECT, related_name="history")
    model_version = models.ForeignKey("ModelVersion", on_delete=models.PROTECT, related_name="+")
    request = models.ForeignKey(PromotionRequest, on_delete=models.PROTECT, related_name="+")
    approvers = models.JSONField(default=list)
    policy_version = models.PositiveIntegerField()
    emergency = models.BooleanField(default=False)
    executed_by = models.ForeignKey("User", on_delete=models.PROTECT, related_name="+")
    from_at = models.DateTimeField()
    to_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["deployment_id", "-from_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["deployment"], condition=Q(to_at__isnull=True), name="one_open_history_row_per_deployment"
            )
        ]
        indexes = [models.Index(fields=["deployment", "from_at", "to_at"], name="history_window_idx")]

    def __str__(self):
        return f"{self.deployment_id}: v{self.model_version_id} from {self.from_at}"
