"""Models, versions, metrics, dataset links and model cards under ``/api/v1/projects/{p}/models/``."""

import re
from functools import cached_property

import django_filters
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response

from controlplane.api.serializers import StrictSerializer
from controlplane.exceptions import Conflict
from governance import selectors
from governance.accounts.api.base import ProjectApiView, ProjectListApiView
from governance.models import (
    DatasetRole,
    Metric,
    ModelCard,
    ModelCardRevision,
    ModelVersion,
    ModelVersionDataset,
    RegisteredModel,
)
from governance.models.registry import MODEL_CARD_FIELDS
from governance.services import registry as services

NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"
TAG_PATTERN = r"^[A-Za-z0-9._:=/-]{1,64}$"
SHA256 = r"^[0-9a-f]{64}$"
TYPES = ["integer", "float", "string", "boolean", "datetime", "category"]


def _validated(request, serializer_class, **kwargs):
    serializer = serializer_class(data=request.data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# Serializers ----------------------------------------------------------------------------------------------


class SignatureColumnSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    type = serializers.ChoiceField(choices=TYPES)


class SignatureSerializer(StrictSerializer):
    inputs = SignatureColumnSerializer(many=True, allow_empty=False)
    outputs = SignatureColumnSerializer(many=True, allow_empty=False)

    def validate(self, data):
        for side in ("inputs", "outputs"):
            names = [column["name"] for column in data[side]]
            if len(names) != len(set(names)):
                raise serializers.ValidationError({side: "Column names must be unique."})
        return data


class MetricInSerializer(StrictSerializer):
    name = serializers.RegexField(r"^[A-Za-z0-9_.:-]{1,100}$")
    value = serializers.FloatField()
    dataset_version = serializers.IntegerField(required=False, allow_null=True, default=None)
    subgroup = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class DatasetLinkInSerializer(StrictSerializer):
    dataset_version = serializers.IntegerField()
    role = serializers.ChoiceField(choices=DatasetRole.choices)


class MetricSerializer(serializers.ModelSerializer):
    class Meta:
        model = Metric
        fields = ["name", "value", "dataset_version", "subgroup", "created_at"]
        read_only_fields = fields


class DatasetLinkSerializer(serializers.ModelSerializer):
    dataset = serializers.SerializerMethodField()
    version = serializers.CharField(source="dataset_version.version")
    sha256 = serializers.CharField(source="dataset_version.sha256")

    class Meta:
        model = ModelVersionDataset
        fields = ["dataset_version", "role", "dataset", "version", "sha256"]
        read_only_fields = fields

    def get_dataset(self, link) -> dict:
        dataset = link.dataset_version.dataset
        return {"id": dataset.pk, "namespace": dataset.namespace, "name": dataset.name}


class LineageRunLinkSerializer(serializers.Serializer):
    """A training run reported through OpenLineage that produced the version, and how Tollgate knows."""

    run_id = serializers.UUIDField()
    job = serializers.SerializerMethodField()
    state = serializers.CharField()
    agent = serializers.CharField(source="agent.username")
    linked_by = serializers.CharField(source="model_version_link", help_text="facet or artifact")
    started_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField()

    def get_job(self, run) -> dict:
        return {"namespace": run.job.namespace, "name": run.job.name}


class ModelSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", default=None, read_only=True)
    version_count = serializers.IntegerField(read_only=True, default=None)

    class Meta:
        model = RegisteredModel
        fields = ["name", "description", "tags", "owner", "created_at", "version_count"]
        read_only_fields = fields


class ModelCreateSerializer(StrictSerializer):
    name = serializers.RegexField(NAME)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    tags = serializers.ListField(child=serializers.RegexField(TAG_PATTERN), required=False, default=list, max_length=50)


class ModelUpdateSerializer(StrictSerializer):
    description = serializers.CharField(required=False, allow_blank=True)
    tags = serializers.ListField(child=serializers.RegexField(TAG_PATTERN), required=False, max_length=50)


class ModelVersionSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name")
    created_by = serializers.CharField(source="created_by.username")
    metrics = MetricSerializer(many=True)
    datasets = DatasetLinkSerializer(source="dataset_links", many=True)
    lineage_runs = LineageRunLinkSerializer(many=True, read_only=True)
    risk_tier = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "model", "version", "artifact_uri", "artifact_sha256", "framework", "signature", "params", "tags",
            "description", "status", "created_by", "created_at", "metrics", "datasets", "lineage_runs", "risk_tier",
        ]  # fmt: skip
        read_only_fields = fields

    def get_risk_tier(self, version) -> dict:
        card = getattr(version, "card", None)
        proposed = card.content.get("proposed_risk_tier", "") if card else ""
        confirmed = card.confirmed_risk_tier if card else ""
        return {"proposed": proposed, "confirmed": confirmed, "effective": confirmed or "high"}


