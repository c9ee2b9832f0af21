"""Monitoring under ``/api/v1/projects/{p}/``: monitors, batches, check runs (with their Evidently reports) and
alerts (DESIGN §4, §6, §8). Views translate: parse the query string (the filters here) and the body, call one
service or selector, shape the output; the rules live in ``monitoring.services``."""

from __future__ import annotations

import django_filters
from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import parsers, status
from rest_framework.response import Response

from controlplane.api.filters import BooleanFilter, IntegerFilter
from controlplane.exceptions import Conflict, Gone, NotFound
from governance.accounts.api.base import ProjectApiView
from governance.audit.middleware import access_log_mark
from governance.promotion.models import Deployment
from governance.provenance import selectors as provenance_selectors
from governance.provenance.models import DatasetVersion
from governance.provenance.storage import HashingUploadHandler
from governance.registry import selectors as registry_selectors
from monitoring import selectors
from monitoring.api.serializers import (
    AcknowledgeSerializer,
    AlertSerializer,
    BatchDetailSerializer,
    BatchRegisterSerializer,
    BatchSerializer,
    BatchUploadSerializer,
    CheckRunDetailSerializer,
    CheckRunRequestSerializer,
    CheckRunSerializer,
    DataPolicySerializer,
    DataPolicyUpdateSerializer,
    LabelsUploadSerializer,
    MonitorCreateSerializer,
    MonitorDetailSerializer,
    MonitorSerializer,
    MonitorUpdateSerializer,
    SeriesSerializer,
)
from monitoring.models import (
    Alert,
    Batch,
    CheckRun,
    CheckState,
    DataPolicy,
    Monitor,
    MonitorKind,
    ReportState,
)
from monitoring.services.alerts import alert_acknowledge
from monitoring.services.batches import batch_labels_upload, batch_register, batch_upload
from monitoring.services.monitors import monitor_create, monitor_update
from monitoring.services.retention import data_policy_of, data_policy_update, raw_data_download_allow
from monitoring.services.runs import check_run_request

# DESIGN §6: Evidently's HTML holds uploaded values and draws with inline scripts -- a sandbox, always.
REPORT_CSP = (
    "sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:; font-src data:"
)


class MonitorFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=MonitorKind.choices)
    model = django_filters.CharFilter(help_text="A model's name.")
    active = BooleanFilter()


class BatchFilter(django_filters.FilterSet):
    model = django_filters.CharFilter(help_text="A model's name.")
    version = IntegerFilter(field_name="model_version__version", help_text="The scoring version.")
    environment = django_filters.CharFilter(help_text="An environment's name (the deployment's traffic).")


class CheckRunFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=CheckState.choices)
    kind = django_filters.ChoiceFilter(choices=MonitorKind.choices)
    monitor = IntegerFilter(field_name="monitor_id", help_text="A monitor's id.")
    batch = IntegerFilter(field_name="batch_id", help_text="A batch's id.")
    model = django_filters.CharFilter(help_text="A model's name.")
    version = IntegerFilter(field_name="model_version__version", help_text="A model version.")


class SeriesFilter(django_filters.FilterSet):
    since = django_filters.IsoDateTimeFilter(help_text="Batches whose window ends at or after this.")
    until = django_filters.IsoDateTimeFilter(help_text="Batches whose window ends at or before this.")
    limit = IntegerFilter(min_value=1, max_value=5000, help_text="The newest batches kept (500).")


class AlertFilter(django_filters.FilterSet):
    acknowledged = BooleanFilter()
    model = django_filters.CharFilter(help_text="A model's name.")
    environment = django_filters.CharFilter(help_text="An environment's name (alerts of its deployment).")
    monitor = IntegerFilter(field_name="monitor_id", help_text="A monitor's id.")


class MonitoringView(ProjectApiView):
    def get_serializer_context(self):
        return {**super().get_serializer_context(), "project": self.project}

    def _model(self, name: str):
        return registry_selectors.model_get(principal=self.principal, project=self.project, name=name)

    def _target(self, data) -> tuple[Deployment | None, object | None]:
        model = self._model(data["model"])
        deployment = None
        if data.get("environment"):
            deployment = selectors.monitored_deployment(project=self.project, model=model,
                                                        environment=data["environment"])  # fmt: skip
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
        page = self.paginate_queryset(monitors)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(request=MonitorCreateSerializer, responses={201: MonitorDetailSerializer})
    def post(self, request, project):
        """Create a monitor (ML engineers and admins). Revision 1 holds its configuration."""
        data = self.validated(MonitorCreateSerializer)
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
        data = self.validated(MonitorUpdateSerializer)
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
        data = self.validated(BatchUploadSerializer if multipart else BatchRegisterSerializer)
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
        data = self.validated(CheckRunRequestSerializer)
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
        data = self.validated(AcknowledgeSerializer)
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
        data = self.validated(LabelsUploadSerializer)
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
        purged = selectors.dataset_version_purged(version)
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
        data = self.validated(DataPolicyUpdateSerializer)
        policy = data_policy_update(actor=self.principal, project=self.project, **data)
        return Response(self.get_serializer(policy).data)
