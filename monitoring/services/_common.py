"""Helpers several service modules share; private to the package."""

from __future__ import annotations

from controlplane.exceptions import DomainError
from governance.accounts.access import Principal
from governance.accounts.models import Role
from governance.registry.models import ModelVersion
from monitoring.checks.definitions import CATEGORICAL, NUMERICAL

WRITERS = (Role.ML_ENGINEER, Role.ADMIN)

# Signature type -> how Evidently treats the column.
CHECKED_AS = {
    "float": NUMERICAL,
    "integer": NUMERICAL,
    "string": CATEGORICAL,
    "category": CATEGORICAL,
    "boolean": CATEGORICAL,
}


def _invalid(field: str, message: str, **extra) -> DomainError:
    return DomainError(f"{field}: {message}", details=[{"field": field, "message": message, **extra}])


def _system() -> Principal:
    return Principal.system()


def _signature_columns(version: ModelVersion) -> dict[str, str]:
    """Inputs then outputs of the signature, name -> type."""
    signature = version.signature or {}
    columns = {}
    for side in ("inputs", "outputs"):
        for column in signature.get(side) or []:
            columns.setdefault(column["name"], column["type"])
    return columns