class ModelVersionRegisterSerializer(StrictSerializer):
    artifact_uri = serializers.CharField(max_length=2000)
    artifact_sha256 = serializers.RegexField(SHA256, help_text="Lowercase hex SHA-256 of the artifact.")
    framework = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    signature = SignatureSerializer()
    params = serializers.DictField(required=False, default=None, allow_null=True)
    tags = serializers.ListField(child=serializers.RegexField(TAG_PATTERN), required=False, default=list, max_length=50)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    metrics = MetricInSerializer(many=True, required=False, default=list, max_length=1000)
    datasets = DatasetLinkInSerializer(many=True, required=False, default=list, max_length=1000)


class ModelVersionUpdateSerializer(StrictSerializer):
    description = serializers.CharField(required=False, allow_blank=True)
    tags = serializers.ListField(child=serializers.RegexField(TAG_PATTERN), required=False, max_length=50)


IMMUTABLE_VERSION_FIELDS = ("artifact_uri", "artifact_sha256", "signature", "params", "framework", "version")


class ConfirmationVoidedSerializer(serializers.Serializer):
    voided_at = serializers.DateTimeField(source="confirmation_voided_at")
    voided_by = serializers.CharField(source="confirmation_voided_by.username", default=None)
    confirmed_revision = serializers.IntegerField(source="confirmation_voided_revision")
    reason = serializers.CharField(source="confirmation_void_reason")


class ModelCardSerializer(serializers.ModelSerializer):
    model_version = serializers.SerializerMethodField()
    content = serializers.SerializerMethodField()
    filled = serializers.SerializerMethodField()
    missing = serializers.SerializerMethodField()
    proposed_risk_tier = serializers.SerializerMethodField()
    confirmed_by = serializers.CharField(source="confirmed_by.username", default=None)
    confirmation_voided = serializers.SerializerMethodField()
    effective_risk_tier = serializers.CharField()

    class Meta:
        model = ModelCard
        fields = [
            "model_version", "revision", "content", "content_hash", "filled", "missing", "proposed_risk_tier",
            "confirmed_risk_tier", "confirmed_revision", "confirmed_by", "confirmed_at", "confirmation_comment",
            "confirmation_voided", "effective_risk_tier", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_model_version(self, card) -> dict:
        version = card.model_version
        return {"model": version.model.name, "version": version.version}

    def get_content(self, card) -> dict:
        return {field: card.content.get(field, "") for field in MODEL_CARD_FIELDS}

    def get_filled(self, card) -> list[str]:
        return [field for field in MODEL_CARD_FIELDS if card.content.get(field) not in (None, "", [], {})]

    def get_missing(self, card) -> list[str]:
        return [field for field in MODEL_CARD_FIELDS if card.content.get(field) in (None, "", [], {})]

    def get_proposed_risk_tier(self, card) -> str:
        return card.content.get("proposed_risk_tier", "")

    @extend_schema_field(ConfirmationVoidedSerializer(allow_null=True))
    def get_confirmation_voided(self, card) -> dict | None:
        """The last confirmation a card edit voided, until the tier is confirmed again."""
        if card.confirmation_voided_at is None:
            return None
        return ConfirmationVoidedSerializer(card).data


def _card_field(field: str) -> serializers.Field:
    if field == "metrics_by_subgroup":
        return serializers.JSONField(required=False)
    if field == "proposed_risk_tier":
        return serializers.CharField(required=False, allow_blank=True, max_length=16)
    return serializers.CharField(required=False, allow_blank=True, max_length=20000)


ModelCardEditSerializer = type(
    "ModelCardEditSerializer",
    (StrictSerializer,),
    {field: _card_field(field) for field in MODEL_CARD_FIELDS},
)


class RiskTierConfirmSerializer(StrictSerializer):
    risk_tier = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="Default: the proposed tier."
    )
    comment = serializers.CharField(max_length=5000, help_text="Why this tier: required.")
    revision = serializers.IntegerField(
        required=False, default=None, allow_null=True, min_value=0,
        help_text="The card revision you reviewed; 409 if the card changed since. Default: the current one.",
    )  # fmt: skip


