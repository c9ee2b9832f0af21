from django.contrib.auth import views as auth_views
from django.urls import path

from . import audit, deployments, lineage, views

app_name = "console"

P = "console/p/<slug:project>/"
VERSION = P + "models/<str:model>/versions/<int:version>/"
DEPLOYMENT = P + "deployments/<str:model>/<slug:environment>/"

urlpatterns = [
    path("", views.root, name="root"),
    path("console/login/", views.LoginView.as_view(), name="login"),
    path("console/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("console/", views.home, name="home"),
    path("console/queue/", views.queue, name="queue"),
    path(P + "models/", views.models, name="models"),
    path(P + "models/<str:model>/", views.model, name="model"),
    path(VERSION, views.version, name="version"),
    path(VERSION + "request/", views.version_request, name="version-request"),
    path(VERSION + "confirm-risk-tier/", views.version_confirm_tier, name="version-confirm-tier"),
    path(P + "requests/<int:pk>/approve/", views.request_approve, name="request-approve"),
    path(P + "requests/<int:pk>/reject/", views.request_reject, name="request-reject"),
    path(P + "requests/<int:pk>/withdraw/", views.request_withdraw, name="request-withdraw"),
    path(P + "requests/<int:pk>/execute/", views.request_execute, name="request-execute"),
    path(P + "policy/", views.policy, name="policy"),
    path(P + "policy/publish/", views.policy_publish, name="policy-publish"),
    path(P + "exceptions/grant/", views.exception_grant, name="exception-grant"),
    path(P + "exceptions/<int:pk>/revoke/", views.exception_revoke, name="exception-revoke"),
    path(P + "deployments/", deployments.deployments, name="deployments"),
    path(DEPLOYMENT, deployments.deployment, name="deployment"),
    path(DEPLOYMENT + "suspend/", deployments.deployment_suspend, name="deployment-suspend"),
    path(DEPLOYMENT + "resume/", deployments.deployment_resume, name="deployment-resume"),
    path(DEPLOYMENT + "run-check/", deployments.deployment_run_check, name="deployment-run-check"),
    path(
        DEPLOYMENT + "alerts/<int:pk>/acknowledge/",
        deployments.deployment_alert_acknowledge,
        name="deployment-alert-acknowledge",
    ),  # fmt: skip
    path(P + "lineage/", lineage.lineage_page, name="lineage"),
    path(P + "audit/", audit.audit, name="audit"),
    path(P + "audit/verify/", audit.audit_verify, name="audit-verify"),
    path(P + "audit/access-log/", audit.access_log, name="access-log"),
    # Last: any other console path is the console's own 404 page (for a person, not JSON).
    path("console/<path:rest>", views.not_found, name="not-found"),
]
