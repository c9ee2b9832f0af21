"""Demo data for `make run`: one project, a user per persona and a service account.

Safe to run again: it creates what is missing, sets fresh passwords and issues fresh demo keys (revoking
the previous ones), and prints every persona's credentials.

The terminal shows one progress line and then the credentials: what the seed logs goes to
``$TOLLGATE_VAR_DIR/seed_demo.log`` (in the embedded default the demo batches' checks and reports run in
process, and Celery logs some forty lines), and only warnings and errors reach the terminal too. With
``--serve`` (what ``make run`` does) the development server starts in the same process and prints the
credentials and the URLs, in place of runserver's banner, once it listens: the last lines on the screen.
"""

import contextlib
import logging
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles.management.commands.runserver import Command as RunserverCommand
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from governance.accounts.access import Principal
from governance.accounts.models import ApiKey, Project, Role, RoleBinding, User
from governance.accounts.services import (
    api_key_issue,
    api_key_revoke,
    project_create,
    role_grant,
    service_account_create,
)
from governance.audit.services import audit_record

from ._demo_datasets import seed_datasets
from ._demo_lineage import seed_lineage
from ._demo_monitoring import seed_monitoring
from ._demo_registry import MODEL, seed_registry, seed_second_model, seed_workflow

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
LOG_NAME = "seed_demo.log"


class Command(BaseCommand):
    help = "Seed the demo project and print each persona's username, password and API key."

    def add_arguments(self, parser):
        parser.add_argument(
            "--serve",
            metavar="ADDRPORT",
            help="Then run the development server on ADDRPORT (as runserver --noreload) and print the "
            "credentials and URLs once it listens.",
        )

    def handle(self, *args, serve=None, **options):
        log_path = Path(settings.VAR_DIR) / LOG_NAME
        self.stdout.write(f"Tollgate: seeding the demo data (its log: {_shown(log_path)}) ...")
        with _logs_to(log_path):
            with transaction.atomic():
                credentials = self._seed()
            # Leaving the transaction ran its on-commit work (the outbox), still logging to the file.
        if serve is None:
            self.stdout.write(_credentials_block(credentials))
            return
        server = _DemoServer(credentials, stdout=self.stdout._out, stderr=self.stderr._out)
        call_command(server, serve, use_reloader=False, skip_checks=True)

    def _seed(self) -> list[tuple[str, str, str | None, str]]:
        system = Principal.system()
        credentials = []

        staff, _ = User.objects.get_or_create(username="staff", defaults={"is_staff": True, "is_superuser": True})
        credentials.append(self._reset(staff, "staff", project=None))

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
        credentials.append(self._reset(account, "ml_engineer", project=project, password=False))

        self._seed_data(project, users, account)
        return credentials

    def _seed_data(self, project: Project, users: dict, account: User) -> None:
        """Datasets, a model with two versions (one in production and monitored, one blocked), a second model
        in production whose drifted batch suspends it, idempotent."""
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
        # The drifted demo batch goes to a second model: the default policy suspends its production deployment,
        # and fraud-gbm's, which the README's tour promotes and verifies, stays active.
        mobile = seed_second_model(
            project, pipeline=account, engineer=users["mlengineer"], officer=users["officer"], training=training
        )
        seed_lineage(project, account, mobile, [raw, training])
        seed_monitoring(project, users["mlengineer"], v1, training, pipeline=account, drifted_version=mobile)

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


def _credentials_block(credentials: list[tuple[str, str, str | None, str]], base_url: str | None = None) -> str:
    """Every persona's username, role, password and key, two lines each (and the URLs): some twenty lines in
    all, so a 24-line terminal shows them whole."""
    lines = [
        "",
        f"Demo project '{PROJECT}' is ready. The console takes a username and password,",
        "the API a key (Authorization: Bearer <key>). staff creates projects and users.",
    ]
    for username, role, password, key in credentials:
        login = f"password: {password}" if password else "(service account: a key, no password)"
        lines += [f"  {username:<28} {role:<19} {login}", f"      API key:  {key}"]
    if base_url:
        lines += [
            "",
            f"  console   {base_url}/console/",
            f"  API       {base_url}/api/v1/",
            f"  API docs  {base_url}/api/docs/",
        ]
    return "\n".join(lines)


class _DemoServer(RunserverCommand):
    """runserver whose start-up lines are the demo's credentials and URLs, printed once it listens."""

    def __init__(self, credentials, **kwargs):
        super().__init__(**kwargs)
        self.credentials = credentials

    def on_bind(self, server_port):
        host = f"[{self.addr}]" if self._raw_ipv6 else ("0.0.0.0" if self.addr == "0" else self.addr)
        self.stdout.write(_credentials_block(self.credentials, f"http://{host}:{server_port}"))
        self.stdout.write("A development server, not for production (see the README). Quit with CONTROL-C.")


@contextlib.contextmanager
def _logs_to(path: Path):
    """While the block runs, every log record also goes to ``path`` (overwritten), and the terminal's handlers
    pass only warnings and errors. Every logger of the seed (ours, Celery's, kombu's) propagates to the root."""
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    levels = {handler: handler.level for handler in root.handlers}
    to_file = logging.FileHandler(path, mode="w", encoding="utf-8")
    to_file.setFormatter(next((h.formatter for h in levels if h.formatter), None) or logging.Formatter())
    for handler in levels:
        handler.setLevel(max(handler.level, logging.WARNING))
    root.addHandler(to_file)
    try:
        yield
    finally:
        root.removeHandler(to_file)
        to_file.close()
        for handler, level in levels.items():
            handler.setLevel(level)


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it (``var/seed_demo.log``)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
