"""The promotion API: gates, environments, policies, exceptions, promotion requests and their decisions,
deployments and the enforcement point."""

from django.urls import path

from governance.accounts.api.base import PROJECT as project
from governance.registry.api.urls import VERSION as version

from . import views

deployment = f"{project}deployments/<str:model>/<slug:environment>/"

urlpatterns = [
    # The enforcement point first: deployment systems ask it before every rollout (governance/urls.py).
    path(f"{deployment}", views.DeploymentDetailView.as_view(), name="deployment-detail"),
    path(f"{deployment}verify/", views.DeploymentVerifyView.as_view(), name="deployment-verify"),
    path(
        f"{version}model-card/confirm-risk-tier/",
        views.RiskTierConfirmView.as_view(),
        name="model-card-confirm-risk-tier",
    ),
    path(f"{version}gates/", views.GateEvaluationView.as_view(), name="gate-evaluation"),
    path(f"{project}environments/", views.EnvironmentListView.as_view(), name="environment-list"),
    path(f"{project}environments/<slug:name>/", views.EnvironmentDetailView.as_view(), name="environment-detail"),
    path(f"{project}policies/", views.PolicyListView.as_view(), name="policy-list"),
    path(f"{project}policies/<str:version>/", views.PolicyDetailView.as_view(), name="policy-detail"),
    path(f"{project}exceptions/", views.ExceptionListView.as_view(), name="exception-list"),
    path(f"{project}exceptions/<int:pk>/revoke/", views.ExceptionRevokeView.as_view(), name="exception-revoke"),
    path("promotion-requests/", views.OfficerQueueView.as_view(), name="promotion-queue"),
    path(f"{project}promotion-requests/", views.PromotionRequestListView.as_view(), name="promotion-list"),
    path(f"{project}promotion-requests/<int:pk>/", views.PromotionRequestDetailView.as_view(), name="promotion-detail"),
    path(f"{project}promotion-requests/<int:pk>/approve/", views.ApproveView.as_view(), name="promotion-approve"),
    path(f"{project}promotion-requests/<int:pk>/reject/", views.RejectView.as_view(), name="promotion-reject"),
    path(f"{project}promotion-requests/<int:pk>/withdraw/", views.WithdrawView.as_view(), name="promotion-withdraw"),
    path(f"{project}promotion-requests/<int:pk>/execute/", views.ExecuteView.as_view(), name="promotion-execute"),
    path(f"{project}deployments/", views.DeploymentListView.as_view(), name="deployment-list"),
    path(f"{project}deployments/history/", views.DeploymentHistoryView.as_view(), name="deployment-history"),
    path(f"{deployment}suspend/", views.SuspendView.as_view(), name="deployment-suspend"),
    path(f"{deployment}resume/", views.ResumeView.as_view(), name="deployment-resume"),
]
