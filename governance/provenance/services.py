"""Datasets and their immutable versions (DESIGN §4, Provenance).

ML engineers (people and service accounts) and admins of a project write; every member reads (selectors).
A version is registered by URI (with the hash the caller computed) or uploaded (hashed here, stored as Parquet
under the project's prefix). Pipelines retry, so the same sha256 for the same dataset returns the existing
version instead of a second one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError, transaction

from controlplane.exceptions import Conflict, DomainError
from controlplane.patterns import SHA256
from governance.accounts.access import Principal, require_role
from governance.accounts.models import Project, Role
from governance.audit.services import audit_record, audited_update
from governance.provenance.models import Classification, Dataset, DatasetVersion
from governance.provenance.storage import delete_stored, file_sha256, store_dataset_file
from governance.provenance.uris import check_uri

WRITERS = (Role.ML_ENGINEER, Role.ADMIN)
DATASET_EDITABLE = ("description", "license", "classification", "contains_pii", "pii_justification")
DATASET_IMMUTABLE = ("namespace", "name")
DATASHEET_FIELDS = ("motivation", "composition", "collection_process", "known_biases")
VERSION_IMMUTABLE = ("uri", "sha256", "version", "schema", "row_count")

_SHA256 = re.compile(SHA256)
_LABEL = re.compile(r"^[^\s/\\]{1,200}$")


def _invalid(field: str, message: str) -> DomainError:
    return DomainError(f"{field}: {message}", details=[{"field": field, "message": message, "code": "invalid"}])


def _sha256(value: str) -> str:
    if not isinstance(value, str) or not _SHA256.match(value):
        raise _invalid("sha256", "A SHA-256 is 64 hexadecimal characters.")
    return value.lower()


def _label(value: str | None) -> str | None:
    if value in (None, ""):
        return None
    if not _LABEL.match(value):
        raise _invalid("version", "A version label is 1 to 200 characters without spaces or slashes.")
    return value


def _schema(value) -> list[dict]:
    """Columns as ``[{"name": ..., "type": ...}]``, in order, names unique."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid("schema", "The schema is a list of columns.")
    columns, seen = [], set()
    for index, column in enumerate(value):
        if not isinstance(column, Mapping) or not column.get("name") or not column.get("type"):
            raise _invalid(f"schema[{index}]", "A column has a name and a type.")
        name, kind = str(column["name"]), str(column["type"])
        if name in seen:
            raise _invalid(f"schema[{index}]", f"The column '{name}' appears twice.")
        seen.add(name)
        columns.append({"name": name, "type": kind})
    return columns


