from django.apps import AppConfig


class ControlplaneConfig(AppConfig):
    name = "controlplane"
    verbose_name = "Tollgate control plane"

    def ready(self):
        from .api import schema  # noqa: F401 - registers the OpenAPI authentication extension
