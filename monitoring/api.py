"""Monitoring under ``/api/v1/projects/{p}/``: monitors, batches, check runs (with their Evidently reports) and
alerts (DESIGN §4, §6, §8). Views translate; the rules live in ``monitoring.services``."""

from __future__ import annotations

import django_filters
from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import parsers, serializers, status
from rest_framework.response import Response

from controlplane.api.filters import BooleanFilter, IntegerFilter
from controlplane.api.serializers import StrictSerializer
from controlplane.exceptions import Conflict, DomainError, Gone, NotFound
from governance.accounts.api.base import ProjectApiView
from governance.accounts.models import Role
from governance.audit.middleware import access_log_mark
from governance.promotion.models import Deployment, Environment
from governance.provenance import selectors as provenance_selectors
from governance.provenance.models import DatasetVersion
from governance.provenance.storage import HashingUploadHandler
from governance.registry import selectors as registry_selectors

from . import selectors
from .models import (
    REFERENCE_KINDS,
    Alert,
    Batch,
    CheckRun,
    CheckState,
    DataPolicy,
    DatasetVersionPurge,
    Monitor,
    MonitorKind,
    MonitorState,
    ReportState,
)
from .selectors import reference_link_hint, reference_missing, reference_of
from .services.alerts import alert_acknowledge
from .services.batches import batch_labels_upload, batch_register, batch_upload, monitors_covering
from .services.monitors import monitor_create, monitor_update
from .services.retention import data_policy_of, data_policy_update, raw_data_download_allow
from .services.runs import check_run_request
from .vocabulary import WINDOW_BELOW_RELIABLE_SIZE

# DESIGN §6: Evidently's HTML holds uploaded values and draws with inline scripts -- a sandbox, always.
REPORT_CSP = (
    "sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:; font-src data:"
)
SHA256 = r"^[0-9a-fA-F]{64}$"


def _validated(serializer_class, data):
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _url(project, path: str) -> str:
    return f"/api/v1/projects/{project.slug}/{path}"


# Serializers ----------------------------------------------------------------------------------------------


class ReferenceSerializer(serializers.Serializer):
    dataset_version = serializers.IntegerField()
    url = serializers.CharField(help_text="The dataset version in the API.")


class LinkReferenceSerializer(serializers.Serializer):
    method = serializers.CharField()
    url = serializers.CharField()
    body = serializers.JSONField()


def _watched_version(monitor):
    return monitor.deployment.model_version if monitor.deployment_id else monitor.model_version


def _needs_reference(monitor) -> bool:
    """A kind that compares with reference data, and the watched version has none workers can read (annotated by
    ``selectors.monitor_list``: evaluated on read)."""
    return monitor.kind in REFERENCE_KINDS and monitor.reference_id is None


class MonitorSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name")
    environment = serializers.SerializerMethodField()
    version = serializers.SerializerMethodField()
    config = serializers.SerializerMethodField()
    created_by = serializers.CharField(source="created_by.username")
    state = serializers.SerializerMethodField()
    state_reason = serializers.SerializerMethodField()
    reference = serializers.SerializerMethodField()
    link_reference = serializers.SerializerMethodField()

    class Meta:
        model = Monitor
        fields = ["id", "name", "kind", "model", "environment", "version", "revision", "config", "active", "state",
                  "state_reason", "reference", "link_reference", "created_by", "created_at", "updated_at"]  # fmt: skip
        read_only_fields = fields

    def get_environment(self, monitor) -> str | None:
        return monitor.deployment.environment.name if monitor.deployment_id else None

    def get_version(self, monitor) -> int | None:
        """The watched version, or (for a deployment) the version it runs now."""
        return _watched_version(monitor).version

    @extend_schema_field(serializers.ChoiceField(choices=MonitorState.choices))
    def get_state(self, monitor) -> str:
        """active; needs_reference: a data_drift or data_quality monitor whose version has no reference data linked
        -- no run of it is queued until there is; paused."""
        if not monitor.active:
            return MonitorState.PAUSED
        return MonitorState.NEEDS_REFERENCE if _needs_reference(monitor) else MonitorState.ACTIVE

    def get_state_reason(self, monitor) -> str | None:
        """Why the monitor does not run, and what to do."""
        if not monitor.active:
            return 'paused: PATCH the monitor with {"active": true} to resume it'
        if _needs_reference(monitor):
            return reference_missing(_watched_version(monitor), monitor.kind, linked=monitor.reference_linked)
        return None

    @extend_schema_field(ReferenceSerializer(allow_null=True))
    def get_reference(self, monitor) -> dict | None:
        """The reference dataset version the monitor compares batches with (data_drift, data_quality)."""
        if monitor.kind not in REFERENCE_KINDS or monitor.reference_id is None:
            return None
        path = f"datasets/{monitor.reference_dataset_id}/versions/{monitor.reference_id}/"
        return {"dataset_version": monitor.reference_id, "url": _url(monitor.project, path)}

    @extend_schema_field(LinkReferenceSerializer(allow_null=True))
    def get_link_reference(self, monitor) -> dict | None:
        """needs_reference: the request that links reference data to the version."""
        return reference_link_hint(_watched_version(monitor)) if _needs_reference(monitor) else None

    def get_config(self, monitor) -> dict:
        revision = next((r for r in monitor.revisions.all() if r.revision == monitor.revision), None)
        return revision.config if revision else {}