def _row_count(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _invalid("row_count", "The row count is a whole number, 0 or more.")
    return value


def _classification(value: str) -> str:
    if value and value not in Classification.values:
        raise _invalid("classification", f"One of: {', '.join(Classification.values)}.")
    return value


def _dataset_facts(dataset: Dataset) -> dict:
    return {field: getattr(dataset, field) for field in (*DATASET_IMMUTABLE, *DATASET_EDITABLE)}


# --- Datasets ---


@transaction.atomic
def dataset_create(
    *,
    actor: Principal,
    project: Project,
    namespace: str,
    name: str,
    description: str = "",
    license: str = "",
    classification: str = "",
    contains_pii: bool = False,
    pii_justification: str = "",
) -> Dataset:
    require_role(actor, project, WRITERS, action="register datasets")
    if not namespace or not name:
        raise _invalid("namespace" if not namespace else "name", "A dataset has a namespace and a name.")
    if Dataset.objects.filter(project=project, namespace=namespace, name=name).exists():
        raise Conflict(
            f"The dataset '{namespace}/{name}' exists in this project.",
            details=[{"field": "namespace"}, {"field": "name"}],
        )
    try:
        with transaction.atomic():
            dataset = Dataset.objects.create(
                project=project,
                namespace=namespace,
                name=name,
                owner=actor.user,
                description=description,
                license=license,
                classification=_classification(classification),
                contains_pii=contains_pii,
                pii_justification=pii_justification,
            )
    except IntegrityError:
        raise Conflict(f"The dataset '{namespace}/{name}' exists in this project.") from None
    audit_record(
        action="dataset.created",
        actor=actor,
        project=project,
        target=dataset,
        diff={**_dataset_facts(dataset), "owner": actor.user.username},
    )
    return dataset


@transaction.atomic
def dataset_update(*, actor: Principal, dataset: Dataset, fields: Mapping[str, Any]) -> Dataset:
    """Edit the descriptive fields named in ``fields`` (a PATCH body). ``namespace`` and ``name`` are the
    dataset's identity: sending them unchanged is fine, changing them is a 409."""
    require_role(actor, dataset.project, WRITERS, action="edit datasets")
    dataset = Dataset.objects.select_for_update().select_related("project").get(pk=dataset.pk)
    changed = [f for f in DATASET_IMMUTABLE if f in fields and fields[f] != getattr(dataset, f)]
    if changed:
        raise Conflict(
            f"A dataset's {' and '.join(changed)} never change; register a new dataset instead.",
            code="immutable_field",
            details=[{"field": f} for f in changed],
        )
    data = {field: _classification(fields[field]) if field == "classification" else fields[field]
            for field in DATASET_EDITABLE if field in fields}  # fmt: skip
    audited_update(dataset, data, actor=actor, action="dataset.updated", project=dataset.project)
    return dataset


# --- Versions ---


def _next_label(dataset: Dataset) -> str:
    """One more than the highest all-digit label. The caller holds the dataset's row lock."""
    labels = DatasetVersion.objects.filter(dataset=dataset).values_list("version", flat=True)
    return str(max((int(label) for label in labels if label.isdigit()), default=0) + 1)


def _existing(dataset: Dataset, sha256: str, label: str | None) -> DatasetVersion | None:
    """The version already registered with these bytes; a different explicit label for them is a 409."""
    existing = DatasetVersion.objects.filter(dataset=dataset, sha256=sha256).select_related("created_by").first()
    if existing is not None and label is not None and existing.version != label:
        raise Conflict(
            f"These bytes are already registered as version '{existing.version}' of this dataset.",
            code="already_registered",
            details=[{"field": "version", "existing_version": existing.version, "existing_id": existing.pk}],
        )
    return existing


@transaction.atomic
def _register(
    *, actor: Principal, dataset: Dataset, sha256: str, label: str | None, facts: dict, datasheet: dict
) -> tuple[DatasetVersion, bool]:
    dataset = Dataset.objects.select_for_update().select_related("project").get(pk=dataset.pk)
    existing = _existing(dataset, sha256, label)
    if existing is not None:
        return existing, False
    observed = None
    if label is None:
        label = _next_label(dataset)
    else:
        same_label = DatasetVersion.objects.select_for_update().filter(dataset=dataset, version=label).first()
        if same_label is not None and same_label.kind != DatasetVersion.Kind.OBSERVED:
            raise Conflict(
                f"Version '{label}' of this dataset exists with another sha256; versions are immutable.",
                code="version_exists",
                details=[{"field": "version"}],
            )
        observed = same_label
    if observed is not None:
        # Seen only through OpenLineage until now: registering it gives the same row (and its lineage edges)
        # its hash and facts, so it can pass provenance gates.
        for name, value in {**facts, **datasheet, "sha256": sha256, "created_by": actor.user}.items():
            setattr(observed, name, value)
        observed.save()
        version = observed
    else:
        try:
            with transaction.atomic():
                version = DatasetVersion.objects.create(
                    dataset=dataset, version=label, sha256=sha256, created_by=actor.user, **facts, **datasheet
                )
        except IntegrityError:
            raise Conflict("This version was registered concurrently; retry to get it.") from None
    audit_record(
        action="dataset_version.registered",
        actor=actor,
        project=dataset.project,
        target=version,
        diff={
            "dataset": f"{dataset.namespace}/{dataset.name}",
            "dataset_id": dataset.pk,
            "version": label,
            "sha256": sha256,
            "was_observed": observed is not None,
            **facts,
            **{k: v for k, v in datasheet.items() if v},
        },
    )
    return version, True


def _datasheet(values: Mapping[str, Any]) -> dict:
    return {field: values.get(field) or "" for field in DATASHEET_FIELDS}


def dataset_version_register(
    *,
    actor: Principal,
    dataset: Dataset,
    uri: str,
    sha256: str,
    version: str | None = None,
    row_count: int | None = None,
    schema: list[dict] | None = None,
    datasheet: Mapping[str, str] | None = None,
) -> tuple[DatasetVersion, bool]:
    """Register a version by reference. Returns ``(version, created)``; ``created`` is False when these
    bytes (this sha256) were registered before, and that version is returned unchanged."""
    require_role(actor, dataset.project, WRITERS, action="register dataset versions")
    checked = check_uri(uri, project=dataset.project)
    facts = {
        "kind": DatasetVersion.Kind.URI,
        "uri": checked.uri,
        "storage_path": checked.storage_path,
        "row_count": _row_count(row_count),
        "schema": _schema(schema),
    }
    return _register(
        actor=actor,
        dataset=dataset,
        sha256=_sha256(sha256),
        label=_label(version),
        facts=facts,
        datasheet=_datasheet(datasheet or {}),
    )


def dataset_version_upload(
    *,
    actor: Principal,
    dataset: Dataset,
    file,
    version: str | None = None,
    sha256: str | None = None,
    datasheet: Mapping[str, str] | None = None,
) -> tuple[DatasetVersion, bool]:
    """Register an uploaded Parquet or CSV file, stored as Parquet under the project's prefix.

    ``file`` is a Django file (the upload handler's, with its ``sha256``, or any other). ``sha256``, when
    given, is what the client expects: bytes that hash otherwise are refused. The conversion runs outside
    any transaction; only the registration holds the dataset's lock.
    """
    require_role(actor, dataset.project, WRITERS, action="upload dataset versions")
    label = _label(version)
    actual = file_sha256(file)
    if sha256 and _sha256(sha256) != actual:
        raise _invalid("sha256", f"The uploaded bytes hash to {actual}, not {sha256.lower()}.")
    existing = _existing(dataset, actual, label)
    if existing is not None:
        return existing, False
    stored = store_dataset_file(project=dataset.project, dataset_id=dataset.pk, file=file, sha256=actual)
    facts = {
        "kind": DatasetVersion.Kind.UPLOADED,
        "uri": stored.uri,
        "storage_path": stored.storage_path,
        "size_bytes": stored.size_bytes,
        "row_count": stored.row_count,
        "schema": stored.schema,
    }
    try:
        registered, created = _register(
            actor=actor, dataset=dataset, sha256=actual, label=label, facts=facts, datasheet=_datasheet(datasheet or {})
        )
    except Exception:
        if not DatasetVersion.objects.filter(storage_path=stored.storage_path).exists():
            delete_stored(stored.storage_path)
        raise
    if not created and registered.storage_path != stored.storage_path:
        delete_stored(stored.storage_path)  # a concurrent upload of the same bytes won
    return registered, created


@transaction.atomic
def dataset_version_update(*, actor: Principal, version: DatasetVersion, fields: Mapping[str, Any]) -> DatasetVersion:
    """Edit the datasheet of a version (a PATCH body). Its immutable fields may be sent unchanged; a
    different value is a 409 naming them."""
    require_role(actor, version.dataset.project, WRITERS, action="edit dataset versions")
    version = DatasetVersion.objects.select_for_update().select_related("dataset__project").get(pk=version.pk)
    wanted = {
        "uri": fields.get("uri"),
        "sha256": fields["sha256"].lower() if isinstance(fields.get("sha256"), str) else fields.get("sha256"),
        "version": fields.get("version"),
        "schema": _schema(fields["schema"]) if "schema" in fields else None,
        "row_count": fields.get("row_count"),
    }
    changed = [f for f in VERSION_IMMUTABLE if f in fields and wanted[f] != getattr(version, f)]
    if changed:
        raise Conflict(
            f"A registered version is immutable: {', '.join(changed)} cannot change. Register a new version.",
            code="immutable_field",
            details=[{"field": f} for f in changed],
        )
    data = {field: fields[field] or "" for field in DATASHEET_FIELDS if field in fields}
    audited_update(version, data, actor=actor, action="dataset_version.updated", project=version.dataset.project)
    return version
