"""Serializers of the promotion API: environments, policies, exceptions, requests, decisions, the queue,
deployments and the enforcement point."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from controlplane.api.serializers import CachedFieldsModelSerializer, Sha256Field, StrictSerializer
from governance.promotion.gates import FAILED, PASSED, PENDING, WAIVED
from governance.promotion.models import (
    Decision,
    Deployment,
    DeploymentHistory,
    Environment,
    Policy,
    PolicyException,
    PromotionRequest,
    WaivableGate,
)
from governance.promotion.selectors import deployment_history_of
from governance.registry.models import RiskTier


class EnvironmentSerializer(CachedFieldsModelSerializer):
    default = serializers.BooleanField(source="is_default", read_only=True)

    class Meta:
        model = Environment
        fields = ["name", "kind", "description", "default", "created_at"]
        read_only_fields = fields


class EnvironmentCreateSerializer(StrictSerializer):
    name = serializers.SlugField(max_length=64)
    kind = serializers.ChoiceField(choices=["staging", "production"])
    description = serializers.CharField(required=False, allow_blank=True, default="")


class PolicySerializer(CachedFieldsModelSerializer):
    published_by = serializers.CharField(source="published_by.username", default=None)

    class Meta:
        model = Policy
        fields = ["version", "document", "document_hash", "comment", "published_by", "published_at"]
        read_only_fields = fields


class PolicyPublishSerializer(StrictSerializer):
    document = serializers.JSONField(required=False, help_text="The policy as JSON.")
    source = serializers.CharField(required=False, max_length=200_000, help_text="The policy as YAML or JSON text.")
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)

    def validate(self, data):
        if ("document" in data) == ("source" in data):
            raise serializers.ValidationError({"document": "Send either document (JSON) or source (YAML text)."})
        return data


class ExceptionSerializer(CachedFieldsModelSerializer):
    model = serializers.CharField(source="model_version.model.name")
    version = serializers.IntegerField(source="model_version.version")
    environment = serializers.CharField(source="environment.name")
    requested_by = serializers.CharField(source="requested_by.username")
    granted_by = serializers.CharField(source="granted_by.username")
    active = serializers.SerializerMethodField()

    class Meta:
        model = PolicyException
        fields = [
            "id", "name", "model", "version", "environment", "gate", "target", "justification", "requested_by",
            "granted_by", "granted_at", "expires_at", "revoked_at", "active",
        ]  # fmt: skip
        read_only_fields = fields

    def get_active(self, exception) -> bool:
        return exception.is_active()


class ExceptionGrantSerializer(StrictSerializer):
    model = serializers.CharField()
    version = serializers.IntegerField(min_value=1)
    environment = serializers.SlugField()
    gate = serializers.ChoiceField(choices=WaivableGate.choices)
    target = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    name = serializers.CharField(max_length=200)
    justification = serializers.CharField(max_length=10000)
    requested_by = serializers.CharField(help_text="Username of who asked for the waiver.")
    expires_at = serializers.DateTimeField()


class DecisionSerializer(CachedFieldsModelSerializer):
    reviewer = serializers.CharField(source="reviewer.username")
    valid = serializers.BooleanField(source="is_valid")

    class Meta:
        model = Decision
        fields = ["id", "reviewer", "outcome", "comment", "evidence_digest", "check_runs", "created_at", "valid",
                  "voided_at", "void_reason"]  # fmt: skip
        read_only_fields = fields


class PromotionRequestSerializer(CachedFieldsModelSerializer):
    project = serializers.CharField(source="project.slug")
    model = serializers.CharField(source="model_version.model.name")
    version = serializers.IntegerField(source="model_version.version")
    environment = serializers.CharField(source="environment.name")
    requested_by = serializers.CharField(source="requested_by.username")
    closed_by = serializers.CharField(source="closed_by.username", default=None)
    decisions = DecisionSerializer(many=True)

    class Meta:
        model = PromotionRequest
        fields = ["id", "project", "model", "version", "environment", "requested_by", "comment", "emergency",
                  "state", "created_at", "closed_at", "closed_by", "decisions"]  # fmt: skip
        read_only_fields = fields


UNCONFIRMED = "unconfirmed — counts as high"


class QueueRiskTierSerializer(serializers.Serializer):
    effective = serializers.ChoiceField(choices=RiskTier.choices, help_text="The tier the gates use.")
    confirmed = serializers.CharField(help_text="The tier a governance officer confirmed, if it counts; else empty.")
    label = serializers.CharField(help_text=f"The confirmed tier, or '{UNCONFIRMED}'.")
    note = serializers.CharField(help_text="Why a confirmation on the card does not count (voided, or its "
                                 "confirmer is excluded by separation of duties); else empty.")  # fmt: skip


class GateCountsSerializer(serializers.Serializer):
    passed = serializers.IntegerField()
    failed = serializers.IntegerField()
    pending = serializers.IntegerField()
    waived = serializers.IntegerField()


class GateSummarySerializer(serializers.Serializer):
    evaluated_at = serializers.DateTimeField(
        help_text="When these gates were evaluated: as this list was read, the same evaluation as the request's "
        "page (nothing stored). Execution evaluates them again."
    )
    policy_version = serializers.IntegerField()
    ready_to_execute = serializers.BooleanField()
    counts = GateCountsSerializer()
    failing_kinds = serializers.ListField(
        child=serializers.CharField(), help_text="The kinds of the gates that do not pass (failed or pending)."
    )


class QueueEntrySerializer(PromotionRequestSerializer):
    """A request with what an officer triages by: the risk tier and a summary of its gates (open requests)."""

    risk_tier = serializers.SerializerMethodField()
    gate_summary = serializers.SerializerMethodField()

    class Meta(PromotionRequestSerializer.Meta):
        fields = [*PromotionRequestSerializer.Meta.fields, "risk_tier", "gate_summary"]
        read_only_fields = fields

    @extend_schema_field(QueueRiskTierSerializer)
    def get_risk_tier(self, request) -> dict:
        evaluation = request.evaluation
        confirmed = evaluation.tier if evaluation.tier_confirmed else ""
        return {"effective": evaluation.tier, "confirmed": confirmed, "label": confirmed or UNCONFIRMED,
                "note": evaluation.confirmation_note}  # fmt: skip

    @extend_schema_field(GateSummarySerializer(allow_null=True))
    def get_gate_summary(self, request) -> dict | None:
        if request.state != PromotionRequest.State.OPEN:
            return None
        evaluation = request.evaluation
        counts = dict.fromkeys((PASSED, FAILED, PENDING, WAIVED), 0)
        for result in evaluation.results:
            counts[result.status] += 1
        failing = list(dict.fromkeys(result.kind for result in evaluation.failing))
        return GateSummarySerializer({
            "evaluated_at": evaluation.evaluated_at, "policy_version": evaluation.policy_version,
            "ready_to_execute": evaluation.passed, "counts": counts, "failing_kinds": failing,
        }).data  # fmt: skip


class PromotionRequestCreateSerializer(StrictSerializer):
    model = serializers.CharField()
    version = serializers.IntegerField(min_value=1)
    environment = serializers.SlugField()
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=10000)
    emergency = serializers.BooleanField(default=False)


class CommentSerializer(StrictSerializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=10000)


class DeploymentSerializer(CachedFieldsModelSerializer):
    model = serializers.CharField(source="model.name")
    environment = serializers.CharField(source="environment.name")
    version = serializers.IntegerField(source="model_version.version")
    artifact_uri = serializers.CharField(source="model_version.artifact_uri")
    artifact_sha256 = serializers.CharField(source="model_version.artifact_sha256")

    class Meta:
        model = Deployment
        fields = ["model", "environment", "version", "artifact_uri", "artifact_sha256", "state", "state_reason",
                  "updated_at"]  # fmt: skip
        read_only_fields = fields


class HistorySerializer(CachedFieldsModelSerializer):
    model = serializers.CharField(source="deployment.model.name")
    environment = serializers.CharField(source="deployment.environment.name")
    version = serializers.IntegerField(source="model_version.version")
    artifact_sha256 = serializers.CharField(source="model_version.artifact_sha256")
    executed_by = serializers.CharField(source="executed_by.username")

    class Meta:
        model = DeploymentHistory
        fields = ["model", "environment", "version", "artifact_sha256", "from_at", "to_at", "approvers",
                  "policy_version", "emergency", "request", "executed_by"]  # fmt: skip
        read_only_fields = fields


class DeploymentDetailSerializer(DeploymentSerializer):
    history = serializers.SerializerMethodField()

    class Meta(DeploymentSerializer.Meta):
        fields = [*DeploymentSerializer.Meta.fields, "history"]
        read_only_fields = fields

    def get_history(self, deployment) -> list[dict]:
        return HistorySerializer(deployment_history_of(deployment), many=True).data


class VerifySerializer(StrictSerializer):
    artifact_sha256 = Sha256Field()


class SuspendSerializer(StrictSerializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)


class RiskTierConfirmSerializer(StrictSerializer):
    risk_tier = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="Default: the proposed tier."
    )
    comment = serializers.CharField(max_length=5000, help_text="Why this tier: required.")
    revision = serializers.IntegerField(
        required=False, default=None, allow_null=True, min_value=0,
        help_text="The card revision you reviewed; 409 if the card changed since. Default: the current one.",
    )  # fmt: skip
