"""Monitoring's API serializers: monitors, batches, check runs and their reports, alerts, series and the data
policy as the API reads and writes them. They translate; the rules live in ``monitoring.services``."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from controlplane.api.serializers import CachedFieldsModelSerializer, Sha256Field, StrictSerializer
from governance.accounts.models import Role
from monitoring.models import (
    REFERENCE_KINDS,
    Alert,
    Batch,
    CheckRun,
    CheckState,
    DataPolicy,
    Monitor,
    MonitorKind,
    MonitorState,
    ReportState,
)
from monitoring.selectors import reference_link_hint, reference_missing, reference_of
from monitoring.services.batches import monitors_covering
from monitoring.vocabulary import WINDOW_BELOW_RELIABLE_SIZE


def _url(project, path: str) -> str:
    return f"/api/v1/projects/{project.slug}/{path}"


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


class MonitorSerializer(CachedFieldsModelSerializer):
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


class RunSummarySerializer(CachedFieldsModelSerializer):
    monitor = serializers.CharField(source="monitor.name")

    class Meta:
        model = CheckRun
        fields = ["id", "monitor", "kind", "state", "verdict"]
        read_only_fields = fields


class BatchSerializer(CachedFieldsModelSerializer):
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
    sha256 = Sha256Field(required=False, help_text="If given, the upload must hash to it.")


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
    sha256 = Sha256Field(required=False, help_text="If given, the upload must hash to it.")


class BatchRegisterSerializer(_BatchTarget):
    """JSON: a Parquet file already under the project's storage prefix."""

    uri = serializers.CharField(max_length=2000, help_text="storage://projects/<project>/...")
    sha256 = Sha256Field(help_text="SHA-256 of the file's bytes.")


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


class CheckRunSerializer(CachedFieldsModelSerializer):
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


class AlertSerializer(CachedFieldsModelSerializer):
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


class DataPolicySerializer(CachedFieldsModelSerializer):
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


class AcknowledgeSerializer(StrictSerializer):
    comment = serializers.CharField(required=False, allow_blank=True, max_length=4000, default="")