class MonitorRevisionSerializer(serializers.Serializer):
    revision = serializers.IntegerField()
    config = serializers.JSONField()
    config_hash = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username")
    created_at = serializers.DateTimeField()


class MonitorDetailSerializer(MonitorSerializer):
    revisions = MonitorRevisionSerializer(many=True, read_only=True)

    class Meta(MonitorSerializer.Meta):
        fields = [*MonitorSerializer.Meta.fields, "revisions"]
        read_only_fields = fields


class MonitorCreateSerializer(StrictSerializer):
    name = serializers.SlugField(max_length=100)
    kind = serializers.ChoiceField(choices=MonitorKind.choices)
    model = serializers.CharField(max_length=200)
    environment = serializers.SlugField(required=False, help_text="Watch the deployment of the model there.")
    version = serializers.IntegerField(required=False, min_value=1, help_text="Or watch one version.")
    config = serializers.JSONField(
        required=False,
        default=dict,
        help_text="data_drift: columns, num_method, num_threshold, cat_method, cat_threshold, per_column "
        "{col: {method, threshold}}, fdr, drift_share, max_drifted_columns. data_quality: columns, max_missing_share, "
        "max_out_of_range_share, max_unseen_share, min_rows, max_rows, per_column {col: {range, ...}}. "
        "model_quality: task (classification|regression), target, prediction, pos_label, probas_threshold, "
        'thresholds {metric: {gte|gt|lte|lt: bound}}. Every kind: schedule {"every_minutes": N} or '
        '{"crontab": "m h dom mon dow"} (UTC), freshness_hours.',
    )

    def validate(self, data):
        if ("environment" in data) == ("version" in data):
            raise serializers.ValidationError({"environment": "Give an environment (a deployment) or a version."})
        return data


class MonitorUpdateSerializer(StrictSerializer):
    config = serializers.JSONField(required=False, help_text="A changed configuration is a new revision.")
    active = serializers.BooleanField(required=False)


class MonitorFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=MonitorKind.choices)
    model = django_filters.CharFilter(help_text="A model's name.")
    active = BooleanFilter()


class RunSummarySerializer(serializers.ModelSerializer):
    monitor = serializers.CharField(source="monitor.name")

    class Meta:
        model = CheckRun
        fields = ["id", "monitor", "kind", "state", "verdict"]
        read_only_fields = fields


class BatchSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model_version.model.name")
    version = serializers.IntegerField(source="model_version.version")
    environment = serializers.SerializerMethodField()
    created_by = serializers.CharField(source="created_by.username")

    class Meta:
        model = Batch
        fields = ["id", "model", "version", "environment", "kind", "uri", "sha256", "size_bytes", "row_count",
                  "schema", "window_start", "window_end", "revision", "created_by", "created_at", "purged_at",
                  "labels"]  # fmt: skip
        read_only_fields = fields

    labels = serializers.SerializerMethodField()

    def get_environment(self, batch) -> str | None:
        return batch.deployment.environment.name if batch.deployment_id else None

    def get_labels(self, batch) -> list[dict]:
        """The label revisions: revision, sha256, row_count, key, created_at."""
        return [
            {"revision": labels.revision, "sha256": labels.sha256, "row_count": labels.row_count,
             "key": labels.key or None, "created_at": labels.created_at}
            for labels in batch.labels.all()
        ]  # fmt: skip


class NotCheckedSerializer(serializers.Serializer):
    monitor = serializers.CharField()
    monitor_id = serializers.IntegerField()
    reason = serializers.ChoiceField(choices=[MonitorState.NEEDS_REFERENCE.value])
    message = serializers.CharField()
    link_reference = LinkReferenceSerializer()


