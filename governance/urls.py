"""The API under ``/api/v1/``: each concern's ``api/urls.py`` (controlplane/urls.py includes this)."""

from django.urls import include, path

urlpatterns = [
    path("", include("governance.audit.api.urls")),
    path("", include("governance.accounts.api.urls")),
    path("", include("governance.registry.api.urls")),
    path("", include("governance.provenance.api.urls")),
    path("", include("governance.promotion.api.urls")),
    path("", include("governance.webhooks.api.urls")),
]
