"""The auditor's view (DESIGN §4, §8): a project's audit chain and access log, filtered, paginated by cursor,
and exported whole as CSV or JSON Lines, streamed row by row in constant memory.

Only the project's auditors and admins see them (other members get 403, audited as ``access.denied``;
outsiders 404). ``?format=csv`` / ``?format=jsonl`` or ``Accept: text/csv`` / ``application/x-ndjson`` asks
for the export; errors are JSON whatever was asked for.
"""

import csv
import json

import django_filters
from django import forms
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import renderers, status
from rest_framework.response import Response

from controlplane.api.pagination import CursorPagination
from governance.accounts.api.base import ProjectApiView
from governance.audit import selectors
from governance.audit.api.serializers import (
    AccessLogEntrySerializer,
    AuditEventDetailSerializer,
    AuditEventSerializer,
    AuditVerificationSerializer,
)
from governance.audit.models import AccessLogEntry, AuditEvent, AuditVerification
from governance.audit.services import audit_verification_start

EXPORT_CHUNK_ROWS = 2000  # rows fetched per round trip (a server-side cursor on PostgreSQL)
EXPORT_FLUSH_BYTES = 64 * 1024  # rows are encoded one by one and sent in blocks of about this size


# --- Filters (bad values are a 400 in the usual error shape) ---


@extend_schema_field(OpenApiTypes.INT)
class PositiveIntegerFilter(django_filters.Filter):
    field_class = forms.IntegerField


class DeploymentFilter(django_filters.CharFilter):
    field_class = forms.RegexField


class _AboutForm(forms.Form):
    """A version is a version of something: ``version`` alone (or ``dataset_version``) is a 400."""

    def clean(self):
        data = super().clean()
        for narrower, broader in (("version", "model"), ("dataset_version", "dataset")):
            if data.get(narrower) not in (None, "") and data.get(broader) in (None, ""):
                message = f"Give {broader} too: ?{broader}=<name>&{narrower}=<version>."
                self.add_error(narrower, forms.ValidationError(message, code="invalid"))
        return data


def _together(queryset, name, value):
    return queryset  # applied together by AboutFilterSet.filter_queryset


class AboutFilterSet(django_filters.FilterSet):
    """Filters by what people know (``about_filters``), handed together to the queryset's ``about()``."""

    about_filters: tuple[str, ...] = ()

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        data = self.form.cleaned_data
        about = {name: data[name] for name in self.about_filters if data.get(name) not in (None, "")}
        if "deployment" in about:
            about["deployment"] = tuple(about["deployment"].split("/"))
        return queryset.about(**about) if about else queryset


DEPLOYMENT = r"^[^/]+/[^/]+$"


class AuditEventFilter(AboutFilterSet):
    """``model``, ``version``, ``dataset``, ``dataset_version``, ``promotion_request`` and ``deployment`` match
    the target label (governance.audit.models), so they need no join; events written before labels existed
    have none and are found by ``target_type`` and ``target_id``."""

    actor = django_filters.CharFilter(field_name="actor_name", help_text="Username of the actor.")
    action = django_filters.CharFilter(field_name="action")
    target_type = django_filters.CharFilter(field_name="target_type")
    target_id = django_filters.CharFilter(field_name="target_id")
    target_label = django_filters.CharFilter(
        field_name="target_label", help_text="The exact label, e.g. `model:fraud-gbm/3`."
    )
    model = django_filters.CharFilter(
        method=_together,
        help_text="A model by name: events about it and everything under it -- its versions and their promotion "
        "requests, exceptions, batches, check runs, alerts, monitors and lineage runs, and its deployments "
        "(labels `model:<name>` and `model:<name>/...`).",
    )
    version = PositiveIntegerFilter(
        method=_together,
        min_value=1,
        help_text="With `model`: that version and everything under it (`model:<name>/<version>`, and below).",
    )
    dataset = django_filters.CharFilter(
        method=_together,
        help_text="A dataset by name, in any namespace: events about it and its versions (`dataset:<name>`).",
    )
    dataset_version = django_filters.CharFilter(
        method=_together, help_text="With `dataset`: one version, by label (`dataset:<name>/<version>`)."
    )
    promotion_request = PositiveIntegerFilter(
        method=_together,
        min_value=1,
        help_text="A promotion request by id: its request, reviews, gate evaluations, withdrawal or execution "
        "(`.../promotion-request:<id>`).",
    )
    deployment = DeploymentFilter(
        method=_together,
        regex=DEPLOYMENT,
        help_text="`<model>/<environment>`, as in `deployments/<model>/<environment>/`: its promotions, "
        "suspensions and resumptions, and its monitors (`model:<model>/deployment:<environment>`).",
    )
    since = django_filters.IsoDateTimeFilter(
        field_name="occurred_at", lookup_expr="gte", help_text="ISO 8601, inclusive."
    )
    until = django_filters.IsoDateTimeFilter(
        field_name="occurred_at", lookup_expr="lt", help_text="ISO 8601, exclusive."
    )
    about_filters = ("model", "version", "dataset", "dataset_version", "promotion_request", "deployment")

    class Meta:
        model = AuditEvent
        fields = []
        form = _AboutForm


