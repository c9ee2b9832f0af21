"""Models, versions, metrics, dataset links, model cards and the PROV export under
``/api/v1/projects/{p}/models/``."""

import re
from functools import cached_property

import django_filters
from drf_spectacular.utils import OpenApiTypes, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from controlplane.api.serializers import NAME, StrictSerializer
from controlplane.exceptions import Conflict
from governance.accounts.api.base import ProjectApiView, ProjectListApiView
from governance.provenance import graph as lineage
from governance.provenance.models import ModelVersionDataset
from governance.registry import services
from governance.registry.api.serializers import (
    IMMUTABLE_VERSION_FIELDS,
    DatasetLinkInSerializer,
    DatasetLinkSerializer,
    MetricInSerializer,
    MetricSerializer,
    ModelCardRevisionSerializer,
    ModelCardSerializer,
    ModelCreateSerializer,
    ModelSerializer,
    ModelUpdateSerializer,
    ModelVersionRegisterSerializer,
    ModelVersionSerializer,
    ModelVersionUpdateSerializer,
    _card_field,
)
from governance.registry.models import (
    MODEL_CARD_FIELDS,
    Metric,
    ModelCard,
    ModelCardRevision,
    ModelVersion,
    RegisteredModel,
)
from governance.registry.selectors import (
    model_card_get,
    model_card_revision_list,
    model_get,
    model_list,
    model_version_at,
    model_version_get,
    model_version_list,
    versions_with_children,
)

ModelCardEditSerializer = type(
    "ModelCardEditSerializer",
    (StrictSerializer,),
    {field: _card_field(field) for field in MODEL_CARD_FIELDS},
)


# Views ----------------------------------------------------------------------------------------------------


class ModelFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(help_text="Part of the model's name.")
    tag = django_filters.CharFilter(help_text="Models with this tag.")
    owner = django_filters.CharFilter(help_text="The owner's username.")


class ModelListView(ProjectListApiView):
    serializer_class = ModelSerializer
    queryset = RegisteredModel.objects.none()
    filterset_class = ModelFilter

    def scoped_queryset(self):
        return model_list(principal=self.principal, project=self.project, filters=self.filters)

    @extend_schema(request=ModelCreateSerializer, responses={201: ModelSerializer})
    def post(self, request, project):
        data = self.validated(ModelCreateSerializer)
        model = services.model_create(actor=self.principal, project=self.project, **data)
        return Response(self.get_serializer(model).data, status=status.HTTP_201_CREATED)


class ModelMixin:
    @cached_property
    def model(self):
        return model_get(principal=self.principal, project=self.project, name=self.kwargs["model"])


class ModelDetailView(ModelMixin, ProjectApiView):
    serializer_class = ModelSerializer

    def get(self, request, project, model):
        return Response(self.get_serializer(self.model).data)

    @extend_schema(request=ModelUpdateSerializer, responses={200: ModelSerializer})
    def patch(self, request, project, model):
        data = self.validated(ModelUpdateSerializer)
        return Response(self.get_serializer(services.model_update(actor=self.principal, model=self.model, **data)).data)


class ModelVersionFilter(django_filters.FilterSet):
    tag = django_filters.CharFilter(help_text="Versions with this tag.")
    created_by = django_filters.CharFilter(help_text="The registering user's username.")
    status = django_filters.ChoiceFilter(choices=ModelVersion.Status.choices)
    metric = django_filters.CharFilter(help_text="Only versions with this metric (use with the bounds).")
    metric_min = django_filters.NumberFilter(help_text="The metric is at least this.")
    metric_max = django_filters.NumberFilter(help_text="The metric is at most this.")


