from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"

    def ready(self):
        # Deferred (Django's rule): these import models, which may load only once the app registry is ready.
        from governance import signals  # noqa: F401 - connect the receivers
        from governance.audit import db, tasks  # noqa: F401 - db connects its receiver; tasks registers them
        from governance.audit.services import audit_listen
        from governance.webhooks.delivery import webhooks_enqueue

        audit_listen(webhooks_enqueue)  # webhooks hear of every project event, in its transaction