class BatchDetailSerializer(BatchSerializer):
    runs = RunSummarySerializer(many=True, read_only=True)
    not_checked = serializers.SerializerMethodField()

    class Meta(BatchSerializer.Meta):
        fields = [*BatchSerializer.Meta.fields, "runs", "not_checked"]
        read_only_fields = fields

    @extend_schema_field(NotCheckedSerializer(many=True))
    def get_not_checked(self, batch) -> list[dict]:
        """Active monitors covering the batch that did not run on it because they need reference data."""
        if batch.purged_at is not None or reference_of(batch.model_version) is not None:
            return []
        waiting = monitors_covering(batch).filter(kind__in=REFERENCE_KINDS).exclude(runs__batch=batch)
        return [
            {"monitor": monitor.name, "monitor_id": monitor.pk, "reason": MonitorState.NEEDS_REFERENCE.value,
             "message": reference_missing(batch.model_version, monitor.kind),
             "link_reference": reference_link_hint(batch.model_version)}
            for monitor in waiting
        ]  # fmt: skip


class LabelsUploadSerializer(StrictSerializer):
    """multipart/form-data: labels for a batch as a Parquet or CSV ``file``."""

    file = serializers.FileField(help_text="Parquet, or CSV: the target column(s), and the key column if any.")
    key = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=200,
        help_text="A column of both the batch and the labels to join on; without it, the labels are the batch's "
        "rows in its order (same row count).",
    )  # fmt: skip
    sha256 = serializers.RegexField(SHA256, required=False, help_text="If given, the upload must hash to it.")


WINDOW_HELP = (
    "The time span the batch's rows come from (when they were scored): window_start and window_end both, or "
    "neither (the moment of the upload)."
)


class _BatchTarget(StrictSerializer):
    model = serializers.CharField(max_length=200)
    environment = serializers.SlugField(
        required=False,
        help_text="The deployment whose traffic this is. Before a version is deployed, give the version.",
    )
    version = serializers.IntegerField(required=False, min_value=1, help_text="The version that scored the data.")
    window_start = serializers.DateTimeField(required=False, help_text=WINDOW_HELP)
    window_end = serializers.DateTimeField(required=False, help_text=WINDOW_HELP)

    def validate(self, data):
        if "environment" not in data and "version" not in data:
            raise serializers.ValidationError({"version": "Give the environment (a deployment), the version, or both."})
        return data


class BatchUploadSerializer(_BatchTarget):
    """multipart/form-data: production data as a Parquet or CSV ``file``."""

    file = serializers.FileField(help_text="Parquet, or CSV (named .csv or sent as text/csv).")
    sha256 = serializers.RegexField(SHA256, required=False, help_text="If given, the upload must hash to it.")


class BatchRegisterSerializer(_BatchTarget):
    """JSON: a Parquet file already under the project's storage prefix."""

    uri = serializers.CharField(max_length=2000, help_text="storage://projects/<project>/...")
    sha256 = serializers.RegexField(SHA256, help_text="SHA-256 of the file's bytes.")


class BatchFilter(django_filters.FilterSet):
    model = django_filters.CharFilter(help_text="A model's name.")
    version = IntegerFilter(field_name="model_version__version", help_text="The scoring version.")
    environment = django_filters.CharFilter(help_text="An environment's name (the deployment's traffic).")


class RunWarningSerializer(serializers.Serializer):
    """A structured warning about the run's verdict; its message is worded to become the reason of an
    ``inconclusive`` verdict later."""

    code = serializers.ChoiceField(choices=[WINDOW_BELOW_RELIABLE_SIZE])
    message = serializers.CharField()
    columns = serializers.ListField(child=serializers.CharField(), required=False)
    methods = serializers.ListField(child=serializers.CharField(), required=False)
    rows = serializers.IntegerField(required=False, help_text="The window's rows.")
    reference_rows = serializers.IntegerField(required=False)
    effective_rows = serializers.IntegerField(required=False, help_text="n*m/(n+m): what sampling noise depends on.")
    reliable_rows = serializers.IntegerField(required=False, help_text="The effective rows the methods need.")
    suitable_methods = serializers.DictField(
        child=serializers.CharField(), required=False, help_text="Methods that suit small windows, per column kind."
    )


class ReportSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=ReportState.choices)
    html = serializers.CharField(allow_null=True)
    json = serializers.CharField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    sampled = serializers.BooleanField(help_text="The report was built on a sample of one side or both.")
    sample_rows = serializers.IntegerField(allow_null=True, help_text="Rows drawn from each side in samples.")
    samples = serializers.DictField(
        help_text='Only the sides that were sampled: {"reference": {"rows": 100000, "of": 1000000}}. The verdict '
        "and per-column results used every row."
    )


