"""Monitors, batches, check runs and alerts (DESIGN §4, Monitoring)."""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from monitoring.vocabulary import below_reliable_size


class MonitorKind(models.TextChoices):
    DATA_DRIFT = "data_drift"
    DATA_QUALITY = "data_quality"
    MODEL_QUALITY = "model_quality"


class MonitorState(models.TextChoices):
    """Derived when read, never stored: ``paused`` (not active), ``needs_reference`` (a kind in REFERENCE_KINDS and
    the watched version has no reference data workers can read: nothing is queued), else ``active``."""

    ACTIVE = "active"
    NEEDS_REFERENCE = "needs_reference"
    PAUSED = "paused"


# The kinds that compare a batch with the version's reference data (a dataset version linked with the role
# ``reference``); without one such a monitor is in ``needs_reference`` and no run of it is queued.
REFERENCE_KINDS = (MonitorKind.DATA_DRIFT, MonitorKind.DATA_QUALITY)


class Monitor(models.Model):
    """Watches a deployment (whatever version it runs) or one model version (e.g. before it is deployed).
    Its configuration lives in immutable revisions; ``revision`` is the current one."""

    project = models.ForeignKey("governance.Project", on_delete=models.PROTECT, related_name="monitors")
    model = models.ForeignKey("governance.RegisteredModel", on_delete=models.PROTECT, related_name="monitors")
    deployment = models.ForeignKey(
        "governance.Deployment", on_delete=models.PROTECT, null=True, blank=True, related_name="monitors"
    )
    model_version = models.ForeignKey(
        "governance.ModelVersion", on_delete=models.PROTECT, null=True, blank=True, related_name="monitors"
    )
    name = models.SlugField(max_length=100)
    kind = models.CharField(max_length=16, choices=MonitorKind.choices)
    revision = models.PositiveIntegerField(default=1)
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey("governance.User", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["project_id", "name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="monitor_name_in_project"),
            models.CheckConstraint(
                condition=Q(deployment__isnull=True, model_version__isnull=False)
                | Q(deployment__isnull=False, model_version__isnull=True),
                name="monitor_watches_a_deployment_or_a_version",
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def audit_label(self) -> str:
        """Under what it watches: the deployment or the version."""
        return f"{(self.deployment if self.deployment_id else self.model_version).audit_label}/monitor:{self.pk}"


class MonitorRevision(models.Model):
    """One configuration of a monitor; immutable. A check run names the revision it ran with."""

    monitor = models.ForeignKey(Monitor, on_delete=models.PROTECT, related_name="revisions")
    revision = models.PositiveIntegerField()
    config = models.JSONField(default=dict)
    config_hash = models.CharField(max_length=64)
    created_by = models.ForeignKey("governance.User", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["monitor_id", "revision"]
        constraints = [models.UniqueConstraint(fields=["monitor", "revision"], name="monitor_revision_unique")]

    def __str__(self):
        return f"{self.monitor_id} r{self.revision}"


class Batch(models.Model):
    """Production data scored by one model version, stored as Parquet under the project's prefix. It may
    hold personal data. ``revision`` grows when labels arrive (``BatchLabels``); a label revision re-runs only
    model_quality monitors. ``purged_at``: the raw file (and its labels) was deleted under the project's
    retention; the hash, the runs and their results stay."""

    class Kind(models.TextChoices):
        UPLOADED = "uploaded"
        URI = "uri"

    project = models.ForeignKey("governance.Project", on_delete=models.PROTECT, related_name="batches")
    deployment = models.ForeignKey(
        "governance.Deployment", on_delete=models.PROTECT, null=True, blank=True, related_name="batches"
    )
    model_version = models.ForeignKey("governance.ModelVersion", on_delete=models.PROTECT, related_name="batches")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    uri = models.CharField(max_length=2000)
    storage_path = models.CharField(max_length=1000)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    row_count = models.BigIntegerField(null=True, blank=True)
    schema = models.JSONField(default=list, blank=True)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    revision = models.PositiveIntegerField(default=1)
    created_by = models.ForeignKey("governance.User", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-window_end", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["model_version", "sha256"], name="batch_bytes_once_per_version"),
            models.CheckConstraint(condition=Q(window_start__lte=models.F("window_end")), name="batch_window_order"),
        ]
        indexes = [models.Index(fields=["project", "window_end"], name="batch_project_window_idx")]

    def __str__(self):
        return f"batch {self.pk} of version {self.model_version_id}"

    @property
    def audit_label(self) -> str:
        return f"{self.model_version.audit_label}/batch:{self.pk}"


class BatchLabels(models.Model):
    """Labels that arrived for a batch: revision ``revision`` of the batch (2, 3, ...). Stored as Parquet beside
    the batch; joined to it by ``key`` (a column of both), or row by row when ``key`` is empty."""

    batch = models.ForeignKey(Batch, on_delete=models.PROTECT, related_name="labels")
    revision = models.PositiveIntegerField()
    storage_path = models.CharField(max_length=1000)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    row_count = models.BigIntegerField()
    schema = models.JSONField(default=list, blank=True)
    key = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey("governance.User", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["batch_id", "revision"]
        constraints = [models.UniqueConstraint(fields=["batch", "revision"], name="batch_labels_revision_unique")]

    def __str__(self):
        return f"labels r{self.revision} of batch {self.batch_id}"


class CheckState(models.TextChoices):
    DEFERRED = "deferred"  # created while a queue bound was reached; queued when there is room (never dropped)
    QUEUED = "queued"
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    TIMED_OUT = "timed_out"


TERMINAL_STATES = (CheckState.PASSED, CheckState.FAILED, CheckState.ERROR, CheckState.TIMED_OUT)
NOT_PASSED_STATES = (CheckState.FAILED, CheckState.ERROR, CheckState.TIMED_OUT)


class ReportState(models.TextChoices):
    NONE = "none"  # no verdict yet (or never: error, timed out)
    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"
    PURGED = "purged"  # deleted with the raw data it shows (it holds the data's values)


class CheckRun(models.Model):
    """One check of one batch (at one batch revision) with one monitor revision -- unique, so asking again
    returns this run unless the configuration changed. Claimed by a conditional update (queued -> running,
    attempts + 1); its result is written only while it is still (running, that attempt)."""

    project = models.ForeignKey("governance.Project", on_delete=models.PROTECT, related_name="check_runs")
    monitor = models.ForeignKey(Monitor, on_delete=models.PROTECT, related_name="runs")
    monitor_revision = models.ForeignKey(MonitorRevision, on_delete=models.PROTECT, related_name="runs")
    batch = models.ForeignKey(Batch, on_delete=models.PROTECT, related_name="runs")
    batch_revision = models.PositiveIntegerField()
    model_version = models.ForeignKey("governance.ModelVersion", on_delete=models.PROTECT, related_name="check_runs")
    kind = models.CharField(max_length=16, choices=MonitorKind.choices)
    state = models.CharField(max_length=16, choices=CheckState.choices, default=CheckState.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    requested_by = models.ForeignKey("governance.User", on_delete=models.PROTECT, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    queued_at = models.DateTimeField(default=timezone.now, help_text="When it was (re-)queued last.")
    claimed_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=300, blank=True, help_text="host:pid of the attempt's worker process")
    time_limit_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="The hard time limit the attempt's worker applies; the reaper goes by it."
    )
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    results = models.JSONField(default=list, blank=True)
    verdict = models.TextField(blank=True)
    error = models.TextField(blank=True)
    report_state = models.CharField(max_length=16, choices=ReportState.choices, default=ReportState.NONE)
    report_json_path = models.CharField(max_length=1000, blank=True)
    report_html_path = models.CharField(max_length=1000, blank=True)
    report_error = models.TextField(blank=True)
    report_samples = models.JSONField(
        default=dict, blank=True,
        help_text='The sides the report was built on a sample of, and only those: {"reference": {"rows": 100000, '
        '"of": 1000000}}; the verdict used every row.',
    )  # fmt: skip
    warnings = models.JSONField(
        default=list, blank=True,
        help_text='Structured warnings about the verdict: [{"code": "window_below_reliable_size", "message", ...}].',
    )  # fmt: skip

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["monitor_revision", "batch", "batch_revision"], name="one_run_per_revision_and_batch"
            ),
            models.CheckConstraint(condition=Q(state__in=[s.value for s in CheckState]), name="check_run_state_valid"),
        ]
        indexes = [
            models.Index(fields=["model_version", "kind", "state"], name="check_run_gate_idx"),
            models.Index(fields=["state", "claimed_at"], name="check_run_reaper_idx"),
        ]

    def __str__(self):
        return f"check run {self.pk} ({self.kind}, {self.state})"

    @property
    def audit_label(self) -> str:
        return f"{self.model_version.audit_label}/check-run:{self.pk}"

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def below_reliable_size(self) -> bool:
        """The run's window was below the size at which its drift methods are reliable (its warnings say so)."""
        return below_reliable_size(self.warnings)


class Alert(models.Model):
    """A check of a deployed version did not pass (``check_<state>``), or a monitor's data stopped arriving
    (``no_data``: once per silence, keyed by the last arrival). Acknowledged by a person, once."""

    NO_DATA = "no_data"

    project = models.ForeignKey("governance.Project", on_delete=models.PROTECT, related_name="alerts")
    check_run = models.ForeignKey(CheckRun, on_delete=models.PROTECT, null=True, blank=True, related_name="alerts")
    monitor = models.ForeignKey(Monitor, on_delete=models.PROTECT, null=True, blank=True, related_name="alerts")
    deployment = models.ForeignKey(
        "governance.Deployment", on_delete=models.PROTECT, null=True, blank=True, related_name="alerts"
    )
    model_version = models.ForeignKey("governance.ModelVersion", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=32, default="check_failed")
    key = models.CharField(max_length=64, blank=True, help_text="no_data: the last arrival it is about")
    message = models.TextField()
    suspended = models.BooleanField(default=False, help_text="The deployment was suspended automatically.")
    raised_at = models.DateTimeField(default=timezone.now)
    acknowledged_by = models.ForeignKey(
        "governance.User", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledgement = models.TextField(blank=True)

    class Meta:
        ordering = ["-raised_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["check_run", "deployment"], name="one_alert_per_run_and_deployment"),
            models.UniqueConstraint(
                fields=["monitor", "key"], condition=Q(kind="no_data"), name="one_no_data_alert_per_silence"
            ),
        ]

    def __str__(self):
        return f"alert {self.pk}: {self.message[:60]}"

    @property
    def audit_label(self) -> str:
        return f"{self.model_version.audit_label}/alert:{self.pk}"


class DataPolicy(models.Model):
    """A project's rules for raw data (batches, their labels, reference data), which may hold personal data:
    who may download it and how many days it is kept (None: kept). Admins change it, audited."""

    project = models.OneToOneField("governance.Project", on_delete=models.PROTECT, related_name="data_policy")
    batch_retention_days = models.PositiveIntegerField(null=True, blank=True, default=90)
    reference_retention_days = models.PositiveIntegerField(null=True, blank=True, default=None)
    download_roles = models.JSONField(default=list, blank=True)
    updated_by = models.ForeignKey("governance.User", on_delete=models.PROTECT, null=True, related_name="+")
    updated_at = models.DateTimeField(default=timezone.now)

    DEFAULT_DOWNLOAD_ROLES = ("ml_engineer",)

    class Meta:
        verbose_name_plural = "data policies"

    def __str__(self):
        return f"data policy of {self.project_id}"

    @property
    def audit_label(self) -> str:
        return "data-policy"


class DatasetVersionPurge(models.Model):
    """The stored file of a reference dataset version was deleted under the project's retention. The version
    (its hash, schema, datasheet) stays; workers no longer read it and its download answers 410."""

    dataset_version = models.OneToOneField("governance.DatasetVersion", on_delete=models.PROTECT, related_name="purge")
    project = models.ForeignKey("governance.Project", on_delete=models.PROTECT, related_name="+")
    storage_path = models.CharField(max_length=1000)
    purged_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"purge of dataset version {self.dataset_version_id}"
