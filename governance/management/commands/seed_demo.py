"""Demo data for `make run`: one project, a user per persona and a service account.

Safe to run again: it creates what is missing, sets fresh passwords and issues fresh demo keys (revoking
the previous ones), and prints every persona's credentials.
"""

import secrets

from django.core.management.base import BaseCommand
from django.db import transaction

from governance.access import Principal
from governance.audit import audit_record
from governance.models import ApiKey, Project, Role, RoleBinding, User
from governance.services.access import project_create, role_grant, service_account_create
from governance.services.api_keys import api_key_issue, api_key_revoke

PROJECT = "fraud-detection"
PERSONAS = [
    ("mlengineer", Role.ML_ENGINEER),
    ("officer", Role.GOVERNANCE_OFFICER),
    ("officer2", Role.GOVERNANCE_OFFICER),
    ("auditor", Role.AUDITOR),
    ("admin", Role.ADMIN),
]
SERVICE_ACCOUNT = "ci-pipeline"
DEMO_KEY_NAME = "demo"


class Command(BaseCommand):
    help = "Seed the demo project and print each persona's username, password and API key."

    @transaction.atomic
    def handle(self, *args, **options):
        system = Principal.system()
        credentials = []

        staff, _ = User.objects.get_or_create(username="staff", defaults={"is_staff": True, "is_superuser": True})
        credentials.append(self._reset(staff, "staff (creates projects and users)", project=None))

        users = {}
        for username, _role in PERSONAS:
            users[username], _ = User.objects.get_or_create(
                username=username, defaults={"email": f"{username}@example.org"}
            )

        project = Project.objects.filter(slug=PROJECT).first()
        if project is None:
            project = project_create(
                actor=Principal(staff),
                slug=PROJECT,
                name="Fraud detection",
                admin=users["admin"],
                description="Card-payment fraud scoring models.",
            )
        admin = Principal(users["admin"])
        for username, role in PERSONAS:
            if not RoleBinding.objects.active().filter(principal=users[username], project=project, role=role).exists():
                role_grant(
                    actor=system if username == "admin" else admin,
                    project=project,
                    principal=users[username],
                    role=role,
                )
            credentials.append(self._reset(users[username], role, project=project))

        account = User.objects.filter(username=f"{SERVICE_ACCOUNT}@{PROJECT}").first()
        if account is None:
            account, _, _ = service_account_create(
                actor=admin,
                project=project,
                name=SERVICE_ACCOUNT,
                role=Role.ML_ENGINEER,
                description="The training pipeline's CI job.",
            )
        credentials.append(self._reset(account, "service account (ml_engineer)", project=project, password=False))

        self._seed_data(project, users, account)

        self.stdout.write(f"\nDemo project '{PROJECT}' is ready. Personas:\n")
        for username, what, password, key in credentials:
            self.stdout.write(f"  {username:<28} {what}")
            if password:
                self.stdout.write(f"      password: {password}")
            self.stdout.write(f"      API key:  {key}")
        self.stdout.write("")

    def _seed_data(self, project: Project, users: dict, account: User) -> None:
        """Datasets, a model with two versions (one in production and monitored, one blocked), idempotent."""
        from ._demo_datasets import seed_datasets
        from ._demo_lineage import seed_lineage
        from ._demo_monitoring import seed_monitoring
        from ._demo_registry import MODEL, seed_registry, seed_workflow

        raw, training = seed_datasets(project, users["mlengineer"])
        model = project.models.filter(name=MODEL).first()
        if model is None:
            v1, v2 = seed_registry(
                project, pipeline=account, engineer=users["mlengineer"], officer=users["officer"], training=training
            )
        else:
            v1, v2 = model.versions.get(version=1), model.versions.get(version=2)
        for version in (v1, v2):  # the training runs, as the pipeline reports them through OpenLineage
            seed_lineage(project, account, version, [raw, training])
        seed_workflow(project, engineer=users["mlengineer"], officer=users["officer"], v1=v1, v2=v2)
        seed_monitoring(project, users["mlengineer"], v1, training, pipeline=account)

    def _reset(self, user: User, what: str, *, project: Project | None, password: bool = True):
        """A fresh password and a fresh demo key; earlier demo keys of this user are revoked."""
        system = Principal.system()
        new_password = None
        if password:
            new_password = secrets.token_urlsafe(9)
            user.set_password(new_password)
            user.save(update_fields=["password"])
            audit_record(action="user.password_set", actor=system, target=user, diff={"password": "new"})
        for old in ApiKey.objects.filter(owner=user, name=DEMO_KEY_NAME, revoked_at__isnull=True):
            api_key_revoke(actor=system, key=old)
        _, raw_key = api_key_issue(
            actor=system, owner=user, project=project, name=DEMO_KEY_NAME, read_only=False, expires_at=None
        )
        return user.username, what, new_password, raw_key