class CheckRunSerializer(serializers.ModelSerializer):
    monitor = serializers.CharField(source="monitor.name")
    monitor_id = serializers.IntegerField()
    revision = serializers.IntegerField(source="monitor_revision.revision")
    model = serializers.CharField(source="model_version.model.name")
    version = serializers.IntegerField(source="model_version.version")
    report = serializers.SerializerMethodField()
    warnings = RunWarningSerializer(many=True, read_only=True)

    class Meta:
        model = CheckRun
        fields = ["id", "monitor", "monitor_id", "revision", "kind", "batch", "batch_revision", "model", "version",
                  "state", "attempts", "verdict", "warnings", "error", "created_at", "queued_at", "claimed_at",
                  "claimed_by", "finished_at", "duration_seconds", "report"]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(ReportSerializer)
    def get_report(self, run) -> dict:
        base = _url(self.context.get("project") or run.project, f"check-runs/{run.pk}/")
        ready = run.report_state == ReportState.READY
        samples = run.report_samples or {}
        return {
            "state": run.report_state,
            "html": f"{base}report.html" if ready else None,
            "json": f"{base}report.json" if ready else None,
            "error": run.report_error,
            "sampled": bool(samples),
            "sample_rows": max((side["rows"] for side in samples.values()), default=None),
            "samples": samples,
        }


class ColumnResultSerializer(serializers.Serializer):
    column = serializers.CharField(help_text="model_quality: the metric's name.")
    method = serializers.CharField()
    score = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True, default=None)
    threshold = serializers.FloatField(allow_null=True)
    drifted = serializers.BooleanField(help_text="data_quality, model_quality: the measure is out of bounds.")
    adjusted_p_value = serializers.FloatField(
        allow_null=True, default=None, help_text="data_drift: Benjamini-Hochberg adjusted, when the verdict corrects."
    )
    flagged = serializers.BooleanField(
        default=None, allow_null=True, help_text="data_drift: counts towards the verdict (after the correction)."
    )
    condition = serializers.CharField(default=None, allow_null=True, help_text="model_quality: gte, gt, lte or lt.")
    kind = serializers.CharField(default=None, allow_null=True, help_text="data_drift: numerical or categorical.")
    reference_rows = serializers.IntegerField(default=None, allow_null=True)
    current_rows = serializers.IntegerField(default=None, allow_null=True)
    reliable_rows = serializers.IntegerField(
        default=None, allow_null=True,
        help_text="data_drift: the effective sample (n*m/(n+m) of current and reference rows) from which the method "
        "tells drift of the threshold's size from sampling noise; below it the run warns.",
    )  # fmt: skip


class CheckRunDetailSerializer(CheckRunSerializer):
    results = ColumnResultSerializer(many=True, read_only=True)
    config = serializers.JSONField(source="monitor_revision.config")

    class Meta(CheckRunSerializer.Meta):
        fields = [*CheckRunSerializer.Meta.fields, "config", "results"]
        read_only_fields = fields


class CheckRunRequestSerializer(StrictSerializer):
    monitor = serializers.IntegerField()
    batch = serializers.IntegerField(required=False, help_text="Default: the latest batch the monitor covers.")


class CheckRunFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=CheckState.choices)
    kind = django_filters.ChoiceFilter(choices=MonitorKind.choices)
    monitor = IntegerFilter(field_name="monitor_id", help_text="A monitor's id.")
    batch = IntegerFilter(field_name="batch_id", help_text="A batch's id.")
    model = django_filters.CharFilter(help_text="A model's name.")
    version = IntegerFilter(field_name="model_version__version", help_text="A model version.")


class AlertSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model_version.model.name")
    environment = serializers.CharField(source="deployment.environment.name", default=None)
    version = serializers.IntegerField(source="model_version.version")
    acknowledged_by = serializers.CharField(source="acknowledged_by.username", default=None)

    class Meta:
        model = Alert
        fields = ["id", "kind", "message", "check_run", "monitor", "model", "environment", "version", "suspended",
                  "raised_at", "acknowledged_by", "acknowledged_at", "acknowledgement"]  # fmt: skip
        read_only_fields = fields


class SeriesBatchSerializer(serializers.Serializer):
    batch = serializers.IntegerField()
    window_start = serializers.DateTimeField()
    window_end = serializers.DateTimeField()
    revision = serializers.IntegerField(help_text="The batch revision the run checked.")
    check_run = serializers.IntegerField()
    state = serializers.ChoiceField(choices=CheckState.choices)


