"""Datasets and their immutable versions under ``/api/v1/projects/{p}/datasets/`` (DESIGN §4, §8), and
OpenLineage ingest (``POST lineage``, ``POST lineage/batch/``) with the lineage graph (``GET lineage/``).

A version is registered with a JSON body (by URI, with its sha256) or uploaded as ``multipart/form-data``
with a ``file`` field (Parquet or CSV, streamed to disk and hashed on the way; stored as Parquet). Only the
versions endpoint accepts multipart; every other endpoint stays JSON-only (415).
"""

from functools import cached_property

import django_filters
from drf_spectacular.utils import OpenApiTypes, extend_schema
from rest_framework import parsers, serializers, status
from rest_framework.response import Response

from controlplane.api.errors import _flatten
from controlplane.api.filters import BooleanFilter, IntegerFilter
from controlplane.exceptions import DomainError
from governance.accounts.api.base import ApiView, ProjectApiView
from governance.provenance import graph as lineage
from governance.provenance import ingest, services
from governance.provenance.api.serializers import (
    MAX_BATCH,
    DatasetCreateSerializer,
    DatasetSerializer,
    DatasetUpdateSerializer,
    DatasetVersionRegisterSerializer,
    DatasetVersionSerializer,
    DatasetVersionUpdateSerializer,
    DatasetVersionUploadSerializer,
    _array_items,
    _body_text,
    _parse,
    validate_event,
)
from governance.provenance.models import Classification, Dataset, DatasetVersion, LineageEvent
from governance.provenance.selectors import dataset_get, dataset_list, dataset_version_get, dataset_version_list
from governance.provenance.storage import HashingUploadHandler


class DatasetFilter(django_filters.FilterSet):
    namespace = django_filters.CharFilter()
    name = django_filters.CharFilter()
    classification = django_filters.ChoiceFilter(choices=Classification.choices)
    contains_pii = BooleanFilter()
    q = django_filters.CharFilter(help_text="Search in namespace, name and description.")


class DatasetVersionFilter(django_filters.FilterSet):
    version = django_filters.CharFilter(help_text="A version label.")
    sha256 = django_filters.CharFilter(help_text="Is this hash registered already?")
    kind = django_filters.ChoiceFilter(choices=DatasetVersion.Kind.choices)


# Views ----------------------------------------------------------------------------------------------------


class DatasetMixin:
    @cached_property
    def dataset(self) -> Dataset:
        return dataset_get(principal=self.principal, project=self.project, dataset_id=self.kwargs["pk"])


class DatasetListView(ProjectApiView):
    """The project's datasets, identified by (namespace, name) as in OpenLineage."""

    serializer_class = DatasetSerializer
    queryset = Dataset.objects.none()  # for the schema's path parameters; reads go through the selectors
    filterset_class = DatasetFilter

    @extend_schema(responses={200: DatasetSerializer(many=True)})
    def get(self, request, project):
        """Datasets by namespace and name, with their number of versions."""
        datasets = dataset_list(principal=self.principal, project=self.project, filters=self.filters)
        page = self.paginate_queryset(datasets)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(request=DatasetCreateSerializer, responses={201: DatasetSerializer})
    def post(self, request, project):
        """Register a dataset (ML engineers and admins). An existing (namespace, name) answers 409."""
        data = self.validated(DatasetCreateSerializer)
        dataset = services.dataset_create(actor=self.principal, project=self.project, **data)
        dataset = dataset_get(principal=self.principal, project=self.project, dataset_id=dataset.pk)
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
        data = self.validated(DatasetUpdateSerializer)
        services.dataset_update(actor=self.principal, dataset=self.dataset, fields=data)
        fresh = dataset_get(principal=self.principal, project=self.project, dataset_id=self.dataset.pk)
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
        versions = dataset_version_list(principal=self.principal, dataset=self.dataset, filters=self.filters)
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
            data = self.validated(DatasetVersionUploadSerializer)
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
            data = self.validated(DatasetVersionRegisterSerializer)
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
        return dataset_version_get(principal=self.principal, dataset=self.dataset, version_id=self.kwargs["version_id"])

    def get(self, request, project, pk, version_id):
        return Response(self.get_serializer(self.version()).data)

    @extend_schema(request=DatasetVersionUpdateSerializer, responses={200: DatasetVersionSerializer})
    def patch(self, request, project, pk, version_id):
        """Datasheet fields only. Sending uri, sha256, version, schema or row_count with another value
        answers 409: a registered version is immutable."""
        data = self.validated(DatasetVersionUpdateSerializer)
        version = services.dataset_version_update(actor=self.principal, version=self.version(), fields=data)
        return Response(self.get_serializer(version).data)


class GraphQueryFilter(django_filters.FilterSet):
    nodeId = django_filters.CharFilter(  # noqa: N815
        required=True, max_length=700, help_text="dataset:{ns}:{name}, job:{ns}:{name} or model:{name}:{version}"
    )
    depth = IntegerFilter(min_value=0, max_value=lineage.MAX_DEPTH, help_text="Default 20.")
    direction = django_filters.ChoiceFilter(choices=[(d, d) for d in lineage.DIRECTIONS], help_text="Default both.")
    project = django_filters.CharFilter(help_text="Needed only when the node exists in several projects.")


