"""Lineage (DESIGN §4, Provenance): OpenLineage jobs and runs, the raw events as received, and the graph they
imply, kept as a node table and an edge table so one recursive query walks it by integer ids."""

from django.apps import apps
from django.db import models
from django.db.models import Q
from django.utils import timezone

from controlplane.labels import label_part


class LineageJob(models.Model):
    """An OpenLineage job, identified by (namespace, name) within a project. ``facets`` holds the latest
    value of each job facet reported (a facet sent with ``_deleted: true`` is removed)."""

    project = models.ForeignKey("Project", on_delete=models.PROTECT, related_name="lineage_jobs")
    namespace = models.CharField(max_length=255)
    name = models.CharField(max_length=255)
    facets = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["namespace", "name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "namespace", "name"], name="lineage_job_identity_in_project")
        ]

    def __str__(self):
        return f"{self.namespace}/{self.name}"


class LineageRun(models.Model):
    """One run of a job. ``agent`` is the principal whose key reported the run first (DESIGN §4: the agent
    separation of duties looks at). ``model_version`` is the version the run produced, and ``model_version_link``
    says how Tollgate knows: the ``tollgate_modelVersion`` run facet named it (``facet``), or an output dataset
    of the completed run is the version's artifact (``artifact``). A link, once made, stays."""

    class Link(models.TextChoices):
        FACET = "facet"
        ARTIFACT = "artifact"

    class State(models.TextChoices):
        START = "START"
        RUNNING = "RUNNING"
        COMPLETE = "COMPLETE"
        ABORT = "ABORT"
        FAIL = "FAIL"
        OTHER = "OTHER"

    project = models.ForeignKey("Project", on_delete=models.PROTECT, related_name="lineage_runs")
    job = models.ForeignKey(LineageJob, on_delete=models.PROTECT, related_name="runs")
    run_id = models.UUIDField()
    state = models.CharField(max_length=16, choices=State.choices, blank=True)
    agent = models.ForeignKey("User", on_delete=models.PROTECT, related_name="+")
    parent_run_id = models.UUIDField(null=True, blank=True)
    facets = models.JSONField(default=dict, blank=True)
    model_version = models.ForeignKey(
        "ModelVersion", on_delete=models.PROTECT, null=True, blank=True, related_name="lineage_runs"
    )
    model_version_link = models.CharField(max_length=16, choices=Link.choices, blank=True, default="")
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    last_event_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "run_id"], name="lineage_run_id_in_project"),
            models.CheckConstraint(
                condition=models.Q(model_version__isnull=True, model_version_link="")
                | (models.Q(model_version__isnull=False) & ~models.Q(model_version_link="")),
                name="lineage_run_link_says_how",
            ),
        ]
        indexes = [models.Index(fields=["job", "-created_at"], name="lineage_run_job_idx")]

    def __str__(self):
        return str(self.run_id)

    @property
    def audit_label(self) -> str:
        """Under its model version once linked to one."""
        run = f"lineage-run:{self.run_id}"
        return f"{self.model_version.audit_label}/{run}" if self.model_version_id else run


class LineageRunDataset(models.Model):
    """A dataset a run read (``input``) or wrote (``output``), with the version when the event named one and
    the dataset, input and output facets as last reported for this run."""

    class Direction(models.TextChoices):
        INPUT = "input"
        OUTPUT = "output"

    run = models.ForeignKey(LineageRun, on_delete=models.PROTECT, related_name="datasets")
    dataset = models.ForeignKey("Dataset", on_delete=models.PROTECT, related_name="lineage_runs")
    dataset_version = models.ForeignKey(
        "DatasetVersion", on_delete=models.PROTECT, null=True, blank=True, related_name="lineage_runs"
    )
    direction = models.CharField(max_length=8, choices=Direction.choices)
    facets = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["run_id", "direction", "id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "dataset", "direction"], name="lineage_run_dataset_unique")
        ]
        indexes = [models.Index(fields=["dataset", "direction"], name="lineage_run_dataset_idx")]

    def __str__(self):
        return f"{self.run_id} {self.direction} {self.dataset_id}"


class LineageEvent(models.Model):
    """A RunEvent exactly as received (the text of its bytes) with their SHA-256. Append-only: the same
    event twice is stored once, and a run has one event per (eventType, eventTime)."""

    project = models.ForeignKey("Project", on_delete=models.PROTECT, related_name="lineage_events")
    sha256 = models.CharField(max_length=64)
    body = models.TextField()
    event_type = models.CharField(max_length=16, blank=True)
    event_time = models.DateTimeField()
    run_id = models.UUIDField()
    received_by = models.ForeignKey("User", on_delete=models.PROTECT, related_name="+")
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["received_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "sha256"], name="lineage_event_once_per_project"),
            models.UniqueConstraint(
                fields=["project", "run_id", "event_type", "event_time"], name="lineage_event_identity"
            ),
        ]
        indexes = [models.Index(fields=["project", "run_id"], name="lineage_event_run_idx")]

    def __str__(self):
        return f"{self.event_type or 'event'} {self.run_id}"


