"""Datasets and their immutable versions under ``/api/v1/projects/{p}/datasets/`` (DESIGN §4, §8).

A version is registered with a JSON body (by URI, with its sha256) or uploaded as ``multipart/form-data``
with a ``file`` field (Parquet or CSV, streamed to disk and hashed on the way; stored as Parquet). Only the
versions endpoint accepts multipart; every other endpoint stays JSON-only (415).
"""

from functools import cached_property

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import parsers, serializers, status
from rest_framework.response import Response

from controlplane.api.filters import BooleanFilter
from controlplane.api.serializers import StrictSerializer
from controlplane.exceptions import DomainError
from governance import selectors
from governance.accounts.api.base import ProjectApiView
from governance.models import Classification, Dataset, DatasetVersion
from governance.services import datasets as services
from governance.storage import HashingUploadHandler

COLUMN_TYPES = ["integer", "float", "string", "boolean", "datetime", "category", "binary", "list", "struct", "other"]
SHA256 = r"^[0-9a-fA-F]{64}$"
LABEL = r"^[^\s/\\]{1,200}$"
DATASHEET_HELP = "Datasheet field (Gebru et al., 'Datasheets for Datasets')."


def _validated(serializer_class, data, **kwargs):
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _text(**kwargs):
    return serializers.CharField(required=False, allow_blank=True, max_length=20000, **kwargs)


# Serializers ----------------------------------------------------------------------------------------------


class DatasetSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", default=None, read_only=True)
    version_count = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = Dataset
        fields = [
            "id", "namespace", "name", "owner", "description", "license", "classification", "contains_pii",
            "pii_justification", "version_count", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class DatasetCreateSerializer(StrictSerializer):
    namespace = serializers.CharField(max_length=255, help_text="As in OpenLineage: e.g. s3://bucket, postgres://db")
    name = serializers.CharField(max_length=255)
    description = _text(default="")
    license = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    classification = serializers.ChoiceField(choices=Classification.choices, required=False, allow_blank=True)
    contains_pii = serializers.BooleanField(required=False, default=False)
    pii_justification = _text(default="")


class DatasetUpdateSerializer(StrictSerializer):
    """The editable fields; ``namespace`` and ``name`` may be sent, but only unchanged (else 409)."""

    namespace = serializers.CharField(max_length=255, required=False)
    name = serializers.CharField(max_length=255, required=False)
    description = _text()
    license = serializers.CharField(required=False, allow_blank=True, max_length=200)
    classification = serializers.ChoiceField(choices=Classification.choices, required=False, allow_blank=True)
    contains_pii = serializers.BooleanField(required=False)
    pii_justification = _text()


class DatasetFilter(django_filters.FilterSet):
    namespace = django_filters.CharFilter()
    name = django_filters.CharFilter()
    classification = django_filters.ChoiceFilter(choices=Classification.choices)
    contains_pii = BooleanFilter()
    q = django_filters.CharFilter(help_text="Search in namespace, name and description.")


class ColumnSerializer(StrictSerializer):
    name = serializers.CharField(max_length=500)
    type = serializers.ChoiceField(choices=COLUMN_TYPES)


class DatasetVersionSerializer(serializers.ModelSerializer):
    dataset = serializers.IntegerField(source="dataset_id", read_only=True)
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)
    schema = ColumnSerializer(many=True, read_only=True)

    class Meta:
        model = DatasetVersion
        fields = [
            "id", "dataset", "version", "kind", "uri", "storage_path", "sha256", "size_bytes", "row_count", "schema",
            "motivation", "composition", "collection_process", "known_biases", "created_by", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class DatasheetSerializer(StrictSerializer):
    motivation = _text(help_text=DATASHEET_HELP)
    composition = _text(help_text=DATASHEET_HELP)
    collection_process = _text(help_text=DATASHEET_HELP)
    known_biases = _text(help_text=DATASHEET_HELP)


class DatasetVersionRegisterSerializer(DatasheetSerializer):
    """Registration by reference: the location and the hash the caller computed over its bytes."""

    uri = serializers.CharField(
        max_length=2000, help_text="s3://, gs://, az://, abfs://, hdfs://, https://, storage://"
    )
    sha256 = serializers.RegexField(SHA256, help_text="SHA-256 of the data's bytes, 64 hex characters.")
    version = serializers.RegexField(LABEL, required=False, help_text="Default: the next number (1, 2, ...).")
    row_count = serializers.IntegerField(required=False, min_value=0, allow_null=True)
    schema = ColumnSerializer(many=True, required=False, max_length=10000)


class DatasetVersionUploadSerializer(DatasheetSerializer):
    """Upload (multipart/form-data): a Parquet or CSV ``file``; row count and schema are read from it."""

    file = serializers.FileField(help_text="Parquet, or CSV (named .csv or sent as text/csv).")
    version = serializers.RegexField(LABEL, required=False, help_text="Default: the next number (1, 2, ...).")
    sha256 = serializers.RegexField(SHA256, required=False, help_text="If given, the upload must hash to it.")


class DatasetVersionUpdateSerializer(DatasheetSerializer):
    """The datasheet fields; the immutable ones may be sent, but only unchanged (else 409)."""

    uri = serializers.CharField(max_length=2000, required=False)
    sha256 = serializers.CharField(max_length=64, required=False)
    version = serializers.CharField(max_length=200, required=False)
    row_count = serializers.IntegerField(required=False, allow_null=True)
    schema = ColumnSerializer(many=True, required=False, max_length=10000)


class DatasetVersionFilter(django_filters.FilterSet):
    version = django_filters.CharFilter(help_text="A version label.")
    sha256 = django_filters.CharFilter(help_text="Is this hash registered already?")
    kind = django_filters.ChoiceFilter(choices=DatasetVersion.Kind.choices)


# Views ----------------------------------------------------------------------------------------------------


class DatasetMixin:
    @cached_property
    def dataset(self) -> Dataset:
        return selectors.dataset_get(principal=self.principal, project=self.project, dataset_id=self.kwargs["pk"])


class DatasetListView(ProjectApiView):
    """The project's datasets, identified by (namespace, name) as in OpenLineage."""

    serializer_class = DatasetSerializer
    queryset = Dataset.objects.none()  # for the schema's path parameters; reads go through the selectors
    filterset_class = DatasetFilter

    @extend_schema(responses={200: DatasetSerializer(many=True)})
    def get(self, request, project):
        """Datasets by namespace and name, with their number of versions."""
        datasets = selectors.dataset_list(principal=self.principal, project=self.project, filters=self.filters)
        page = self.paginate_queryset(datasets)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(request=DatasetCreateSerializer, responses={201: DatasetSerializer})
    def post(self, request, project):
        """Register a dataset (ML engineers and admins). An existing (namespace, name) answers 409."""
        data = _validated(DatasetCreateSerializer, request.data)
        dataset = services.dataset_create(actor=self.principal, project=self.project, **data)
        dataset = selectors.dataset_get(principal=self.principal, project=self.project, dataset_id=dataset.pk)
        return Response(self.get_serializer(dataset).data, status=status.HTTP_201_CREATED)


class DatasetDetailView(DatasetMixin, ProjectApiView):
    """One dataset of the project."""

    serializer_class = DatasetSerializer
    queryset = Dataset.objects.none()  # for the schema's path parameters; reads go through the selectors

    def get(self, request, project, pk):
        return Response(self.get_serializer(self.dataset).data)

    @extend_schema(request=DatasetUpdateSerializer, responses={200: DatasetSerializer})
    def patch(self, request, project, pk):
        """Description, licence, classification and PII fields. Changing namespace or name answers 409."""
        data = _validated(DatasetUpdateSerializer, request.data)
        services.dataset_update(actor=self.principal, dataset=self.dataset, fields=data)
        fresh = selectors.dataset_get(principal=self.principal, project=self.project, dataset_id=self.dataset.pk)
        return Response(self.get_serializer(fresh).data)


class DatasetVersionListView(DatasetMixin, ProjectApiView):
    """A dataset's immutable versions."""

    serializer_class = DatasetVersionSerializer
    queryset = DatasetVersion.objects.none()  # for the schema; reads go through the selectors
    parser_classes = [parsers.JSONParser, parsers.MultiPartParser]
    filterset_class = DatasetVersionFilter

    def initialize_request(self, request, *args, **kwargs):
        # Before anything reads the body (session authentication's CSRF check reads request.POST): uploads
        # go to a temporary file, hashed and size-limited on the way, never into memory.
        request.upload_handlers = [HashingUploadHandler(request)]
        return super().initialize_request(request, *args, **kwargs)

    @extend_schema(responses={200: DatasetVersionSerializer(many=True)})
    def get(self, request, project, pk):
        """Versions, newest first."""
        versions = selectors.dataset_version_list(principal=self.principal, dataset=self.dataset, filters=self.filters)
        page = self.paginate_queryset(versions)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        request={
            "application/json": DatasetVersionRegisterSerializer,
            "multipart/form-data": DatasetVersionUploadSerializer,
        },
        responses={201: DatasetVersionSerializer, 200: DatasetVersionSerializer},
    )
    def post(self, request, project, pk):
        """Register a version by URI (JSON) or upload one (multipart). The same sha256 again answers 200
        with the existing version; a version label that exists with another hash answers 409."""
        if request.content_type.startswith("multipart/form-data"):
            data = _validated(DatasetVersionUploadSerializer, request.data)
            version, created = services.dataset_version_upload(
                actor=self.principal,
                dataset=self.dataset,
                file=data.pop("file"),
                version=data.pop("version", None),
                sha256=data.pop("sha256", None),
                datasheet=data,
            )
        else:
            if isinstance(request.data, dict) and "file" in request.data:
                raise DomainError(
                    "Uploads are multipart/form-data, with the data in the form field 'file' "
                    "(curl -F file=@data.csv). A JSON body registers a version by reference: 'uri' and 'sha256'.",
                    code="upload_not_multipart",
                    details=[{"field": "file", "message": "Send files as multipart/form-data.", "code": "invalid"}],
                )
            data = _validated(DatasetVersionRegisterSerializer, request.data)
            version, created = services.dataset_version_register(
                actor=self.principal,
                dataset=self.dataset,
                uri=data.pop("uri"),
                sha256=data.pop("sha256"),
                version=data.pop("version", None),
                row_count=data.pop("row_count", None),
                schema=data.pop("schema", None),
                datasheet=data,
            )
        return Response(
            self.get_serializer(version).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class DatasetVersionDetailView(DatasetMixin, ProjectApiView):
    """One version of a dataset: its hash, location, schema and datasheet."""

    serializer_class = DatasetVersionSerializer
    queryset = DatasetVersion.objects.none()  # for the schema; reads go through the selectors

    def version(self) -> DatasetVersion:
        return selectors.dataset_version_get(
            principal=self.principal, dataset=self.dataset, version_id=self.kwargs["version_id"]
        )

    def get(self, request, project, pk, version_id):
        return Response(self.get_serializer(self.version()).data)

    @extend_schema(request=DatasetVersionUpdateSerializer, responses={200: DatasetVersionSerializer})
    def patch(self, request, project, pk, version_id):
        """Datasheet fields only. Sending uri, sha256, version, schema or row_count with another value
        answers 409: a registered version is immutable."""
        data = _validated(DatasetVersionUpdateSerializer, request.data)
        version = services.dataset_version_update(actor=self.principal, version=self.version(), fields=data)
        return Response(self.get_serializer(version).data)
