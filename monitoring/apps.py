from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """Monitors, batches, check runs and alerts; registers the ``check`` gate kind."""

    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self):
        # Deferred: registering the check gate imports models, which cannot load before the app registry is
        # ready (Django's start-up order); ready() is the documented place for it.
        from . import gates  # noqa: F401 - registers the check gate
