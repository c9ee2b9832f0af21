"""``projects/{p}/webhooks/``: outgoing event subscriptions and their delivery log (DESIGN §8).

Admins manage webhooks; admins and auditors read them and their deliveries. The signing secret is in the
creation response only."""

from functools import cached_property

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from governance.accounts.api.base import ProjectApiView, ProjectListApiView
from governance.models import Webhook, WebhookDelivery
from governance.services import webhooks as services


class WebhookSerializer(serializers.ModelSerializer):
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


class WebhookDeliverySerializer(serializers.ModelSerializer):
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


def _validated(request, serializer_class):
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class WebhookMixin:
    @cached_property
    def webhook(self) -> Webhook:
        return services.webhook_get(principal=self.principal, project=self.project, webhook_id=self.kwargs["pk"])


class WebhookListView(ProjectListApiView):
    serializer_class = WebhookSerializer
    queryset = Webhook.objects.none()

    def scoped_queryset(self):
        return services.webhook_list(principal=self.principal, project=self.project)

    @extend_schema(request=WebhookCreateSerializer, responses={201: WebhookCreatedSerializer})
    def post(self, request, project):
        data = _validated(request, WebhookCreateSerializer)
        webhook, secret = services.webhook_create(actor=self.principal, project=self.project, **data)
        return Response(WebhookCreatedSerializer(webhook, context={"secret": secret}).data, status=201)


class WebhookDetailView(WebhookMixin, ProjectApiView):
    serializer_class = WebhookSerializer

    def get(self, request, project, pk):
        return Response(self.get_serializer(self.webhook).data)

    @extend_schema(request=WebhookUpdateSerializer, responses={200: WebhookSerializer})
    def patch(self, request, project, pk):
        data = _validated(request, WebhookUpdateSerializer)
        webhook = services.webhook_update(actor=self.principal, webhook=self.webhook, **data)
        return Response(self.get_serializer(webhook).data)

    @extend_schema(responses={204: None})
    def delete(self, request, project, pk):
        services.webhook_delete(actor=self.principal, webhook=self.webhook)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookTestView(WebhookMixin, ProjectApiView):
    serializer_class = WebhookDeliverySerializer

    @extend_schema(request=None, responses={202: WebhookDeliverySerializer})
    def post(self, request, project, pk):
        delivery = services.webhook_test(actor=self.principal, webhook=self.webhook)
        return Response(self.get_serializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class WebhookDeliveryFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=WebhookDelivery.State.choices)
    event_type = django_filters.CharFilter(help_text="An audit action, e.g. `promotion.approved`.")


class WebhookDeliveryListView(WebhookMixin, ProjectListApiView):
    serializer_class = WebhookDeliverySerializer
    queryset = WebhookDelivery.objects.none()
    filterset_class = WebhookDeliveryFilter

    def scoped_queryset(self):
        return services.webhook_delivery_list(principal=self.principal, webhook=self.webhook, filters=self.filters)


class DeliveryMixin(WebhookMixin):
    def delivery(self) -> WebhookDelivery:
        return services.webhook_delivery_get(
            principal=self.principal, webhook=self.webhook, delivery_id=self.kwargs["delivery_id"]
        )


class WebhookDeliveryDetailView(DeliveryMixin, ProjectApiView):
    serializer_class = WebhookDeliveryDetailSerializer

    def get(self, request, project, pk, delivery_id):
        return Response(self.get_serializer(self.delivery()).data)


class WebhookRedeliverView(DeliveryMixin, ProjectApiView):
    serializer_class = WebhookDeliverySerializer

    @extend_schema(request=None, responses={202: WebhookDeliverySerializer})
    def post(self, request, project, pk, delivery_id):
        delivery = services.webhook_redeliver(actor=self.principal, delivery=self.delivery())
        return Response(self.get_serializer(delivery).data, status=status.HTTP_202_ACCEPTED)
