"""The processes' database role (deploy/db-roles.sql) cannot switch audit immutability off.

Each test runs the deploy script against the test database for a runtime role of its own (roles are
cluster-wide, so the name is random and the role is dropped afterwards) and connects as that role.
"""

import json
import os
import secrets
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from psycopg import errors, sql

from governance.accounts.access import Principal
from governance.audit.chain import verify_chain
from governance.audit.models import AuditEvent, chain_of
from governance.provenance.models import LineageEvent
from tests.governance.provenance.lineage_events import dataset, ingest, run_event

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "deploy" / "db-roles.sql"
APPEND_ONLY = {"governance_auditevent": "audit", "governance_lineageevent": "lineage_event"}
IN_CI = os.environ.get("CI", "").lower() == "true"


def _test_database() -> dict:
    db = connection.settings_dict
    return {"host": db["HOST"] or "127.0.0.1", "port": db["PORT"] or 5432, "dbname": db["NAME"]}


class RuntimeRole:
    def __init__(self, name: str, password_file: Path):
        self.name = name
        self.password_file = password_file
        self.password = secrets.token_urlsafe(16)
        password_file.write_text(self.password + "\n")

    def run_deploy_script(self) -> subprocess.CompletedProcess:
        """``psql -f deploy/db-roles.sql`` as the test database's owner, for this role."""
        db = connection.settings_dict
        database = _test_database()
        env = {**os.environ, "PGHOST": database["host"], "PGPORT": str(database["port"])}
        env.update(PGDATABASE=database["dbname"], PGUSER=db["USER"], PGPASSWORD=db["PASSWORD"] or "")
        return subprocess.run(
            [
                *("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", f"app_role={self.name}"),
                *("-v", f"app_password_file={self.password_file}", "-f", str(SCRIPT)),
            ],
            env=env,
            capture_output=True,
            text=True,
        )

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(**_test_database(), user=self.name, password=self.password, autocommit=True)

    @property
    def url(self) -> str:
        db = _test_database()
        return f"postgres://{self.name}:{self.password}@{db['host']}:{db['port']}/{db['dbname']}"


@pytest.fixture
def runtime_role(transactional_db, tmp_path):
    if shutil.which("psql") is None:
        (pytest.fail if IN_CI else pytest.skip)("needs psql to run deploy/db-roles.sql")
    role = RuntimeRole(f"tollgate_test_app_{secrets.token_hex(4)}", tmp_path / "app_database_password")
    try:
        for _ in range(2):  # the second run finds everything in place: the script is safe to run again
            result = role.run_deploy_script()
            assert result.returncode == 0, result.stderr
        yield role
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                sql.SQL("DROP OWNED BY {0}; DROP ROLE IF EXISTS {0}").format(sql.Identifier(role.name)).as_string(None)
            )


@pytest.fixture
def events(project, ml_engineer):
    """An audit event and a lineage event, committed."""
    ingest(Principal(ml_engineer), project, run_event("train", inputs=[dataset("transactions")]))
    return {
        "governance_auditevent": AuditEvent.objects.filter(project=project).first().pk,
        "governance_lineageevent": LineageEvent.objects.get(project=project).pk,
    }


def _snapshot(table: str) -> list:
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("SELECT * FROM {} ORDER BY id").format(sql.Identifier(table)).as_string(None))
        return cursor.fetchall()


def _triggers_enabled(table: str) -> set:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal", [table]
        )
        return set(cursor.fetchall())


