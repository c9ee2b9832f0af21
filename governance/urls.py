"""The API under ``/api/v1/``: each concern's ``api/urls.py`` (controlplane/urls.py includes this)."""

from django.urls import include, path

# Django tries the patterns in order: the paths that pipelines and deployment systems call on every run (the
# enforcement point, the registry) come first. No path matches patterns of two concerns, so the order decides nothing
# else (tests/controlplane/test_url_order.py).
urlpatterns = [
    path("", include("governance.promotion.api.urls")),
    path("", include("governance.registry.api.urls")),
    path("", include("governance.accounts.api.urls")),
    path("", include("governance.audit.api.urls")),
    path("", include("governance.provenance.api.urls")),
    path("", include("governance.webhooks.api.urls")),
]
