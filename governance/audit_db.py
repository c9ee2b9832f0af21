"""Maintenance mode for the audit table's append-only triggers (migration 0003).

Nothing in the application enters it. The test suite's database flush does (Django empties every table
between transactional tests), and so would an operator's deliberate, documented maintenance.
"""

import contextlib
import threading

from django.db import connection as default_connection
from django.db.backends.signals import connection_created
from django.dispatch import receiver

_state = threading.local()


def _sqlite_flag() -> int:
    return 1 if getattr(_state, "maintenance", False) else 0


@receiver(connection_created)
def register_sqlite_function(sender, connection, **kwargs):
    if connection.vendor == "sqlite":
        connection.connection.create_function("tollgate_audit_maintenance", 0, _sqlite_flag, deterministic=False)


@contextlib.contextmanager
def audit_maintenance(connection=None):
    """Let UPDATE, DELETE and TRUNCATE of audit events through on this connection, for this block."""
    connection = connection or default_connection
    _state.maintenance = True
    try:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('tollgate.audit_maintenance', 'on', false)")
        yield
    finally:
        _state.maintenance = False
        if connection.vendor == "postgresql" and connection.connection is not None:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT set_config('tollgate.audit_maintenance', 'off', false)")
            except Exception:  # noqa: BLE001 - a broken connection is discarded anyway
                connection.close()
