"""The webhooks API: subscriptions, their deliveries, tests and redeliveries."""

from django.urls import path

from governance.accounts.api.base import PROJECT as project

from . import views

webhook = f"{project}webhooks/<int:pk>/"

urlpatterns = [
    path(f"{project}webhooks/", views.WebhookListView.as_view(), name="webhook-list"),
    path(webhook, views.WebhookDetailView.as_view(), name="webhook-detail"),
    path(f"{webhook}test/", views.WebhookTestView.as_view(), name="webhook-test"),
    path(f"{webhook}deliveries/", views.WebhookDeliveryListView.as_view(), name="webhook-delivery-list"),
    path(
        f"{webhook}deliveries/<int:delivery_id>/",
        views.WebhookDeliveryDetailView.as_view(),
        name="webhook-delivery-detail",
    ),
    path(
        f"{webhook}deliveries/<int:delivery_id>/redeliver/",
        views.WebhookRedeliverView.as_view(),
        name="webhook-delivery-redeliver",
    ),
]
