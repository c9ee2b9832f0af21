from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """Monitors, batches, check runs and alerts (the Monitoring issues build it)."""

    name = "monitoring"
    verbose_name = "Monitoring"
