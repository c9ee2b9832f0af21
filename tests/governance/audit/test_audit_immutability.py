import pytest
from django.db import DatabaseError, connection, transaction

from governance.audit.db import audit_maintenance
from governance.audit.models import AuditEvent


def _statement(sql):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE governance_auditevent SET action = 'forged'",
        "DELETE FROM governance_auditevent",
    ],
)
def test_the_database_refuses_to_change_audit_rows(project, sql):
    assert AuditEvent.objects.filter(project=project).exists()
    with pytest.raises(DatabaseError, match="append-only"):
        _statement(sql)
    assert not AuditEvent.objects.filter(action="forged").exists()


@pytest.mark.postgres
def test_postgres_refuses_truncate(project):
    with pytest.raises(DatabaseError, match="append-only"):
        _statement("TRUNCATE governance_auditevent CASCADE")
    assert AuditEvent.objects.filter(project=project).exists()


def test_maintenance_mode_lets_changes_through(project):
    with audit_maintenance():
        _statement("UPDATE governance_auditevent SET client_address = 'x'")
    assert set(AuditEvent.objects.values_list("client_address", flat=True)) == {"x"}
    with pytest.raises(DatabaseError):
        _statement("UPDATE governance_auditevent SET client_address = 'y'")


@pytest.mark.django_db(transaction=True)
def test_transactional_tests_still_flush_the_table(staff, admin_user):
    from governance.accounts.access import Principal
    from governance.accounts.services import project_create

    project_create(actor=Principal(staff), slug="flushed", name="Flushed", admin=admin_user)
    assert AuditEvent.objects.exists()  # the flush after this test must get through the triggers