class StatusFilter(django_filters.CharFilter):
    field_class = forms.RegexField


class AccessLogFilter(AboutFilterSet):
    """``model``, ``version``, ``promotion_request`` and ``deployment`` match the URL's parameters as recorded in
    ``object``: what a request named, not what it touched (a promotion request's URL names no model)."""

    principal = django_filters.CharFilter(method="filter_principal", help_text="Username; `-` for anonymous.")
    method = django_filters.CharFilter(method="filter_method")
    status = StatusFilter(method="filter_status", regex=r"^[1-5](\d\d|xx)$", help_text="`404`, or a class: `4xx`.")
    path = django_filters.CharFilter(field_name="path", lookup_expr="startswith", help_text="A path prefix.")
    model = django_filters.CharFilter(
        method=_together, help_text="Requests under `models/<model>/` or `deployments/<model>/`."
    )
    version = PositiveIntegerFilter(
        method=_together, min_value=1, help_text="With `model`: requests under `models/<model>/versions/<version>/`."
    )
    promotion_request = PositiveIntegerFilter(
        method=_together, min_value=1, help_text="Requests under `promotion-requests/<id>/`."
    )
    deployment = DeploymentFilter(
        method=_together,
        regex=DEPLOYMENT,
        help_text="`<model>/<environment>`: requests under `deployments/<model>/<environment>/`.",
    )
    since = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="gte", help_text="ISO 8601, inclusive.")
    until = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="lt", help_text="ISO 8601, exclusive.")
    about_filters = ("model", "version", "promotion_request", "deployment")

    class Meta:
        model = AccessLogEntry
        fields = []
        form = _AboutForm

    def filter_principal(self, queryset, name, value):
        return queryset.filter(principal_name="" if value == "-" else value)

    def filter_method(self, queryset, name, value):
        return queryset.filter(method=value.upper())

    def filter_status(self, queryset, name, value):
        if value.endswith("xx"):
            low = int(value[0]) * 100
            return queryset.filter(status__gte=low, status__lt=low + 100)
        return queryset.filter(status=int(value))


# --- Exports ---


class CSVExportRenderer(renderers.BaseRenderer):
    """Selects the CSV export in content negotiation; the view streams the body itself."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):  # pragma: no cover - never called
        raise NotImplementedError


class JSONLinesExportRenderer(CSVExportRenderer):
    media_type = "application/x-ndjson"
    format = "jsonl"


EXPORT_FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}


class _Echo:
    """A file-like object for csv.writer that hands back what it is given."""

    def write(self, value):
        return value


def _json_default(value):
    return value.isoformat()


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value):
    """Dates as ISO 8601, JSON as JSON, and text that a spreadsheet would run as a formula defused with a
    leading apostrophe (OWASP's advice for CSV injection); the JSONL export is never altered."""
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA_STARTS) else value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def export_lines(rows, columns: list[str], fmt: str):
    """Encode rows (tuples in ``columns`` order) one at a time, yielding blocks of about 64 KiB."""
    if fmt == "csv":
        writer = csv.writer(_Echo())
        encode_row = writer.writerow
        header = writer.writerow(columns)
    else:

        def encode_row(row):
            return json.dumps(dict(zip(columns, row, strict=True)), default=_json_default, ensure_ascii=False) + "\n"

        header = ""
    block, size = [header], len(header)
    for row in rows:
        line = encode_row([_csv_cell(v) for v in row] if fmt == "csv" else row)
        block.append(line)
        size += len(line)
        if size >= EXPORT_FLUSH_BYTES:
            yield "".join(block).encode("utf-8")
            block, size = [], 0
    if block:
        yield "".join(block).encode("utf-8")