def _password_hash(role: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", [role])
        return cursor.fetchone()[0]


def _grant(privileges: str, table: str, role: str) -> None:
    with connection.cursor() as cursor:
        statement = sql.SQL(f"GRANT {privileges} ON {{}} TO {{}}").format(sql.Identifier(table), sql.Identifier(role))
        cursor.execute(statement.as_string(None))


def _changes(table: str, pk: int) -> dict:
    column = "client_address" if table == "governance_auditevent" else "event_type"
    return {
        "UPDATE": sql.SQL("UPDATE {} SET {} = 'forged' WHERE id = {}").format(
            sql.Identifier(table), sql.Identifier(column), sql.Literal(pk)
        ),
        "DELETE": sql.SQL("DELETE FROM {} WHERE id = {}").format(sql.Identifier(table), sql.Literal(pk)),
        "TRUNCATE": sql.SQL("TRUNCATE {} CASCADE").format(sql.Identifier(table)),
    }


@pytest.mark.parametrize("table", APPEND_ONLY)
def test_the_runtime_role_cannot_disable_the_triggers(runtime_role, events, table):
    before = _triggers_enabled(table)
    with runtime_role.connect() as conn, pytest.raises(errors.InsufficientPrivilege, match="must be owner"):
        conn.execute(
            sql.SQL("ALTER TABLE {} DISABLE TRIGGER {}").format(
                sql.Identifier(table), sql.Identifier(f"{APPEND_ONLY[table]}_append_only_rows")
            )
        )
    enabled = {(f"{APPEND_ONLY[table]}_append_only_{kind}", "O") for kind in ("rows", "truncate")}
    assert before == _triggers_enabled(table) == enabled


def test_the_runtime_role_cannot_turn_triggers_off_for_its_session(runtime_role):
    with runtime_role.connect() as conn:
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("SET session_replication_role = replica")
        assert conn.execute("SHOW session_replication_role").fetchone() == ("origin",)


@pytest.mark.parametrize("verb", ["UPDATE", "DELETE", "TRUNCATE"])
@pytest.mark.parametrize("table", APPEND_ONLY)
def test_the_runtime_role_cannot_change_events_even_in_maintenance_mode(runtime_role, events, table, verb):
    before = _snapshot(table)
    with runtime_role.connect() as conn:
        conn.execute("SELECT set_config('tollgate.audit_maintenance', 'on', false)")
        with pytest.raises(errors.InsufficientPrivilege, match="permission denied"):
            conn.execute(_changes(table, events[table])[verb])
    assert _snapshot(table) == before


@pytest.mark.parametrize("verb", ["UPDATE", "DELETE", "TRUNCATE"])
@pytest.mark.parametrize("table", APPEND_ONLY)
def test_the_triggers_ignore_maintenance_mode_for_a_role_that_is_not_the_owner(runtime_role, events, table, verb):
    """Had the role UPDATE, DELETE and TRUNCATE (a grant by mistake, or a new append-only table before the
    script ran again), setting maintenance mode would still not let it through."""
    _grant("UPDATE, DELETE, TRUNCATE", table, runtime_role.name)
    before = _snapshot(table)
    with runtime_role.connect() as conn:
        conn.execute("SELECT set_config('tollgate.audit_maintenance', 'on', false)")
        with pytest.raises(errors.RaiseException, match="append-only"):
            conn.execute(_changes(table, events[table])[verb])
    assert _snapshot(table) == before


def test_a_temporary_table_named_pg_class_does_not_make_the_runtime_role_an_owner(runtime_role, events):
    table = "governance_auditevent"
    _grant("UPDATE", table, runtime_role.name)
    before = _snapshot(table)
    with runtime_role.connect() as conn:
        conn.execute("CREATE TEMPORARY TABLE pg_class (oid oid, relowner oid)")
        conn.execute("INSERT INTO pg_class SELECT %s::regclass, oid FROM pg_roles WHERE rolname = user", [table])
        conn.execute("SELECT set_config('tollgate.audit_maintenance', 'on', false)")
        with pytest.raises(errors.RaiseException, match="append-only"):
            conn.execute(_changes(table, events[table])["UPDATE"])
    assert _snapshot(table) == before


def test_the_script_refuses_a_runtime_role_that_owns_a_table(runtime_role):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE stray (id int)")
        cursor.execute(
            sql.SQL("ALTER TABLE stray OWNER TO {}").format(sql.Identifier(runtime_role.name)).as_string(None)
        )
    before = _password_hash(runtime_role.name)
    runtime_role.password_file.write_text("a-new-password\n")
    result = runtime_role.run_deploy_script()
    assert result.returncode == 3
    assert f"role {runtime_role.name} must own nothing" in result.stderr
    assert _password_hash(runtime_role.name) == before  # one transaction: a refused run changes nothing


PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


def _privileges(role: str, table: str) -> set:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p FROM unnest(%s::text[]) p WHERE has_table_privilege(%s, %s::regclass, p)",
            [list(PRIVILEGES), role, table],
        )
        return {row[0] for row in cursor.fetchall()}


@pytest.mark.parametrize("table", APPEND_ONLY)
def test_the_runtime_role_holds_only_select_and_insert_on_the_append_only_tables(runtime_role, table):
    assert _privileges(runtime_role.name, table) == {"SELECT", "INSERT"}


