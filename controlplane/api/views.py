"""Base views: the caller as a ``Principal`` and the project of the URL, resolved inside the caller's scope."""

from functools import cached_property

from rest_framework import generics

from governance.access import Principal
from governance.models import Project
from governance.selectors import project_get


class PrincipalMixin:
    @cached_property
    def principal(self) -> Principal:
        return Principal.from_request(self.request)

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "principal": self.principal}


class ProjectMixin(PrincipalMixin):
    """For views under ``projects/{project}/``: 404 unless the caller holds a role there."""

    @cached_property
    def project(self) -> Project:
        return project_get(principal=self.principal, slug=self.kwargs["project"])


class ApiView(PrincipalMixin, generics.GenericAPIView):
    pass


class ProjectApiView(ProjectMixin, generics.GenericAPIView):
    pass