class SeriesSerializer(serializers.Serializer):
    monitor = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=MonitorKind.choices)
    batches = SeriesBatchSerializer(many=True)
    columns = serializers.DictField(
        child=serializers.ListField(child=serializers.FloatField(allow_null=True)),
        help_text="data_drift: each column's drift score per batch, aligned with batches (null: not checked).",
    )
    metrics = serializers.DictField(
        child=serializers.ListField(child=serializers.FloatField(allow_null=True)),
        help_text="data_quality (column.measure) and model_quality (metric) values per batch.",
    )


class SeriesFilter(django_filters.FilterSet):
    since = django_filters.IsoDateTimeFilter(help_text="Batches whose window ends at or after this.")
    until = django_filters.IsoDateTimeFilter(help_text="Batches whose window ends at or before this.")
    limit = IntegerFilter(min_value=1, max_value=5000, help_text="The newest batches kept (500).")


class DataPolicySerializer(serializers.ModelSerializer):
    updated_by = serializers.CharField(source="updated_by.username", default=None)

    class Meta:
        model = DataPolicy
        fields = ["batch_retention_days", "reference_retention_days", "download_roles", "updated_by", "updated_at"]
        read_only_fields = fields


class DataPolicyUpdateSerializer(StrictSerializer):
    batch_retention_days = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=36500,
        help_text="Days a batch's raw file (and its labels and reports) is kept; null: kept.",
    )  # fmt: skip
    reference_retention_days = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=36500,
        help_text="Days a reference dataset version's file is kept; null: kept (checks need it).",
    )  # fmt: skip
    download_roles = serializers.ListField(
        child=serializers.ChoiceField(choices=Role.choices), required=False, max_length=10,
        help_text="Roles that may download raw batches and dataset files; empty: nobody.",
    )  # fmt: skip


class AlertFilter(django_filters.FilterSet):
    acknowledged = BooleanFilter()
    model = django_filters.CharFilter(help_text="A model's name.")
    environment = django_filters.CharFilter(help_text="An environment's name (alerts of its deployment).")
    monitor = IntegerFilter(field_name="monitor_id", help_text="A monitor's id.")


class AcknowledgeSerializer(StrictSerializer):
    comment = serializers.CharField(required=False, allow_blank=True, max_length=4000, default="")


# Views ----------------------------------------------------------------------------------------------------


class MonitoringView(ProjectApiView):
    def get_serializer_context(self):
        return {**super().get_serializer_context(), "project": self.project}

    def _model(self, name: str):
        return registry_selectors.model_get(principal=self.principal, project=self.project, name=name)

    def _deployment(self, model, environment_name: str) -> Deployment:
        environment = Environment.objects.filter(project=self.project, name=environment_name).first()
        if environment is None:
            raise DomainError(f"No environment '{environment_name}' in this project.",
                              details=[{"field": "environment"}])  # fmt: skip
        deployment = (
            Deployment.objects.filter(model=model, environment=environment)
            .select_related("model", "environment", "model_version__model")
            .first()
        )
        if deployment is None:
            latest = model.versions.order_by("-version").values_list("version", flat=True).first()
            example = f'"version": {latest}' if latest else '"version": <n>'
            raise Conflict(
                f"Nothing of '{model.name}' is deployed in {environment_name} yet. To check a version before it is "
                f"deployed, give the version instead of the environment ({example}): a version's monitors and "
                "batches are checked the same way, and its check gate reads their runs when it is promoted.",
                code="not_deployed",
                details=[{"field": "environment", "environment": environment_name,
                          "hint": {"model": model.name, "version": latest}}],
            )  # fmt: skip
        return deployment

    def _target(self, data) -> tuple[Deployment | None, object | None]:
        model = self._model(data["model"])
        deployment = self._deployment(model, data["environment"]) if data.get("environment") else None
        version = None
        if data.get("version"):
            version = registry_selectors.model_version_get(principal=self.principal, model=model,
                                                             version=data["version"])  # fmt: skip
        return deployment, version


class MonitorListView(MonitoringView):
    """A project's monitors: data drift and data quality of a deployment or of one version."""

    serializer_class = MonitorSerializer
    queryset = Monitor.objects.none()
    filterset_class = MonitorFilter

    @extend_schema(responses={200: MonitorSerializer(many=True)})
    def get(self, request, project):
        monitors = selectors.monitor_list(principal=self.principal, project=self.project, filters=self.filters)
        page = self.paginate_queryset(monitors.prefetch_related("revisions"))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(request=MonitorCreateSerializer, responses={201: MonitorDetailSerializer})
    def post(self, request, project):
        """Create a monitor (ML engineers and admins). Revision 1 holds its configuration."""
        data = _validated(MonitorCreateSerializer, request.data)
        deployment, version = self._target(data)
        monitor = monitor_create(
            actor=self.principal, project=self.project, name=data["name"], kind=data["kind"], config=data["config"],
            deployment=deployment, model_version=version,
        )  # fmt: skip
        monitor = selectors.monitor_get(principal=self.principal, project=self.project, monitor_id=monitor.pk)
        return Response(MonitorDetailSerializer(monitor, context=self.get_serializer_context()).data,
                        status=status.HTTP_201_CREATED)  # fmt: skip


