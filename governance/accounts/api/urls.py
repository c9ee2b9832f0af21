"""The accounts API: the caller, users, API keys, projects, members and service accounts."""

from django.urls import path

from . import views
from .base import PROJECT as project

urlpatterns = [
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
]