class LineageNode(models.Model):
    """A node of the lineage graph. ``key`` is the public node id: ``dataset:{namespace}:{name}``,
    ``job:{namespace}:{name}`` or ``model:{name}:{version}``."""

    class Kind(models.TextChoices):
        DATASET = "dataset"
        JOB = "job"
        MODEL_VERSION = "model_version"

    project = models.ForeignKey("Project", on_delete=models.PROTECT, related_name="lineage_nodes")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    key = models.CharField(max_length=600)
    dataset = models.ForeignKey("Dataset", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    job = models.ForeignKey(LineageJob, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    model_version = models.ForeignKey("ModelVersion", on_delete=models.PROTECT, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["key", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "key"], name="lineage_node_key_in_project"),
            models.CheckConstraint(
                condition=(
                    models.Q(kind="dataset", dataset__isnull=False, job__isnull=True, model_version__isnull=True)
                    | models.Q(kind="job", job__isnull=False, dataset__isnull=True, model_version__isnull=True)
                    | models.Q(
                        kind="model_version", model_version__isnull=False, dataset__isnull=True, job__isnull=True
                    )
                ),
                name="lineage_node_points_at_its_kind",
            ),
        ]
        indexes = [models.Index(fields=["key"], name="lineage_node_key_idx")]

    def __str__(self):
        return self.key


class LineageGraphEdge(models.Model):
    """``src`` feeds ``dst``: dataset → job (input), job → dataset (output), job → model version (the run's
    model version link), dataset → model version (a registry link)."""

    project = models.ForeignKey("Project", on_delete=models.PROTECT, related_name="+")
    src = models.ForeignKey(LineageNode, on_delete=models.PROTECT, related_name="out_edges")
    dst = models.ForeignKey(LineageNode, on_delete=models.PROTECT, related_name="in_edges")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["src_id", "dst_id"]
        constraints = [models.UniqueConstraint(fields=["src", "dst"], name="lineage_edge_unique")]
        # The unique constraint's index serves walks downstream (by src); this one serves walks upstream.
        indexes = [models.Index(fields=["dst", "src"], name="lineage_edge_dst_idx")]

    def __str__(self):
        return f"{self.src_id} -> {self.dst_id}"


class Classification(models.TextChoices):
    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    RESTRICTED = "restricted"


class Dataset(models.Model):
    """Identified like an OpenLineage dataset: (namespace, name) within a project."""

    project = models.ForeignKey("Project", on_delete=models.PROTECT, related_name="datasets")
    namespace = models.CharField(max_length=255)
    name = models.CharField(max_length=255)
    owner = models.ForeignKey("User", on_delete=models.PROTECT, null=True, related_name="+")
    description = models.TextField(blank=True)
    license = models.CharField(max_length=200, blank=True)
    classification = models.CharField(max_length=16, choices=Classification.choices, blank=True)
    contains_pii = models.BooleanField(default=False)
    pii_justification = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["namespace", "name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "namespace", "name"], name="dataset_identity_in_project")
        ]

    def __str__(self):
        return f"{self.namespace}/{self.name}"

    @property
    def audit_label(self) -> str:
        return f"dataset:{label_part(self.name)}"


class DatasetVersion(models.Model):
    """Immutable once registered. ``uploaded``: stored as Parquet under the project's prefix; ``uri``:
    registered by reference with its hash; ``observed``: seen only through OpenLineage, with no hash."""

    class Kind(models.TextChoices):
        UPLOADED = "uploaded"
        URI = "uri"
        OBSERVED = "observed"

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="versions")
    version = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    uri = models.CharField(max_length=2000, blank=True)
    storage_path = models.CharField(max_length=1000, blank=True)
    sha256 = models.CharField(max_length=64, null=True, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    row_count = models.BigIntegerField(null=True, blank=True)
    schema = models.JSONField(default=list, blank=True)
    motivation = models.TextField(blank=True)
    composition = models.TextField(blank=True)
    collection_process = models.TextField(blank=True)
    known_biases = models.TextField(blank=True)
    created_by = models.ForeignKey("User", on_delete=models.PROTECT, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["dataset_id", "created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "version"], name="dataset_version_label_unique"),
            models.UniqueConstraint(
                fields=["dataset", "sha256"], condition=Q(sha256__isnull=False), name="dataset_version_hash_unique"
            ),
            models.CheckConstraint(
                condition=Q(kind="observed") | Q(sha256__isnull=False), name="registered_versions_have_a_hash"
            ),
        ]

    def __str__(self):
        return f"{self.dataset}@{self.version}"

    @property
    def owning_project_id(self) -> int:
        """The project the version belongs to, through its dataset (``require_in_project`` reads it)."""
        return self.dataset.project_id

    @property
    def audit_label(self) -> str:
        return f"{self.dataset.audit_label}/{label_part(self.version)}"

    @property
    def is_stored(self) -> bool:
        """Stored under the project's prefix, so workers may read it (uploaded, or a prefix URI)."""
        return bool(self.storage_path)


class DatasetRole(models.TextChoices):
    TRAINED_ON = "trained_on"
    VALIDATED_ON = "validated_on"
    TESTED_ON = "tested_on"
    REFERENCE = "reference"


class ModelVersionDataset(models.Model):
    """The lineage edge dataset version → model version, with the role the data played."""

    model_version = models.ForeignKey("ModelVersion", on_delete=models.PROTECT, related_name="dataset_links")
    dataset_version = models.ForeignKey(DatasetVersion, on_delete=models.PROTECT, related_name="model_links")
    role = models.CharField(max_length=16, choices=DatasetRole.choices)
    created_by = models.ForeignKey("User", on_delete=models.PROTECT, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["model_version_id", "role", "id"]
        constraints = [
            models.UniqueConstraint(fields=["model_version", "dataset_version", "role"], name="dataset_link_unique")
        ]

    def __str__(self):
        return f"{self.dataset_version_id} {self.role} {self.model_version_id}"


def model_versions():
    """The registry's model versions, by their model label: the registry sits above provenance (it cites data
    when it registers a version), so provenance reads versions without importing it."""
    return apps.get_model("governance", "ModelVersion").objects