class MonitorDetailView(MonitoringView):
    serializer_class = MonitorDetailSerializer
    queryset = Monitor.objects.none()

    def _get(self, pk):
        return selectors.monitor_get(principal=self.principal, project=self.project, monitor_id=pk)

    def get(self, request, project, pk):
        return Response(self.get_serializer(self._get(pk)).data)

    @extend_schema(request=MonitorUpdateSerializer, responses={200: MonitorDetailSerializer})
    def patch(self, request, project, pk):
        """Change the configuration (a new revision; runs keep theirs) or pause/resume the monitor."""
        data = _validated(MonitorUpdateSerializer, request.data)
        monitor_update(actor=self.principal, monitor=self._get(pk), config=data.get("config"),
                       active=data.get("active"))  # fmt: skip
        return Response(self.get_serializer(self._get(pk)).data)


class BatchUploadHandler(HashingUploadHandler):
    """Streams a batch to a temporary file, hashed on the way, up to ``TOLLGATE_MAX_BATCH_BYTES``."""

    def __init__(self, request=None):
        super().__init__(request)
        self.limit = settings.TOLLGATE_MAX_BATCH_BYTES


class BatchListView(MonitoringView):
    """Production data, scored by one model version: uploaded (multipart, CSV or Parquet) or registered by a
    storage:// URI under the project's prefix (JSON). Each active monitor covering it queues a check run."""

    serializer_class = BatchSerializer
    queryset = Batch.objects.none()
    parser_classes = [parsers.JSONParser, parsers.MultiPartParser]
    filterset_class = BatchFilter

    def initialize_request(self, request, *args, **kwargs):
        request.upload_handlers = [BatchUploadHandler(request)]  # never into memory
        return super().initialize_request(request, *args, **kwargs)

    @extend_schema(responses={200: BatchSerializer(many=True)})
    def get(self, request, project):
        batches = selectors.batch_list(principal=self.principal, project=self.project, filters=self.filters)
        page = self.paginate_queryset(batches)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        request={"multipart/form-data": BatchUploadSerializer, "application/json": BatchRegisterSerializer},
        responses={201: BatchDetailSerializer, 200: BatchDetailSerializer},
    )
    def post(self, request, project):
        """Upload or register a batch. The same bytes for the same version again answer 200 with the existing
        batch; columns that miss the version's signature answer 400 naming them."""
        multipart = request.content_type.startswith("multipart/form-data")
        data = _validated(BatchUploadSerializer if multipart else BatchRegisterSerializer, request.data)
        deployment, version = self._target(data)
        common = {"actor": self.principal, "project": self.project, "deployment": deployment,
                  "model_version": version, "window_start": data.get("window_start"),
                  "window_end": data.get("window_end")}  # fmt: skip
        if multipart:
            result = batch_upload(file=data["file"], sha256=data.get("sha256"), **common)
        else:
            result = batch_register(uri=data["uri"], sha256=data["sha256"], **common)
        batch = selectors.batch_get(principal=self.principal, project=self.project, batch_id=result.batch.pk)
        return Response(
            BatchDetailSerializer(batch, context=self.get_serializer_context()).data,
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )


class BatchDetailView(MonitoringView):
    serializer_class = BatchDetailSerializer
    queryset = Batch.objects.none()

    def get(self, request, project, pk):
        batch = selectors.batch_get(principal=self.principal, project=self.project, batch_id=pk)
        return Response(self.get_serializer(batch).data)


class CheckRunListView(MonitoringView):
    """Check runs, newest first; POST is "run now"."""

    serializer_class = CheckRunSerializer
    error_statuses = {"post": {410: "The batch's data was deleted under the project's retention (`purged`)."}}
    queryset = CheckRun.objects.none()
    filterset_class = CheckRunFilter

    @extend_schema(responses={200: CheckRunSerializer(many=True)})
    def get(self, request, project):
        runs = selectors.check_run_list(principal=self.principal, project=self.project, filters=self.filters)
        page = self.paginate_queryset(runs)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(request=CheckRunRequestSerializer, responses={201: CheckRunDetailSerializer,
                                                                 200: CheckRunDetailSerializer})  # fmt: skip
    def post(self, request, project):
        """Run a monitor now on a batch (default: its latest). The run of the same configuration, batch and batch
        revision is returned as it is (200); a new one is queued (201)."""
        data = _validated(CheckRunRequestSerializer, request.data)
        monitor = selectors.monitor_get(principal=self.principal, project=self.project, monitor_id=data["monitor"])
        batch = None
        if data.get("batch"):
            batch = selectors.batch_get(principal=self.principal, project=self.project, batch_id=data["batch"])
        run, created = check_run_request(actor=self.principal, monitor=monitor, batch=batch)
        run = selectors.check_run_get(principal=self.principal, project=self.project, run_id=run.pk)
        return Response(CheckRunDetailSerializer(run, context=self.get_serializer_context()).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)  # fmt: skip


