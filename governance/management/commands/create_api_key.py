"""Issue an API key for a pipeline or a person, creating what is missing. The key is the last line printed."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from governance.accounts.access import Principal
from governance.accounts.models import Project, Role, RoleBinding, User
from governance.accounts.services import api_key_issue, project_create, role_grant


class Command(BaseCommand):
    help = "Create an API key for USER pinned to PROJECT with ROLE; create the user, project or role if missing."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True)
        parser.add_argument("--project", required=True, help="Project slug.")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--name", default="cli", help="A name for the key.")
        parser.add_argument("--read-only", action="store_true")

    @transaction.atomic
    def handle(self, *, user, project, role, name, read_only, **options):
        system = Principal.system()
        owner, created = User.objects.get_or_create(username=user, defaults={"password": "!"})
        if created:
            self.stderr.write(f"created user {user} (no password: keys only until one is set)")
        if owner.is_service_account and owner.service_project.slug != project:
            raise CommandError(f"{user} is a service account of another project.")
        target = Project.objects.filter(slug=project).first()
        if target is None:
            target = project_create(actor=system, slug=project, name=project, admin=owner)
            self.stderr.write(f"created project {project} with {user} as its admin")
        if not RoleBinding.objects.active().filter(principal=owner, project=target, role=role).exists():
            role_grant(actor=system, project=target, principal=owner, role=role)
            self.stderr.write(f"granted {role} in {project} to {user}")
        _, raw_key = api_key_issue(
            actor=system, owner=owner, project=target, name=name, read_only=read_only, expires_at=None
        )
        self.stdout.write(raw_key)
