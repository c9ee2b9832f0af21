"""Serializers of the registry API: models, versions, signatures, metrics, dataset links and model cards."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from controlplane.api.serializers import NAME, CachedFieldsModelSerializer, Sha256Field, StrictSerializer
from governance.provenance.models import DatasetRole, ModelVersionDataset
from governance.registry.models import (
    MODEL_CARD_FIELDS,
    Metric,
    ModelCard,
    ModelVersion,
    RegisteredModel,
    effective_risk_tier,
)

TAG_PATTERN = r"^[A-Za-z0-9._:=/-]{1,64}$"


TYPES = ["integer", "float", "string", "boolean", "datetime", "category"]


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


class MetricSerializer(CachedFieldsModelSerializer):
    class Meta:
        model = Metric
        fields = ["name", "value", "dataset_version", "subgroup", "created_at"]
        read_only_fields = fields


class DatasetLinkSerializer(CachedFieldsModelSerializer):
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


class ModelSerializer(CachedFieldsModelSerializer):
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


class ModelVersionSerializer(CachedFieldsModelSerializer):
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
        return {"proposed": proposed, "confirmed": confirmed, "effective": effective_risk_tier(confirmed)}


class ModelVersionRegisterSerializer(StrictSerializer):
    artifact_uri = serializers.CharField(max_length=2000)
    artifact_sha256 = Sha256Field(help_text="SHA-256 of the artifact, 64 hex characters (either case).")
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


class ModelCardSerializer(CachedFieldsModelSerializer):
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


class ModelCardRevisionSerializer(serializers.Serializer):
    revision = serializers.IntegerField()
    content = serializers.JSONField()
    content_hash = serializers.CharField()
    author = serializers.CharField(source="author.username")
    created_at = serializers.DateTimeField()
