"""``projects/{p}/webhooks/``: outgoing event subscriptions and their delivery log (DESIGN §8).

Admins manage webhooks; admins and auditors read them and their deliveries. The signing secret is in the
creation response only."""

from functools import cached_property

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from governance.accounts.api.base import ProjectApiView, ProjectListApiView
from governance.webhooks import selectors, services
from governance.webhooks.api.serializers import (
    WebhookCreatedSerializer,
    WebhookCreateSerializer,
    WebhookDeliveryDetailSerializer,
    WebhookDeliverySerializer,
    WebhookSerializer,
    WebhookUpdateSerializer,
)
from governance.webhooks.models import Webhook, WebhookDelivery


class WebhookMixin:
    @cached_property
    def webhook(self) -> Webhook:
        return selectors.webhook_get(principal=self.principal, project=self.project, webhook_id=self.kwargs["pk"])


class WebhookListView(ProjectListApiView):
    serializer_class = WebhookSerializer
    queryset = Webhook.objects.none()

    def scoped_queryset(self):
        return selectors.webhook_list(principal=self.principal, project=self.project)

    @extend_schema(request=WebhookCreateSerializer, responses={201: WebhookCreatedSerializer})
    def post(self, request, project):
        data = self.validated(WebhookCreateSerializer)
        webhook, secret = services.webhook_create(actor=self.principal, project=self.project, **data)
        return Response(WebhookCreatedSerializer(webhook, context={"secret": secret}).data, status=201)


class WebhookDetailView(WebhookMixin, ProjectApiView):
    serializer_class = WebhookSerializer

    def get(self, request, project, pk):
        return Response(self.get_serializer(self.webhook).data)

    @extend_schema(request=WebhookUpdateSerializer, responses={200: WebhookSerializer})
    def patch(self, request, project, pk):
        data = self.validated(WebhookUpdateSerializer)
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
        return selectors.webhook_delivery_list(principal=self.principal, webhook=self.webhook, filters=self.filters)


class DeliveryMixin(WebhookMixin):
    def delivery(self) -> WebhookDelivery:
        return selectors.webhook_delivery_get(
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
