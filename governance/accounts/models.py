"""Who may do what: users and service accounts, projects, role bindings and API keys (DESIGN §4, Access)."""

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q
from django.utils import timezone

from controlplane.labels import label_part


class Role(models.TextChoices):
    ML_ENGINEER = "ml_engineer", "ML engineer"
    GOVERNANCE_OFFICER = "governance_officer", "Governance officer"
    AUDITOR = "auditor", "Auditor"
    ADMIN = "admin", "Project admin"


SERVICE_ACCOUNT_ROLES = (Role.ML_ENGINEER, Role.AUDITOR)


class Project(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey("User", on_delete=models.PROTECT, null=True, related_name="+")

    class Meta:
        ordering = ["slug"]

    def __str__(self):
        return self.slug

    @property
    def audit_label(self) -> str:
        return f"project:{self.slug}"


class User(AbstractUser):
    """A human (console and API keys) or a service account: a non-human principal of exactly one project."""

    service_project = models.ForeignKey(
        Project, on_delete=models.PROTECT, null=True, blank=True, related_name="service_accounts"
    )
    description = models.TextField(blank=True)

    @property
    def audit_label(self) -> str:
        return f"user:{label_part(self.username)}"

    @property
    def is_service_account(self) -> bool:
        return self.service_project_id is not None


class RoleBindingQuerySet(models.QuerySet):
    def active(self, at=None):
        at = at or timezone.now()
        return self.filter(revoked_at__isnull=True, granted_at__lte=at).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=at)
        )


class RoleBinding(models.Model):
    """A role of a principal in a project. Revoked and expired bindings stay: they are the history."""

    principal = models.ForeignKey(User, on_delete=models.PROTECT, related_name="role_bindings")
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="role_bindings")
    role = models.CharField(max_length=32, choices=Role.choices)
    granted_by = models.ForeignKey(User, on_delete=models.PROTECT, null=True, related_name="+")
    granted_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(User, on_delete=models.PROTECT, null=True, blank=True, related_name="+")

    objects = RoleBindingQuerySet.as_manager()

    class Meta:
        ordering = ["project_id", "principal_id", "role", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["principal", "project", "role"],
                condition=Q(revoked_at__isnull=True),
                name="one_unrevoked_binding_per_role",
            ),
            models.CheckConstraint(
                condition=Q(granted_by__isnull=True) | ~Q(granted_by=models.F("principal")),
                name="nobody_grants_themselves",
            ),
            models.CheckConstraint(
                condition=Q(expires_at__isnull=True) | Q(expires_at__gt=models.F("granted_at")),
                name="binding_expires_after_grant",
            ),
        ]
        indexes = [
            models.Index(
                fields=["principal", "project"], condition=Q(revoked_at__isnull=True), name="active_binding_idx"
            )
        ]

    def __str__(self):
        return f"{self.principal_id} {self.role} in {self.project_id}"

    @property
    def audit_label(self) -> str:
        return f"member:{label_part(self.principal.username)}/{self.role}"

    @property
    def state(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= timezone.now():
            return "expired"
        return "active"


class ApiKey(models.Model):
    """A bearer key. Only the SHA-256 of the secret is stored; the key is shown once, at creation."""

    owner = models.ForeignKey(User, on_delete=models.PROTECT, related_name="api_keys")
    project = models.ForeignKey(Project, on_delete=models.PROTECT, null=True, blank=True, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=8, unique=True)
    hashed = models.CharField(max_length=64, unique=True)
    read_only = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, null=True, related_name="+")
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.name} (tg_{self.prefix}…)"

    @property
    def audit_label(self) -> str:
        return f"api-key:{self.prefix}"

    @property
    def state(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= timezone.now():
            return "expired"
        return "active"
