from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """Monitors, batches, check runs and alerts; registers the ``check`` gate kind."""

    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self):
        from . import gates  # noqa: F401 - registers the check gate