class ModelVersionListView(ProjectListApiView):
    serializer_class = ModelVersionSerializer
    queryset = ModelVersion.objects.none()
    filterset_class = ModelVersionFilter

    def scoped_queryset(self):
        model = model_get(principal=self.principal, project=self.project, name=self.kwargs["model"])
        versions = model_version_list(principal=self.principal, model=model, filters=self.filters, children=False)
        return versions.order_by("version")

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        return versions_with_children(page) if page is not None else None

    @extend_schema(
        request=ModelVersionRegisterSerializer, responses={201: ModelVersionSerializer, 200: ModelVersionSerializer}
    )
    def post(self, request, project, model):
        """Register the next version (the model is created on first use). Repeating a registration with the
        same artifact hash answers 200 with the existing version."""
        if not re.match(NAME, model):
            raise serializers.ValidationError({"model": "Model names are letters, digits, '.', '_' and '-'."})
        data = self.validated(ModelVersionRegisterSerializer)
        version, created = services.model_version_register(
            actor=self.principal, project=self.project, model_name=model, **data
        )
        if not created:  # a new version comes back with what its representation shows; an existing one is read
            version = model_version_get(principal=self.principal, model=version.model, version=version.version)
        return Response(
            self.get_serializer(version).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class VersionMixin(ModelMixin):
    version_representation = True  # False where the view does not render the version (no prefetches)

    @cached_property
    def version(self):
        """The version of the path, with its model and project in the same query (which ``model`` and
        ``project`` then read, unless a view asked for them first)."""
        version = model_version_at(
            principal=self.principal, project=self.kwargs["project"], model=self.kwargs["model"],
            version=self.kwargs["version"], representation=self.version_representation,
        )  # fmt: skip
        self.__dict__.setdefault("model", version.model)
        self.__dict__.setdefault("project", version.model.project)
        return version


class ModelVersionDetailView(VersionMixin, ProjectApiView):
    serializer_class = ModelVersionSerializer

    def get(self, request, project, model, version):
        return Response(self.get_serializer(self.version).data)

    @extend_schema(request=ModelVersionUpdateSerializer, responses={200: ModelVersionSerializer})
    def patch(self, request, project, model, version):
        """Description and tags only. Sending an immutable field with another value answers 409."""
        body = request.data
        if isinstance(body, dict):
            current = self.get_serializer(self.version).data
            changed = [name for name in IMMUTABLE_VERSION_FIELDS if name in body and body[name] != current[name]]
            if changed:
                raise Conflict(
                    f"Registered versions are immutable: {', '.join(changed)} cannot change.",
                    details=[{"field": name} for name in changed],
                )
            body = {name: value for name, value in body.items() if name not in IMMUTABLE_VERSION_FIELDS}
        serializer = ModelVersionUpdateSerializer(data=body)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        services.model_version_update(actor=self.principal, version=self.version, **data)
        fresh = model_version_get(principal=self.principal, model=self.model, version=self.version.version)
        return Response(self.get_serializer(fresh).data)


class ModelVersionArchiveView(VersionMixin, ProjectApiView):
    version_representation = False
    serializer_class = ModelVersionSerializer

    @extend_schema(request=None, responses={200: ModelVersionSerializer})
    def post(self, request, project, model, version):
        services.model_version_archive(actor=self.principal, version=self.version)
        fresh = model_version_get(principal=self.principal, model=self.model, version=self.version.version)
        return Response(self.get_serializer(fresh).data)


class MetricListView(VersionMixin, ProjectApiView):
    serializer_class = MetricSerializer
    queryset = Metric.objects.none()
    pagination_class = None

    def get(self, request, project, model, version):
        return Response(self.get_serializer(self.version.metrics.all(), many=True).data)

    @extend_schema(request=MetricInSerializer(many=True), responses={201: MetricSerializer(many=True)})
    def post(self, request, project, model, version):
        serializer = MetricInSerializer(data=request.data, many=True, max_length=1000)
        serializer.is_valid(raise_exception=True)
        added = services.model_version_metrics_add(
            actor=self.principal, version=self.version, metrics=serializer.validated_data
        )
        return Response(self.get_serializer(added, many=True).data, status=status.HTTP_201_CREATED)


class DatasetLinkListView(VersionMixin, ProjectApiView):
    serializer_class = DatasetLinkSerializer
    queryset = ModelVersionDataset.objects.none()
    pagination_class = None

    def get(self, request, project, model, version):
        return Response(self.get_serializer(self.version.dataset_links.all(), many=True).data)

    @extend_schema(request=DatasetLinkInSerializer(many=True), responses={201: DatasetLinkSerializer(many=True)})
    def post(self, request, project, model, version):
        serializer = DatasetLinkInSerializer(data=request.data, many=True, max_length=1000)
        serializer.is_valid(raise_exception=True)
        added = services.model_version_datasets_link(
            actor=self.principal, version=self.version, links=serializer.validated_data
        )
        return Response(self.get_serializer(added, many=True).data, status=status.HTTP_201_CREATED)


class ModelCardView(VersionMixin, ProjectApiView):
    version_representation = False
    serializer_class = ModelCardSerializer

    def card(self) -> ModelCard:
        return model_card_get(version=self.version)

    def get(self, request, project, model, version):
        return Response(self.get_serializer(self.card()).data)

    def _edit(self, request, replace: bool):
        data = self.validated(ModelCardEditSerializer)
        services.model_card_edit(actor=self.principal, version=self.version, fields=data, replace=replace)
        return Response(self.get_serializer(self.card()).data)

    @extend_schema(request=ModelCardEditSerializer, responses={200: ModelCardSerializer})
    def put(self, request, project, model, version):
        return self._edit(request, replace=True)

    @extend_schema(request=ModelCardEditSerializer, responses={200: ModelCardSerializer})
    def patch(self, request, project, model, version):
        return self._edit(request, replace=False)


class ModelCardHistoryView(VersionMixin, ProjectListApiView):
    version_representation = False
    serializer_class = ModelCardRevisionSerializer
    queryset = ModelCardRevision.objects.none()

    def scoped_queryset(self):
        return model_card_revision_list(version=self.version)


class ProvExportView(VersionMixin, ProjectApiView):
    """The version's upstream lineage as a W3C PROV-JSON document, for auditors."""

    version_representation = False

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request, project, model, version):
        base = request.build_absolute_uri(f"/api/v1/projects/{self.project.slug}/")
        response = Response(lineage.prov_document(self.version, base_uri=base))
        response["Content-Disposition"] = f'inline; filename="{model}-v{version}.prov.json"'
        return response
