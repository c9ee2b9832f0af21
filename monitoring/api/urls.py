"""Monitoring routes under ``/api/v1/projects/{p}/`` (included from controlplane/urls.py)."""

from django.urls import path

from monitoring.api import views

project = "projects/<slug:project>/"

urlpatterns = [
    path(f"{project}monitors/", views.MonitorListView.as_view(), name="monitor-list"),
    path(f"{project}monitors/<int:pk>/", views.MonitorDetailView.as_view(), name="monitor-detail"),
    path(f"{project}monitors/<int:pk>/series/", views.MonitorSeriesView.as_view(), name="monitor-series"),
    path(f"{project}batches/", views.BatchListView.as_view(), name="batch-list"),
    path(f"{project}batches/<int:pk>/", views.BatchDetailView.as_view(), name="batch-detail"),
    path(f"{project}batches/<int:pk>/labels/", views.BatchLabelsView.as_view(), name="batch-labels"),
    path(f"{project}batches/<int:pk>/download/", views.BatchDownloadView.as_view(), name="batch-download"),
    path(
        f"{project}datasets/<int:pk>/versions/<int:version_id>/download/",
        views.DatasetVersionDownloadView.as_view(),
        name="dataset-version-download",
    ),
    path(f"{project}data-policy/", views.DataPolicyView.as_view(), name="data-policy"),
    path(f"{project}check-runs/", views.CheckRunListView.as_view(), name="check-run-list"),
    path(f"{project}check-runs/<int:pk>/", views.CheckRunDetailView.as_view(), name="check-run-detail"),
    path(
        f"{project}check-runs/<int:pk>/report.html",
        views.CheckRunReportHtmlView.as_view(),
        name="check-run-report-html",
    ),
    path(
        f"{project}check-runs/<int:pk>/report.json",
        views.CheckRunReportJsonView.as_view(),
        name="check-run-report-json",
    ),
    path(f"{project}alerts/", views.AlertListView.as_view(), name="alert-list"),
    path(f"{project}alerts/<int:pk>/acknowledge/", views.AlertAcknowledgeView.as_view(), name="alert-acknowledge"),
]