class CheckRunDetailView(MonitoringView):
    """A run: state, attempts, timings, error, per-column results, verdict and where its report is."""

    serializer_class = CheckRunDetailSerializer
    queryset = CheckRun.objects.none()

    def get(self, request, project, pk):
        run = selectors.check_run_get(principal=self.principal, project=self.project, run_id=pk)
        return Response(self.get_serializer(run).data)


class CheckRunReportView(MonitoringView):
    """The Evidently report of a run, as a file of its own, in a sandbox (DESIGN §6); 409 until it is ready."""

    queryset = CheckRun.objects.none()
    content_type = ""
    path_field = ""
    error_statuses = {409: "The report is not ready yet (`report_not_ready`): its state is in the details."}

    def perform_content_negotiation(self, request, force=False):
        return super().perform_content_negotiation(request, force=True)  # errors are JSON whatever is accepted

    @extend_schema(responses={(200, "text/html"): OpenApiTypes.STR, (200, "application/json"): OpenApiTypes.OBJECT})
    def get(self, request, project, pk):
        run = selectors.check_run_get(principal=self.principal, project=self.project, run_id=pk)
        if run.report_state != ReportState.READY:
            raise Conflict(f"The report of this run is {run.report_state}.", code="report_not_ready",
                           details=[{"report_state": run.report_state, "error": run.report_error}])  # fmt: skip
        path = getattr(run, self.path_field)
        if not default_storage.exists(path):
            raise NotFound("The report file is gone from the storage.")
        response = FileResponse(default_storage.open(path, "rb"), content_type=self.content_type)
        response["Content-Security-Policy"] = REPORT_CSP
        response["X-Content-Type-Options"] = "nosniff"
        response["Cache-Control"] = "private, no-store"
        response["Content-Disposition"] = f'inline; filename="check-run-{run.pk}.{self.path_field.split("_")[1]}"'
        return response


class CheckRunReportHtmlView(CheckRunReportView):
    content_type = "text/html; charset=utf-8"
    path_field = "report_html_path"


class CheckRunReportJsonView(CheckRunReportView):
    content_type = "application/json"
    path_field = "report_json_path"


class AlertListView(MonitoringView):
    """Alerts: checks of deployed versions that did not pass, and monitors whose data stopped arriving (no_data)."""

    serializer_class = AlertSerializer
    queryset = Alert.objects.none()
    filterset_class = AlertFilter

    @extend_schema(responses={200: AlertSerializer(many=True)})
    def get(self, request, project):
        alerts = selectors.alert_list(principal=self.principal, project=self.project, filters=self.filters)
        page = self.paginate_queryset(alerts)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class AlertAcknowledgeView(MonitoringView):
    serializer_class = AlertSerializer
    queryset = Alert.objects.none()

    @extend_schema(request=AcknowledgeSerializer, responses={200: AlertSerializer})
    def post(self, request, project, pk):
        """Acknowledge an alert (ML engineers, governance officers, admins), once."""
        data = _validated(AcknowledgeSerializer, request.data)
        alert = selectors.alert_get(principal=self.principal, project=self.project, alert_id=pk)
        alert_acknowledge(actor=self.principal, alert=alert, comment=data["comment"])
        alert = selectors.alert_get(principal=self.principal, project=self.project, alert_id=pk)
        return Response(self.get_serializer(alert).data)


class MonitorSeriesView(MonitoringView):
    """Per-column drift scores and quality metrics of a monitor, per batch over time, ready for charts."""

    serializer_class = SeriesSerializer
    queryset = Monitor.objects.none()
    filterset_class = SeriesFilter
    pagination_class = None

    @extend_schema(responses={200: SeriesSerializer})
    def get(self, request, project, pk):
        filters = self.filters
        monitor = selectors.monitor_get(principal=self.principal, project=self.project, monitor_id=pk)
        series = selectors.monitor_series(monitor=monitor, since=filters.get("since"), until=filters.get("until"),
                                          limit=int(filters.get("limit", 500)))  # fmt: skip
        return Response(SeriesSerializer(series).data)