class ExportMixin:
    """``?format=csv|jsonl`` (or the Accept header) streams the whole filtered queryset."""

    renderer_classes = [renderers.JSONRenderer, CSVExportRenderer, JSONLinesExportRenderer]
    export_name = ""
    export_columns: list[tuple[str, str]] = []  # (column in the file, model field)

    def export_format(self) -> str | None:
        fmt = getattr(self.request.accepted_renderer, "format", None)
        return fmt if fmt in EXPORT_FORMATS else None

    def export(self, queryset, fmt: str) -> StreamingHttpResponse:
        columns = [name for name, _ in self.export_columns]
        rows = queryset.values_list(*[field for _, field in self.export_columns]).iterator(chunk_size=EXPORT_CHUNK_ROWS)
        response = StreamingHttpResponse(export_lines(rows, columns, fmt), content_type=EXPORT_FORMATS[fmt])
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        response["Content-Disposition"] = f'attachment; filename="{self.project.slug}-{self.export_name}-{stamp}.{fmt}"'
        response["Cache-Control"] = "no-store"
        return response

    def finalize_response(self, request, response, *args, **kwargs):
        # Errors (and anything else DRF renders) are JSON even when an export was asked for.
        if isinstance(response, Response) and getattr(request, "accepted_renderer", None) is not None:
            if request.accepted_renderer.format in EXPORT_FORMATS:
                request.accepted_renderer, request.accepted_media_type = renderers.JSONRenderer(), "application/json"
        return super().finalize_response(request, response, *args, **kwargs)

    def list_or_export(self):
        queryset = self.filter_queryset(self.get_queryset())
        fmt = self.export_format()
        if fmt:
            return self.export(queryset, fmt)
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


_EXPORT_RESPONSES = {
    (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="`?format=csv`: the whole result, streamed."),
    (200, "application/x-ndjson"): OpenApiResponse(
        OpenApiTypes.STR, description="`?format=jsonl`: one JSON object per line, streamed."
    ),
}


# --- Views ---


class AuditEventCursor(CursorPagination):
    ordering = "sequence"


class AccessLogCursor(CursorPagination):
    ordering = "-id"


class AuditEventListView(ExportMixin, ProjectApiView):
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
    pagination_class = AuditEventCursor
    export_name = "audit-events"
    export_columns = [
        ("sequence", "sequence"),
        ("occurred_at", "occurred_at"),
        ("actor", "actor_name"),
        ("actor_role", "actor_role"),
        ("action", "action"),
        ("target_type", "target_type"),
        ("target_id", "target_id"),
        ("target_label", "target_label"),
        ("request_id", "request_id"),
        ("client_address", "client_address"),
        ("diff", "diff"),
        ("prev_hash", "prev_hash"),
        ("hash", "hash"),
        ("payload", "payload"),
    ]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return AuditEvent.objects.none()
        return selectors.audit_event_list(principal=self.principal, project=self.project)

    @extend_schema(
        responses={(200, "application/json"): AuditEventSerializer(many=True), **_EXPORT_RESPONSES},
        description="The project's audit chain in sequence order. The exports add `prev_hash`, `hash` and "
        "`payload` (the exact bytes that were hashed), so the chain can be verified offline.",
    )
    def get(self, request, project):
        return self.list_or_export()


class AuditEventDetailView(ProjectApiView):
    serializer_class = AuditEventDetailSerializer
    pagination_class = None

    def get(self, request, project, sequence):
        event = selectors.audit_event_get(principal=self.principal, project=self.project, sequence=sequence)
        return Response(self.get_serializer(event).data)


class AccessLogListView(ExportMixin, ProjectApiView):
    serializer_class = AccessLogEntrySerializer
    filterset_class = AccessLogFilter
    pagination_class = AccessLogCursor
    export_name = "access-log"
    export_columns = [
        ("id", "id"),
        ("at", "at"),
        ("principal", "principal_name"),
        ("key_prefix", "key_prefix"),
        ("method", "method"),
        ("path", "path"),
        ("project", "project_slug"),
        ("object", "object"),
        ("status", "status"),
        ("request_id", "request_id"),
        ("client_address", "client_address"),
        ("detail", "detail"),
    ]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return AccessLogEntry.objects.none()
        return selectors.access_log_list(principal=self.principal, project=self.project)

    @extend_schema(
        responses={(200, "application/json"): AccessLogEntrySerializer(many=True), **_EXPORT_RESPONSES},
        description="Requests under the project's URLs, newest first. Anonymous requests have an empty principal.",
    )
    def get(self, request, project):
        return self.list_or_export()


class AuditVerifyView(ProjectApiView):
    """Recompute the project's chain from the stored bytes and compare it with the signed checkpoints.

    A small chain answers 200 with the result; a large one answers 202 and is verified by a worker: poll
    the returned URL for progress and the result."""

    serializer_class = AuditVerificationSerializer
    read_like = True

    @extend_schema(request=None, responses={200: AuditVerificationSerializer, 202: AuditVerificationSerializer})
    def post(self, request, project):
        verification = audit_verification_start(actor=self.principal, project=self.project)
        body = self.get_serializer(verification).data
        if verification.state in (AuditVerification.State.DONE, AuditVerification.State.ERROR):
            return Response(body)
        location = f"/api/v1/projects/{self.project.slug}/audit-events/verify/{verification.pk}/"
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": location})


class AuditVerificationDetailView(ProjectApiView):
    serializer_class = AuditVerificationSerializer

    def get(self, request, project, pk):
        verification = selectors.audit_verification_get(
            principal=self.principal, project=self.project, verification_id=pk
        )
        return Response(self.get_serializer(verification).data)
