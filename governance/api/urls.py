from django.urls import path

from . import audit_verify, auditing, registry, views

project = "projects/<slug:project>/"
version = f"{project}models/<str:model>/versions/<int:version>/"

urlpatterns = [
    path(f"{project}audit-events/verify/", audit_verify.AuditVerifyView.as_view(), name="audit-verify"),
    path(
        f"{project}audit-events/verify/<int:pk>/",
        audit_verify.AuditVerificationDetailView.as_view(),
        name="audit-verification-detail",
    ),
    path(f"{project}audit-events/", auditing.AuditEventListView.as_view(), name="audit-event-list"),
    path(f"{project}audit-events/<int:sequence>/", auditing.AuditEventDetailView.as_view(), name="audit-event-detail"),
    path(f"{project}access-log/", auditing.AccessLogListView.as_view(), name="access-log-list"),
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
    path(f"{version}model-card/history/", registry.ModelCardHistoryView.as_view(), name="model-card-history"),
    path(
        f"{version}model-card/confirm-risk-tier/",
        registry.RiskTierConfirmView.as_view(),
        name="model-card-confirm-risk-tier",
    ),
]
