"""Base views: the caller as a ``Principal`` and the project of the URL, resolved inside the caller's scope."""

from functools import cached_property

from rest_framework import generics, mixins

from controlplane.api.filters import query_filters
from governance.accounts.access import Principal
from governance.accounts.models import Project
from governance.accounts.selectors import project_get

PROJECT = "projects/<slug:project>/"  # the prefix of every project-scoped path


class PrincipalMixin:
    filterset_class = None  # a django-filter FilterSet: the query parameters the view takes (filters.py)

    @cached_property
    def principal(self) -> Principal:
        return Principal.from_request(self.request)

    @cached_property
    def filters(self) -> dict:
        """The cleaned values of the query string's filters, for the selector; 400 naming an unknown
        parameter or an invalid value."""
        return query_filters(self)

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "principal": self.principal}

    def validated(self, serializer_class, data=None) -> dict:
        """The request's body (or ``data``) as ``serializer_class`` validates it; a 400 naming each bad field."""
        serializer = serializer_class(data=self.request.data if data is None else data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


class ProjectMixin(PrincipalMixin):
    """For views under ``projects/{project}/``: 404 unless the caller holds a role there."""

    @cached_property
    def project(self) -> Project:
        return project_get(principal=self.principal, slug=self.kwargs["project"])


class ApiView(PrincipalMixin, generics.GenericAPIView):
    pass


class ProjectApiView(ProjectMixin, generics.GenericAPIView):
    pass


class ListMixin(mixins.ListModelMixin):
    """GET lists ``scoped_queryset()``, which passes ``self.filters`` (the checked query string) to its
    selector, paginated (and documented as a page of results).

    Each list view sets ``queryset = Model.objects.none()``: the schema generator, which has no caller and
    no project, reads the model from it."""

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        self.filters  # noqa: B018 -- the query string is checked before any lookup
        return self.scoped_queryset()

    def filter_queryset(self, queryset):
        return queryset  # the selector applied ``self.filters``

    def scoped_queryset(self):
        raise NotImplementedError

    def get(self, request, *args, **kwargs):
        return self.list(request, *args, **kwargs)


class ListApiView(ListMixin, ApiView):
    pass


class ProjectListApiView(ListMixin, ProjectApiView):
    pass
