from django.urls import include, path

from . import datasets, lineage, registry, views, webhooks, workflow

project = "projects/<slug:project>/"
version = f"{project}models/<str:model>/versions/<int:version>/"
deployment = f"{project}deployments/<str:model>/<slug:environment>/"

urlpatterns = [
    path("", include("governance.audit.api.urls")),
    path("me/", views.MeView.as_view(), name="me"),
    path("users/", views.UserListView.as_view(), name="user-list"),
    path("api-keys/", views.ApiKeyListView.as_view(), name="api-key-list"),
    path("api-keys/<int:pk>/", views.ApiKeyDetailView.as_view(), name="api-key-detail"),
    path("api-keys/<int:pk>/revoke/", views.ApiKeyRevokeView.as_view(), name="api-key-revoke"),
    path("projects/", views.ProjectListView.as_view(), name="project-list"),
    path(project, views.ProjectDetailView.as_view(), name="project-detail"),
    path(f"{project}members/", views.MemberListView.as_view(), name="member-list"),
    path(f"{project}members/<int:pk>/", views.MemberDetailView.as_view(), name="member-detail"),
    path(f"{project}members/<int:pk>/revoke/", views.MemberRevokeView.as_view(), name="member-revoke"),
    path(f"{project}service-accounts/", views.ServiceAccountListView.as_view(), name="service-account-list"),
    path(
        f"{project}service-accounts/<int:pk>/", views.ServiceAccountDetailView.as_view(), name="service-account-detail"
    ),
    path(
        f"{project}service-accounts/<int:pk>/keys/",
        views.ServiceAccountKeyListView.as_view(),
        name="service-account-key-list",
    ),
    path(
        f"{project}service-accounts/<int:pk>/keys/<int:key_id>/revoke/",
        views.ServiceAccountKeyRevokeView.as_view(),
        name="service-account-key-revoke",
    ),
    path(f"{project}models/", registry.ModelListView.as_view(), name="model-list"),
    path(f"{project}models/<str:model>/", registry.ModelDetailView.as_view(), name="model-detail"),
    path(f"{project}models/<str:model>/versions/", registry.ModelVersionListView.as_view(), name="model-version-list"),
    path(f"{version}", registry.ModelVersionDetailView.as_view(), name="model-version-detail"),
    path(f"{version}archive/", registry.ModelVersionArchiveView.as_view(), name="model-version-archive"),
    path(f"{version}metrics/", registry.MetricListView.as_view(), name="model-version-metrics"),
    path(f"{version}datasets/", registry.DatasetLinkListView.as_view(), name="model-version-datasets"),
    path(f"{version}model-card/", registry.ModelCardView.as_view(), name="model-card"),
    path(f"{version}lineage.prov.json", lineage.ProvExportView.as_view(), name="model-version-prov"),
    path("lineage", lineage.LineageIngestView.as_view(), name="lineage-ingest"),
    path("lineage/", lineage.LineageView.as_view(), name="lineage"),
    path("lineage/batch/", lineage.LineageBatchView.as_view(), name="lineage-batch"),
    path(f"{version}model-card/history/", registry.ModelCardHistoryView.as_view(), name="model-card-history"),
    path(
        f"{version}model-card/confirm-risk-tier/",
        registry.RiskTierConfirmView.as_view(),
        name="model-card-confirm-risk-tier",
    ),
]

dataset = f"{project}datasets/<int:pk>/"
urlpatterns += [
    path(f"{project}datasets/", datasets.DatasetListView.as_view(), name="dataset-list"),
    path(dataset, datasets.DatasetDetailView.as_view(), name="dataset-detail"),
    path(f"{dataset}versions/", datasets.DatasetVersionListView.as_view(), name="dataset-version-list"),
    path(
        f"{dataset}versions/<int:version_id>/",
        datasets.DatasetVersionDetailView.as_view(),
        name="dataset-version-detail",
    ),
    path(f"{version}gates/", workflow.GateEvaluationView.as_view(), name="gate-evaluation"),
    path(f"{project}environments/", workflow.EnvironmentListView.as_view(), name="environment-list"),
    path(f"{project}environments/<slug:name>/", workflow.EnvironmentDetailView.as_view(), name="environment-detail"),
    path(f"{project}policies/", workflow.PolicyListView.as_view(), name="policy-list"),
    path(f"{project}policies/<str:version>/", workflow.PolicyDetailView.as_view(), name="policy-detail"),
    path(f"{project}exceptions/", workflow.ExceptionListView.as_view(), name="exception-list"),
    path(f"{project}exceptions/<int:pk>/revoke/", workflow.ExceptionRevokeView.as_view(), name="exception-revoke"),
    path("promotion-requests/", workflow.OfficerQueueView.as_view(), name="promotion-queue"),
    path(f"{project}promotion-requests/", workflow.PromotionRequestListView.as_view(), name="promotion-list"),
    path(
        f"{project}promotion-requests/<int:pk>/", workflow.PromotionRequestDetailView.as_view(), name="promotion-detail"
    ),
    path(f"{project}promotion-requests/<int:pk>/approve/", workflow.ApproveView.as_view(), name="promotion-approve"),
    path(f"{project}promotion-requests/<int:pk>/reject/", workflow.RejectView.as_view(), name="promotion-reject"),
    path(f"{project}promotion-requests/<int:pk>/withdraw/", workflow.WithdrawView.as_view(), name="promotion-withdraw"),
    path(f"{project}promotion-requests/<int:pk>/execute/", workflow.ExecuteView.as_view(), name="promotion-execute"),
    path(f"{project}deployments/", workflow.DeploymentListView.as_view(), name="deployment-list"),
    path(f"{project}deployments/history/", workflow.DeploymentHistoryView.as_view(), name="deployment-history"),
    path(f"{deployment}", workflow.DeploymentDetailView.as_view(), name="deployment-detail"),
    path(f"{deployment}verify/", workflow.DeploymentVerifyView.as_view(), name="deployment-verify"),
    path(f"{deployment}suspend/", workflow.SuspendView.as_view(), name="deployment-suspend"),
    path(f"{deployment}resume/", workflow.ResumeView.as_view(), name="deployment-resume"),
]

webhook = f"{project}webhooks/<int:pk>/"
urlpatterns += [
    path(f"{project}webhooks/", webhooks.WebhookListView.as_view(), name="webhook-list"),
    path(webhook, webhooks.WebhookDetailView.as_view(), name="webhook-detail"),
    path(f"{webhook}test/", webhooks.WebhookTestView.as_view(), name="webhook-test"),
    path(f"{webhook}deliveries/", webhooks.WebhookDeliveryListView.as_view(), name="webhook-delivery-list"),
    path(
        f"{webhook}deliveries/<int:delivery_id>/",
        webhooks.WebhookDeliveryDetailView.as_view(),
        name="webhook-delivery-detail",
    ),
    path(
        f"{webhook}deliveries/<int:delivery_id>/redeliver/",
        webhooks.WebhookRedeliverView.as_view(),
        name="webhook-delivery-redeliver",
    ),
]
