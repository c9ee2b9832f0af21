"""Serializers of the webhooks API: subscriptions (the secret shown once) and deliveries."""

from rest_framework import serializers

from controlplane.api.serializers import CachedFieldsModelSerializer
from governance.webhooks.models import Webhook, WebhookDelivery


class WebhookSerializer(CachedFieldsModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None)

    class Meta:
        model = Webhook
        fields = [
            "id",
            "url",
            "description",
            "actions",
            "active",
            "disabled_reason",
            "disabled_at",
            "consecutive_failures",
            "secret_hint",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.SerializerMethodField(
        help_text="The signing secret. Shown once, in this response; store it now."
    )

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]
        read_only_fields = fields

    def get_secret(self, webhook) -> str:
        return self.context["secret"]


class WebhookCreateSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2000, help_text="https:// target that receives the events.")
    actions = serializers.ListField(
        child=serializers.CharField(max_length=64), allow_empty=False, help_text="Audit actions to receive."
    )
    description = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    secret = serializers.CharField(
        required=False, write_only=True, help_text="Your own signing secret (generated when omitted)."
    )


class WebhookUpdateSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2000, required=False)
    actions = serializers.ListField(child=serializers.CharField(max_length=64), required=False)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    active = serializers.BooleanField(required=False, help_text="true switches a disabled webhook back on.")


class WebhookDeliverySerializer(CachedFieldsModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "delivery_id",
            "event_type",
            "is_test",
            "redelivery_of",
            "state",
            "attempts",
            "last_status_code",
            "last_error",
            "last_duration_ms",
            "created_at",
            "last_attempt_at",
            "next_attempt_at",
            "finished_at",
        ]
        read_only_fields = fields


class WebhookDeliveryDetailSerializer(WebhookDeliverySerializer):
    payload = serializers.JSONField(source="payload_json", read_only=True)

    class Meta(WebhookDeliverySerializer.Meta):
        fields = [*WebhookDeliverySerializer.Meta.fields, "payload", "last_response"]
        read_only_fields = fields
