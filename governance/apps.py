from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"

    def ready(self):
        # Deferred (Django's rule): these import models, which may load only once the app registry is ready.
        from governance.audit import db, receivers  # noqa: F401 - db and receivers connect their receivers
        from governance.promotion import receivers as promotion_receivers  # noqa: F401
        from governance.webhooks import receivers as webhooks_receivers  # noqa: F401
