"""Views of the accounts API: the caller, users, API keys, projects, members and service accounts."""

import django_filters
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from controlplane.exceptions import Forbidden
from governance.accounts import services as access_services
from governance.accounts import services as key_services
from governance.accounts.api.base import ApiView, ListApiView, ProjectApiView, ProjectListApiView
from governance.accounts.models import ApiKey, Project, Role, RoleBinding, User
from governance.accounts.selectors import (
    api_key_get,
    api_key_list,
    member_get,
    member_list,
    project_get,
    project_list,
    service_account_get,
    service_account_key_list,
    service_account_list,
    user_by_username,
    user_list,
)

from . import serializers as s


def _created(serializer_class, instance, **context):
    return Response(serializer_class(instance, context=context).data, status=status.HTTP_201_CREATED)


class ProjectListView(ListApiView):
    serializer_class = s.ProjectSerializer
    queryset = Project.objects.none()

    def scoped_queryset(self):
        return project_list(principal=self.principal)

    @extend_schema(request=s.ProjectCreateSerializer, responses={201: s.ProjectSerializer})
    def post(self, request):
        if not self.principal.is_staff:  # before any lookup, so non-staff learn nothing about usernames
            raise Forbidden("Only staff create projects.")
        data = self.validated(s.ProjectCreateSerializer)
        project = access_services.project_create(
            actor=self.principal,
            slug=data["slug"],
            name=data["name"],
            description=data["description"],
            admin=user_by_username(data["admin"], field="admin"),
        )
        return _created(s.ProjectSerializer, project, principal=self.principal)


class ProjectDetailView(ProjectApiView):
    serializer_class = s.ProjectSerializer

    def get(self, request, project):
        return Response(self.get_serializer(self.project).data)

    @extend_schema(request=s.ProjectUpdateSerializer, responses={200: s.ProjectSerializer})
    def patch(self, request, project):
        data = self.validated(s.ProjectUpdateSerializer)
        updated = access_services.project_update(
            actor=self.principal, project=self.project, name=data.get("name"), description=data.get("description")
        )
        return Response(self.get_serializer(updated).data)


class MemberFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(
        choices=[("active", "active"), ("all", "all")], help_text="`all` includes revoked and expired bindings."
    )
    principal = django_filters.CharFilter(help_text="A username.")
    role = django_filters.ChoiceFilter(choices=Role.choices)


class MemberListView(ProjectListApiView):
    serializer_class = s.RoleBindingSerializer
    queryset = RoleBinding.objects.none()
    filterset_class = MemberFilter

    def scoped_queryset(self):
        return member_list(principal=self.principal, project=self.project, filters=self.filters)

    @extend_schema(request=s.RoleGrantSerializer, responses={201: s.RoleBindingSerializer})
    def post(self, request, project):
        data = self.validated(s.RoleGrantSerializer)
        binding = access_services.role_grant(
            actor=self.principal,
            project=self.project,
            principal=user_by_username(data["principal"]),
            role=data["role"],
            expires_at=data["expires_at"],
        )
        return _created(s.RoleBindingSerializer, binding)


class MemberDetailView(ProjectApiView):
    serializer_class = s.RoleBindingSerializer

    def get(self, request, project, pk):
        binding = member_get(principal=self.principal, project=self.project, binding_id=pk)
        return Response(self.get_serializer(binding).data)


class MemberRevokeView(ProjectApiView):
    serializer_class = s.RoleBindingSerializer

    @extend_schema(request=None, responses={200: s.RoleBindingSerializer})
    def post(self, request, project, pk):
        binding = member_get(principal=self.principal, project=self.project, binding_id=pk)
        binding = access_services.role_revoke(actor=self.principal, binding=binding)
        return Response(self.get_serializer(binding).data)


class ServiceAccountListView(ProjectListApiView):
    serializer_class = s.ServiceAccountSerializer
    queryset = User.objects.none()

    def scoped_queryset(self):
        return service_account_list(principal=self.principal, project=self.project)

    @extend_schema(request=s.ServiceAccountCreateSerializer, responses={201: s.ServiceAccountCreatedSerializer})
    def post(self, request, project):
        data = self.validated(s.ServiceAccountCreateSerializer)
        account, key, raw_key = access_services.service_account_create(
            actor=self.principal,
            project=self.project,
            name=data["name"],
            role=data["role"],
            description=data["description"],
        )
        return _created(s.ServiceAccountCreatedSerializer, account, key=key, raw_key=raw_key)


