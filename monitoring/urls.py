"""Monitoring routes under ``/api/v1/projects/{p}/`` (included from controlplane/urls.py)."""

from django.urls import path

from . import api

project = "projects/<slug:project>/"

urlpatterns = [
    path(f"{project}monitors/", api.MonitorListView.as_view(), name="monitor-list"),
    path(f"{project}monitors/<int:pk>/", api.MonitorDetailView.as_view(), name="monitor-detail"),
    path(f"{project}monitors/<int:pk>/series/", api.MonitorSeriesView.as_view(), name="monitor-series"),
    path(f"{project}batches/", api.BatchListView.as_view(), name="batch-list"),
    path(f"{project}batches/<int:pk>/", api.BatchDetailView.as_view(), name="batch-detail"),
    path(f"{project}batches/<int:pk>/labels/", api.BatchLabelsView.as_view(), name="batch-labels"),
    path(f"{project}batches/<int:pk>/download/", api.BatchDownloadView.as_view(), name="batch-download"),
    path(
        f"{project}datasets/<int:pk>/versions/<int:version_id>/download/",
        api.DatasetVersionDownloadView.as_view(),
        name="dataset-version-download",
    ),
    path(f"{project}data-policy/", api.DataPolicyView.as_view(), name="data-policy"),
    path(f"{project}check-runs/", api.CheckRunListView.as_view(), name="check-run-list"),
    path(f"{project}check-runs/<int:pk>/", api.CheckRunDetailView.as_view(), name="check-run-detail"),
    path(
        f"{project}check-runs/<int:pk>/report.html", api.CheckRunReportHtmlView.as_view(), name="check-run-report-html"
    ),
    path(
        f"{project}check-runs/<int:pk>/report.json", api.CheckRunReportJsonView.as_view(), name="check-run-report-json"
    ),
    path(f"{project}alerts/", api.AlertListView.as_view(), name="alert-list"),
    path(f"{project}alerts/<int:pk>/acknowledge/", api.AlertAcknowledgeView.as_view(), name="alert-acknowledge"),
]
