"""What promotion does when the concerns below it announce a change (connected in the app's ``ready()``)."""

from django.dispatch import receiver

from governance.accounts.signals import project_created
from governance.registry.signals import version_evidence_changed

from .services import decisions_revalidate, project_bootstrap


@receiver(project_created)
def bootstrap_project(sender, project, actor, **kwargs):
    project_bootstrap(actor=actor, project=project)


@receiver(version_evidence_changed)
def revalidate_decisions(sender, version, actor, **kwargs):
    decisions_revalidate(version=version, actor=actor)