def _ingested(result: ingest.IngestResult) -> dict:
    return {
        "status": "created" if result.created else "duplicate",
        "sha256": result.event.sha256,
        "runId": str(result.event.run_id),
        "changed": result.changed,
        "modelVersion": result.link.as_dict(),
    }


INGEST_ANSWER = (
    " The answer says whether the run is linked to the model version it produced (`modelVersion`: `linked`, "
    "`by` `facet` or `artifact`, `model`, `version`; if not, `reason` -- `run_not_complete`, `no_outputs`, "
    "`no_matching_version`, `several_versions`, `sha256_differs`, `link_pending` -- and a `message` saying "
    "what to do; `outputs`: the run's outputs that name a location, their URIs and the versions with those "
    "artifact URIs). A run is linked by the run facet `tollgate_modelVersion` "
    '(`{"model": "fraud-gbm", "version": 3}`), or when it is COMPLETE and one output is the artifact of exactly '
    "one version of the key's project (namespace + '/' + name, or the name, equal to its artifact_uri; the "
    'dataset facet `tollgate_artifact` `{"sha256": ...}` must then match its artifact_sha256).'
)


class LineageView(ApiView):
    """``POST``: ingest one OpenLineage RunEvent (the OpenLineage clients' default endpoint); the project is
    the one the caller's key is pinned to. ``GET`` (``lineage/``): the lineage graph around ``nodeId``."""

    queryset = LineageEvent.objects.none()  # for the schema of GET's filters
    filterset_class = GraphQueryFilter  # GET's query string
    pagination_class = None

    @extend_schema(
        operation_id="lineage_ingest",
        request={"application/json": OpenApiTypes.OBJECT},
        responses={201: OpenApiTypes.OBJECT, 200: OpenApiTypes.OBJECT, 409: OpenApiTypes.OBJECT},
        description="An OpenLineage 2-0-2 RunEvent. 201 when stored, 200 when the same event (these bytes, or the "
        "same JSON) was stored before, 409 naming the stored event when the run has another one with this "
        "eventType and eventTime." + INGEST_ANSWER,
    )
    def post(self, request):
        project = ingest.lineage_ingest_project(self.principal)
        text = _body_text(request)
        event = validate_event(_parse(text))
        result = ingest.lineage_event_ingest(actor=self.principal, project=project, body=text, event=event)
        return Response(_ingested(result), status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        """The lineage graph around `nodeId` (Marquez-style), resolved inside your projects, at most `depth`
        steps away, with `truncated` when it was capped."""
        data = self.filters
        return Response(
            lineage.lineage_graph(
                principal=self.principal,
                node_id=data["nodeId"],
                depth=data.get("depth", 20),
                direction=data.get("direction", "both"),
                project_slug=data.get("project"),
            )
        )


class LineageIngestView(LineageView):
    """``POST api/v1/lineage``: the path the OpenLineage clients post to by default (no trailing slash)."""

    http_method_names = ["post", "options"]

    @extend_schema(
        operation_id="lineage_ingest_default_path",
        request={"application/json": OpenApiTypes.OBJECT},
        responses={201: OpenApiTypes.OBJECT, 200: OpenApiTypes.OBJECT},
        description="The same as POST /api/v1/lineage/, at the OpenLineage clients' default path.",
    )
    def post(self, request):
        return super().post(request)


class LineageBatchView(ApiView):
    """``POST`` a JSON array of RunEvents. Each is validated and stored on its own (one bad event does not
    stop the others); the answer is 200 with a result per event, in order (an altered replay of a stored event
    is ``refused`` with the 409's error, ``lineage_event_conflict``)."""

    @extend_schema(request={"application/json": OpenApiTypes.OBJECT}, responses={200: OpenApiTypes.OBJECT})
    def post(self, request):
        project = ingest.lineage_ingest_project(self.principal)
        items = _array_items(_body_text(request))
        if len(items) > MAX_BATCH:
            raise DomainError(f"A batch holds at most {MAX_BATCH} events.", details=[{"field": "body"}])
        results = []
        for index, (text, value) in enumerate(items):
            try:
                event = validate_event(value)
                result = ingest.lineage_event_ingest(actor=self.principal, project=project, body=text, event=event)
            except serializers.ValidationError as error:
                results.append({"index": index, "status": "invalid", "error": {
                    "code": "invalid", "message": "The event is not a valid RunEvent.",
                    "details": _flatten(error.detail)}})  # fmt: skip
                continue
            except DomainError as error:
                results.append({"index": index, "status": "refused", "error": {
                    "code": error.code, "message": error.message, "details": error.details}})  # fmt: skip
                continue
            results.append({"index": index, **_ingested(result)})
        failed = sum(1 for r in results if r["status"] in ("invalid", "refused"))
        overall = "success" if not failed else ("failure" if failed == len(results) else "partial_success")
        return Response(
            {
                "status": overall,
                "summary": {"received": len(results), "successful": len(results) - failed, "failed": failed},
                "results": results,
            }
        )