class BatchLabelsView(MonitoringView):
    """Labels that arrived later for a batch: a new batch revision that re-runs only model_quality monitors."""

    serializer_class = BatchDetailSerializer
    queryset = Batch.objects.none()
    parser_classes = [parsers.MultiPartParser]
    error_statuses = {410: "The batch's data was deleted under the project's retention (`purged`)."}

    def initialize_request(self, request, *args, **kwargs):
        request.upload_handlers = [BatchUploadHandler(request)]
        return super().initialize_request(request, *args, **kwargs)

    @extend_schema(request={"multipart/form-data": LabelsUploadSerializer},
                   responses={201: BatchDetailSerializer, 200: BatchDetailSerializer})  # fmt: skip
    def post(self, request, project, pk):
        """Upload labels (ML engineers, admins). The same labels again answer 200; 410 once the batch's data
        was deleted under the project's retention."""
        data = _validated(LabelsUploadSerializer, request.data)
        batch = selectors.batch_get(principal=self.principal, project=self.project, batch_id=pk)
        result = batch_labels_upload(actor=self.principal, batch=batch, file=data["file"], key=data["key"],
                                     sha256=data.get("sha256"))  # fmt: skip
        batch = selectors.batch_get(principal=self.principal, project=self.project, batch_id=pk)
        return Response(self.get_serializer(batch).data,
                        status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)  # fmt: skip


class RawDownloadView(MonitoringView):
    """A raw file, streamed, for the roles the project's data policy names; 410 after its retention."""

    queryset = Batch.objects.none()
    error_statuses = {410: "The file was deleted under the project's retention (`purged`)."}

    def perform_content_negotiation(self, request, force=False):
        return super().perform_content_negotiation(request, force=True)

    def _stream(self, request, *, storage_path: str, purged: bool, filename: str, what: str):
        raw_data_download_allow(actor=self.principal, project=self.project)
        if purged:
            raise Gone(f"The {what}'s data was deleted under the project's retention.", code="purged")
        if not storage_path or not default_storage.exists(storage_path):
            raise NotFound(f"The {what}'s file is not in the storage.")
        access_log_mark(getattr(request, "_request", request), f"download {what}")  # the Django request is logged
        response = FileResponse(default_storage.open(storage_path, "rb"), as_attachment=True, filename=filename,
                                content_type="application/vnd.apache.parquet")  # fmt: skip
        response["Cache-Control"] = "private, no-store"
        response["X-Content-Type-Options"] = "nosniff"
        return response


class BatchDownloadView(RawDownloadView):
    @extend_schema(responses={(200, "application/vnd.apache.parquet"): OpenApiTypes.BINARY})
    def get(self, request, project, pk):
        """The batch as stored (Parquet). In the access log."""
        batch = selectors.batch_get(principal=self.principal, project=self.project, batch_id=pk)
        return self._stream(request, storage_path=batch.storage_path, purged=batch.purged_at is not None,
                            filename=f"batch-{batch.pk}.parquet", what="batch")  # fmt: skip


class DatasetVersionDownloadView(RawDownloadView):
    queryset = DatasetVersion.objects.none()

    @extend_schema(responses={(200, "application/vnd.apache.parquet"): OpenApiTypes.BINARY})
    def get(self, request, project, pk, version_id):
        """A stored dataset version's file (e.g. reference data), as Parquet. In the access log."""
        dataset = provenance_selectors.dataset_get(principal=self.principal, project=self.project, dataset_id=pk)
        version = provenance_selectors.dataset_version_get(principal=self.principal, dataset=dataset,
                                                           version_id=version_id)  # fmt: skip
        purged = DatasetVersionPurge.objects.filter(dataset_version=version).exists()
        filename = f"dataset-{dataset.pk}-version-{version.pk}.parquet"
        return self._stream(request, storage_path=version.storage_path, purged=purged, filename=filename,
                            what="dataset version")  # fmt: skip


class DataPolicyView(MonitoringView):
    """The project's rules for raw data: retention, and who may download it. Members read; admins change."""

    serializer_class = DataPolicySerializer
    queryset = DataPolicy.objects.none()

    def get(self, request, project):
        return Response(self.get_serializer(data_policy_of(self.project)).data)

    @extend_schema(request=DataPolicyUpdateSerializer, responses={200: DataPolicySerializer})
    def patch(self, request, project):
        data = _validated(DataPolicyUpdateSerializer, request.data)
        policy = data_policy_update(actor=self.principal, project=self.project, **data)
        return Response(self.get_serializer(policy).data)