class ModelCardRevisionSerializer(serializers.Serializer):
    revision = serializers.IntegerField()
    content = serializers.JSONField()
    content_hash = serializers.CharField()
    author = serializers.CharField(source="author.username")
    created_at = serializers.DateTimeField()


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
        return selectors.model_list(principal=self.principal, project=self.project, filters=self.filters)

    @extend_schema(request=ModelCreateSerializer, responses={201: ModelSerializer})
    def post(self, request, project):
        data = _validated(request, ModelCreateSerializer)
        model = services.model_create(actor=self.principal, project=self.project, **data)
        return Response(self.get_serializer(model).data, status=status.HTTP_201_CREATED)


class ModelMixin:
    @cached_property
    def model(self):
        return selectors.model_get(principal=self.principal, project=self.project, name=self.kwargs["model"])


class ModelDetailView(ModelMixin, ProjectApiView):
    serializer_class = ModelSerializer

    def get(self, request, project, model):
        return Response(self.get_serializer(self.model).data)

    @extend_schema(request=ModelUpdateSerializer, responses={200: ModelSerializer})
    def patch(self, request, project, model):
        data = _validated(request, ModelUpdateSerializer)
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
        model = selectors.model_get(principal=self.principal, project=self.project, name=self.kwargs["model"])
        versions = selectors.model_version_list(principal=self.principal, model=model, filters=self.filters)
        return versions.order_by("version")

    @extend_schema(
        request=ModelVersionRegisterSerializer, responses={201: ModelVersionSerializer, 200: ModelVersionSerializer}
    )
    def post(self, request, project, model):
        """Register the next version (the model is created on first use). Repeating a registration with the
        same artifact hash answers 200 with the existing version."""
        if not re.match(NAME, model):
            raise serializers.ValidationError({"model": "Model names are letters, digits, '.', '_' and '-'."})
        data = _validated(request, ModelVersionRegisterSerializer)
        version, created = services.model_version_register(
            actor=self.principal, project=self.project, model_name=model, **data
        )
        version = selectors.model_version_get(principal=self.principal, model=version.model, version=version.version)
        return Response(
            self.get_serializer(version).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class VersionMixin(ModelMixin):
    @cached_property
    def version(self):
        return selectors.model_version_get(principal=self.principal, model=self.model, version=self.kwargs["version"])


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
        fresh = selectors.model_version_get(principal=self.principal, model=self.model, version=self.version.version)
        return Response(self.get_serializer(fresh).data)


class ModelVersionArchiveView(VersionMixin, ProjectApiView):
    serializer_class = ModelVersionSerializer

    @extend_schema(request=None, responses={200: ModelVersionSerializer})
    def post(self, request, project, model, version):
        services.model_version_archive(actor=self.principal, version=self.version)
        fresh = selectors.model_version_get(principal=self.principal, model=self.model, version=self.version.version)
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
    serializer_class = ModelCardSerializer

    def card(self) -> ModelCard:
        card = (
            ModelCard.objects.filter(model_version=self.version)
            .select_related("confirmed_by", "confirmation_voided_by")
            .first()
        )
        if card is None:  # not written yet: an empty card, so the client sees every field as missing
            card = ModelCard(model_version=self.version, content={})
        card.model_version = self.version
        return card

    def get(self, request, project, model, version):
        return Response(self.get_serializer(self.card()).data)

    def _edit(self, request, replace: bool):
        data = _validated(request, ModelCardEditSerializer)
        services.model_card_edit(actor=self.principal, version=self.version, fields=data, replace=replace)
        return Response(self.get_serializer(self.card()).data)

    @extend_schema(request=ModelCardEditSerializer, responses={200: ModelCardSerializer})
    def put(self, request, project, model, version):
        return self._edit(request, replace=True)

    @extend_schema(request=ModelCardEditSerializer, responses={200: ModelCardSerializer})
    def patch(self, request, project, model, version):
        return self._edit(request, replace=False)


class ModelCardHistoryView(VersionMixin, ProjectListApiView):
    serializer_class = ModelCardRevisionSerializer
    queryset = ModelCardRevision.objects.none()

    def scoped_queryset(self):
        revisions = ModelCardRevision.objects.filter(card__model_version=self.version)
        return revisions.select_related("author").order_by("revision")


class RiskTierConfirmView(VersionMixin, ProjectApiView):
    serializer_class = ModelCardSerializer

    @extend_schema(request=RiskTierConfirmSerializer, responses={200: ModelCardSerializer})
    def post(self, request, project, model, version):
        data = _validated(request, RiskTierConfirmSerializer)
        card = services.model_card_confirm_risk_tier(
            actor=self.principal, version=self.version, risk_tier=data["risk_tier"], comment=data["comment"],
            revision=data["revision"],
        )  # fmt: skip
        card.model_version = self.version
        return Response(self.get_serializer(card).data)