class ServiceAccountDetailView(ProjectApiView):
    serializer_class = s.ServiceAccountSerializer

    def get(self, request, project, pk):
        account = service_account_get(principal=self.principal, project=self.project, account_id=pk)
        return Response(self.get_serializer(account).data)


class ServiceAccountKeyListView(ProjectListApiView):
    serializer_class = s.ApiKeySerializer
    queryset = ApiKey.objects.none()

    def account(self):
        return service_account_get(principal=self.principal, project=self.project, account_id=self.kwargs["pk"])

    def scoped_queryset(self):
        return service_account_key_list(principal=self.principal, account=self.account())

    @extend_schema(request=s.ServiceAccountKeyCreateSerializer, responses={201: s.ApiKeyCreatedSerializer})
    def post(self, request, project, pk):
        data = self.validated(s.ServiceAccountKeyCreateSerializer)
        key, raw_key = key_services.service_account_key_create(
            actor=self.principal, service_account=self.account(), **data
        )
        return _created(s.ApiKeyCreatedSerializer, key, raw_key=raw_key)


class ServiceAccountKeyRevokeView(ProjectApiView):
    serializer_class = s.ApiKeySerializer

    @extend_schema(request=None, responses={200: s.ApiKeySerializer})
    def post(self, request, project, pk, key_id):
        account = service_account_get(principal=self.principal, project=self.project, account_id=pk)
        key = get_object_or_404(service_account_key_list(principal=self.principal, account=account), pk=key_id)
        key = key_services.api_key_revoke(actor=self.principal, key=key)
        return Response(self.get_serializer(key).data)


class ApiKeyListView(ListApiView):
    serializer_class = s.ApiKeySerializer
    queryset = ApiKey.objects.none()

    def scoped_queryset(self):
        return api_key_list(principal=self.principal)

    @extend_schema(request=s.ApiKeyCreateSerializer, responses={201: s.ApiKeyCreatedSerializer})
    def post(self, request):
        data = self.validated(s.ApiKeyCreateSerializer)
        project: Project | None = None
        if data["project"]:
            project = project_get(principal=self.principal, slug=data["project"])
        key, raw_key = key_services.api_key_create(
            actor=self.principal,
            name=data["name"],
            project=project,
            read_only=data["read_only"],
            expires_at=data["expires_at"],
        )
        return _created(s.ApiKeyCreatedSerializer, key, raw_key=raw_key)


class ApiKeyDetailView(ApiView):
    serializer_class = s.ApiKeySerializer

    def get(self, request, pk):
        return Response(self.get_serializer(api_key_get(principal=self.principal, key_id=pk)).data)


class ApiKeyRevokeView(ApiView):
    serializer_class = s.ApiKeySerializer

    @extend_schema(request=None, responses={200: s.ApiKeySerializer})
    def post(self, request, pk):
        key = api_key_get(principal=self.principal, key_id=pk)
        return Response(self.get_serializer(key_services.api_key_revoke(actor=self.principal, key=key)).data)


class UserListView(ListApiView):
    serializer_class = s.UserSerializer
    queryset = User.objects.none()

    def scoped_queryset(self):
        return user_list(principal=self.principal)

    @extend_schema(request=s.UserCreateSerializer, responses={201: s.UserSerializer})
    def post(self, request):
        data = self.validated(s.UserCreateSerializer)
        return _created(s.UserSerializer, access_services.user_create(actor=self.principal, **data))


class MeView(ApiView):
    serializer_class = s.MeSerializer
    pagination_class = None

    def get(self, request):
        principal = self.principal
        projects = {p.slug: sorted(principal.roles(p)) for p in project_list(principal=principal)}
        body = {
            "username": principal.user.username,
            "is_staff": principal.is_staff,
            "service_account": principal.user.is_service_account,
            "key": principal.key,
            "projects": projects,
        }
        return Response(self.get_serializer(body).data)
