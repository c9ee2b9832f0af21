"""The registry API: models, their versions, metrics, dataset links, model cards and PROV export."""

from django.urls import path

from governance.accounts.api.base import PROJECT as project

from . import views

VERSION = f"{project}models/<str:model>/versions/<int:version>/"
version = VERSION

urlpatterns = [
    path(f"{project}models/", views.ModelListView.as_view(), name="model-list"),
    path(f"{project}models/<str:model>/", views.ModelDetailView.as_view(), name="model-detail"),
    path(f"{project}models/<str:model>/versions/", views.ModelVersionListView.as_view(), name="model-version-list"),
    path(f"{version}", views.ModelVersionDetailView.as_view(), name="model-version-detail"),
    path(f"{version}archive/", views.ModelVersionArchiveView.as_view(), name="model-version-archive"),
    path(f"{version}metrics/", views.MetricListView.as_view(), name="model-version-metrics"),
    path(f"{version}datasets/", views.DatasetLinkListView.as_view(), name="model-version-datasets"),
    path(f"{version}model-card/", views.ModelCardView.as_view(), name="model-card"),
    path(f"{version}lineage.prov.json", views.ProvExportView.as_view(), name="model-version-prov"),
    path(f"{version}model-card/history/", views.ModelCardHistoryView.as_view(), name="model-card-history"),
]
