from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from controlplane.health import HealthView, ReadyView

handler400 = "controlplane.api.errors.handler400"
handler403 = "controlplane.api.errors.handler403"
handler404 = "controlplane.api.errors.handler404"
handler500 = "controlplane.api.errors.handler500"

PUBLIC_URL_NAMES = {"healthz", "readyz", "schema", "docs", "console:login"}

urlpatterns = [
    path("healthz", HealthView.as_view(), name="healthz"),
    path("readyz", ReadyView.as_view(), name="readyz"),
    path("api/schema/", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]), name="schema"),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="schema", authentication_classes=[], permission_classes=[]),
        name="docs",
    ),
    path("api/v1/", include("governance.urls")),
    path("api/v1/", include("monitoring.api.urls")),
    path("", include("governance.console.urls")),
]