def test_the_runtime_role_reads_the_migration_history_and_writes_the_other_tables(runtime_role):
    assert _privileges(runtime_role.name, "django_migrations") == {"SELECT"}
    assert _privileges(runtime_role.name, "governance_project") == {"SELECT", "INSERT", "UPDATE", "DELETE"}


def test_tables_a_later_migration_creates_are_granted_and_append_only_ones_stay_append_only(runtime_role):
    """ALTER DEFAULT PRIVILEGES gives the runtime role a new table; append_only() in its migration takes
    UPDATE, DELETE and TRUNCATE back at once, before the script runs again."""
    from django.db.migrations.state import ProjectState

    from governance.audit.db import append_only

    operation = append_only("later_events", name="later_event", label="later events")
    try:
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE later_events (id serial PRIMARY KEY, body text)")
            cursor.execute("INSERT INTO later_events (body) VALUES ('first')")
        granted = _privileges(runtime_role.name, "later_events")
        with connection.schema_editor() as editor:
            operation.database_forwards("governance", editor, ProjectState(), ProjectState())
        kept = _privileges(runtime_role.name, "later_events")
        with runtime_role.connect() as conn:
            conn.execute("INSERT INTO later_events (body) VALUES ('second')")
            conn.execute("SELECT set_config('tollgate.audit_maintenance', 'on', false)")
            with pytest.raises(errors.InsufficientPrivilege, match="permission denied"):
                conn.execute("UPDATE later_events SET body = 'forged'")
        with connection.cursor() as cursor:
            cursor.execute("SELECT body FROM later_events ORDER BY id")
            rows = cursor.fetchall()
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "DROP TABLE IF EXISTS later_events; DROP FUNCTION IF EXISTS tollgate_later_event_immutable()"
            )
    assert granted == {"SELECT", "INSERT", "UPDATE", "DELETE"}
    assert kept == {"SELECT", "INSERT"}
    assert rows == [("first",), ("second",)]


def test_an_owner_that_is_not_a_superuser_can_enter_maintenance_mode(events):
    """What the test flush (and an operator's maintenance) relies on: the owner's maintenance mode counts.
    In one rolled-back transaction, the audit table is handed to a plain role that then updates a row."""
    db = connection.settings_dict
    owner = f"tollgate_test_owner_{secrets.token_hex(4)}"
    with psycopg.connect(**_test_database(), user=db["USER"], password=db["PASSWORD"] or None) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOSUPERUSER").format(sql.Identifier(owner)))
        conn.execute(sql.SQL("ALTER TABLE governance_auditevent OWNER TO {}").format(sql.Identifier(owner)))
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(owner)))
        conn.execute("SELECT set_config('tollgate.audit_maintenance', 'on', true)")
        changed = conn.execute(
            "UPDATE governance_auditevent SET client_address = 'maintained' WHERE id = %s RETURNING client_address",
            [events["governance_auditevent"]],
        ).fetchall()
        conn.rollback()
    assert changed == [("maintained",)]
    assert AuditEvent.objects.get(pk=events["governance_auditevent"]).client_address != "maintained"


APP_AS_RUNTIME_ROLE = textwrap.dedent(
    """
    import json

    import django

    django.setup()
    from django.db import connection

    from governance.accounts.access import Principal
    from governance.accounts.models import Project, User
    from governance.accounts.services import project_create
    from tests.governance.provenance.lineage_events import dataset, ingest, run_event

    project = Project.objects.get(slug="fraud")
    engineer = User.objects.get(username="mlengineer")
    ingest(Principal(engineer), project, run_event("score", inputs=[dataset("holdout")]))
    created = project_create(
        actor=Principal(User.objects.get(username="staff")), slug="payments", name="Payments",
        admin=User.objects.get(username="admin"),
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        print(json.dumps({"user": cursor.fetchone()[0], "project": created.pk}))
    """
)


def test_the_app_appends_audit_and_lineage_events_as_the_runtime_role(runtime_role, project, ml_engineer, staff):
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL_FILE")}
    env.update(DJANGO_SETTINGS_MODULE="controlplane.settings.test", DATABASE_URL=runtime_role.url)
    result = subprocess.run(
        [sys.executable, "-c", APP_AS_RUNTIME_ROLE], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["user"] == runtime_role.name
    assert AuditEvent.objects.filter(project_id=report["project"], action="project.created").count() == 1
    assert LineageEvent.objects.filter(project=project).count() == 1
    assert verify_chain(chain_of(report["project"]))["ok"]
    assert verify_chain(chain_of(project.pk))["ok"]
