from django.urls import path

from governance.audit.api import views

project = "projects/<slug:project>/"

urlpatterns = [
    path(f"{project}audit-events/verify/", views.AuditVerifyView.as_view(), name="audit-verify"),
    path(
        f"{project}audit-events/verify/<int:pk>/",
        views.AuditVerificationDetailView.as_view(),
        name="audit-verification-detail",
    ),
    path(f"{project}audit-events/", views.AuditEventListView.as_view(), name="audit-event-list"),
    path(f"{project}audit-events/<int:sequence>/", views.AuditEventDetailView.as_view(), name="audit-event-detail"),
    path(f"{project}access-log/", views.AccessLogListView.as_view(), name="access-log-list"),
]
