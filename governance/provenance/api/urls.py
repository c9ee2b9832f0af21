"""The provenance API: datasets and their versions, OpenLineage ingest and the lineage graph."""

from django.urls import path

from governance.accounts.api.base import PROJECT as project

from . import views

dataset = f"{project}datasets/<int:pk>/"

urlpatterns = [
    path("lineage", views.LineageIngestView.as_view(), name="lineage-ingest"),
    path("lineage/", views.LineageView.as_view(), name="lineage"),
    path("lineage/batch/", views.LineageBatchView.as_view(), name="lineage-batch"),
    path(f"{project}datasets/", views.DatasetListView.as_view(), name="dataset-list"),
    path(dataset, views.DatasetDetailView.as_view(), name="dataset-detail"),
    path(f"{dataset}versions/", views.DatasetVersionListView.as_view(), name="dataset-version-list"),
    path(
        f"{dataset}versions/<int:version_id>/",
        views.DatasetVersionDetailView.as_view(),
        name="dataset-version-detail",
    ),
]
