"""The model registry: models, versions (registered N+1 atomically, idempotent on the artifact hash),
metrics, dataset links and model cards. Pipelines retry, so every registration is safe to repeat."""

from __future__ import annotations

import math

from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from django.utils import timezone

from controlplane.changes import changes
from controlplane.exceptions import Conflict, DomainError
from governance.accounts.access import Principal, require_role
from governance.accounts.models import Project, Role
from governance.audit.chain import canonical, digest
from governance.audit.services import audit_record, audited_update
from governance.provenance.graph import (
    artifact_dataset_candidates,
    artifact_dataset_candidates_sql,
    lineage_link_model_version,
)
from governance.provenance.ingest import artifact_link_lock, lineage_runs_link_artifact
from governance.provenance.models import DatasetRole, DatasetVersion, LineageRun, ModelVersionDataset
from governance.provenance.uris import check_uri
from governance.registry.models import (
    MODEL_CARD_FIELDS,
    Metric,
    ModelCard,
    ModelCardRevision,
    ModelVersion,
    RegisteredModel,
    RiskTier,
)
from governance.registry.selectors import version_children_set

from .signals import version_evidence_changed

WRITERS = (Role.ML_ENGINEER, Role.ADMIN)


def _dataset_versions_in(project: Project, ids) -> dict[int, DatasetVersion]:
    """The project's dataset versions among ``ids`` (with their datasets), in one query; none if no ids."""
    ids = {pk for pk in ids if pk is not None}
    if not ids:
        return {}
    found = DatasetVersion.objects.select_related("dataset").filter(pk__in=ids, dataset__project=project)
    return {version.pk: version for version in found}


def _dataset_version_in(found: dict[int, DatasetVersion], dataset_version_id: int, *, field: str) -> DatasetVersion:
    version = found.get(dataset_version_id)
    if version is None:
        raise DomainError(
            f"No dataset version {dataset_version_id} in this project.",
            details=[{"field": field, "message": "unknown dataset version"}],
        )
    return version


@transaction.atomic
def model_create(
    *, actor: Principal, project: Project, name: str, description: str = "", tags: list[str] | None = None
) -> RegisteredModel:
    require_role(actor, project, WRITERS, action="register models")
    if RegisteredModel.objects.filter(project=project, name=name).exists():
        raise Conflict(f"A model named '{name}' exists in this project.", details=[{"field": "name"}])
    return _model_insert(actor=actor, project=project, name=name, description=description, tags=tags or [])


def _model_insert(*, actor, project, name, description, tags) -> RegisteredModel:
    model = RegisteredModel.objects.create(
        project=project, name=name, owner=actor.user, description=description, tags=tags
    )
    audit_record(
        action="model.created",
        actor=actor,
        project=project,
        target=model,
        diff={"name": name, "description": description, "tags": tags},
    )
    return model


@transaction.atomic
def model_update(
    *, actor: Principal, model: RegisteredModel, description: str | None = None, tags: list[str] | None = None
) -> RegisteredModel:
    require_role(actor, model.project, WRITERS, action="edit models")
    model = RegisteredModel.objects.select_for_update().get(pk=model.pk)
    data = {field: value for field, value in (("description", description), ("tags", tags)) if value is not None}
    audited_update(model, data, actor=actor, action="model.updated", project=model.project)
    return model


def _metric_key(metric: dict) -> tuple:
    return (metric["name"], metric.get("dataset_version"), metric.get("subgroup") or "")


def _check_metrics(metrics: list[dict]) -> None:
    seen = set()
    for index, metric in enumerate(metrics):
        if not math.isfinite(metric["value"]):
            raise DomainError("Metric values must be finite numbers.", details=[{"field": f"metrics[{index}].value"}])
        key = _metric_key(metric)
        if key in seen:
            raise DomainError(
                f"The metric {key[0]} appears twice for the same dataset and subgroup.",
                details=[{"field": f"metrics[{index}]"}],
            )
        seen.add(key)


def _add_metrics(
    *, actor, version: ModelVersion, metrics: list[dict], new: bool = False, found: dict | None = None
) -> list[Metric]:
    """Insert new metric rows (in one statement); a row that exists with the same value is kept, with another
    value is 409 (``new``: the version was just created, so it has none to read; ``found``: the dataset
    versions already read, by id)."""
    _check_metrics(metrics)
    project = version.model.project
    existing = {} if new else {(m.name, m.dataset_version_id, m.subgroup): m for m in version.metrics.all()}
    if found is None:
        found = _dataset_versions_in(project, (m.get("dataset_version") for m in metrics))
    added = []
    for index, metric in enumerate(metrics):
        key = _metric_key(metric)
        if key in existing:
            if existing[key].value != metric["value"]:
                raise Conflict(
                    f"The metric {key[0]} is already recorded as {existing[key].value}; metrics are immutable.",
                    details=[{"field": f"metrics[{index}].value"}],
                )
            continue
        dataset_version = None
        if metric.get("dataset_version") is not None:
            dataset_version = _dataset_version_in(found, metric["dataset_version"], field=f"metrics[{index}]")
        added.append(
            Metric(
                model_version=version,
                name=metric["name"],
                value=metric["value"],
                dataset_version=dataset_version,
                subgroup=metric.get("subgroup") or "",
            )
        )
    return Metric.objects.bulk_create(added) if added else []


def _add_links(
    *, actor, version: ModelVersion, links: list[dict], new: bool = False, found: dict | None = None
) -> list[ModelVersionDataset]:
    """Insert the links ``version`` lacks, in one statement (``new``: it was just created, so it has none to
    read, and the lineage graph takes its datasets from the new links; ``found``: the dataset versions already
    read, by id)."""
    project = version.model.project
    existing = set() if new else {(link.dataset_version_id, link.role) for link in version.dataset_links.all()}
    if found is None:
        found = _dataset_versions_in(project, (link["dataset_version"] for link in links))
    added = []
    for index, link in enumerate(links):
        dataset_version = _dataset_version_in(found, link["dataset_version"], field=f"datasets[{index}]")
        if link["role"] == DatasetRole.REFERENCE and not dataset_version.is_stored:
            raise DomainError(
                "Reference data must be uploaded or stored under the project's prefix, so workers can read it.",
                details=[{"field": f"datasets[{index}].dataset_version"}],
            )
        if (dataset_version.pk, link["role"]) in existing:
            continue
        existing.add((dataset_version.pk, link["role"]))
        added.append(
            ModelVersionDataset(
                model_version=version, dataset_version=dataset_version, role=link["role"], created_by=actor.user
            )
        )
    if added:
        ModelVersionDataset.objects.bulk_create(added)
    lineage_link_model_version(version, datasets=[link.dataset_version.dataset for link in added] if new else None)
    return added


def _same_registration(version: ModelVersion, *, artifact_uri, signature, params, metrics) -> list[str]:
    """The fields of a retried registration that differ from the stored version."""
    differing = []
    if version.artifact_uri != artifact_uri:
        differing.append("artifact_uri")
    if version.signature != signature:
        differing.append("signature")
    if params is not None and version.params != params:
        differing.append("params")
    stored_metrics = {(m.name, m.dataset_version_id, m.subgroup): m.value for m in version.metrics.all()}
    if any(stored_metrics.get(_metric_key(m), m["value"]) != m["value"] for m in metrics):
        differing.append("metrics")
    return differing


def _from_row(model_class, fields, values):
    """An instance of ``model_class`` from a row of raw SQL whose columns are ``fields``, converted as the ORM
    converts what it reads (a JSON column arrives as text)."""
    converted = []
    for field, value in zip(fields, values, strict=True):
        for converter in connection.ops.get_db_converters(field) + field.get_db_converters(connection):
            value = converter(value, field, connection)
        converted.append(value)
    return model_class.from_db(connection.alias, [field.attname for field in fields], converted)


def _version_insert_orm(
    *, project: Project, model_name: str, values: dict
) -> tuple[RegisteredModel | None, ModelVersion | None, bool]:
    """``_version_insert`` in several statements, for databases other than PostgreSQL."""
    model = RegisteredModel.objects.filter(project=project, name=model_name).first()
    if model is None:
        return None, None, False
    model.project = project
    candidates = artifact_dataset_candidates(project, values["artifact_uri"]).exists()
    if model.versions.filter(artifact_sha256=values["artifact_sha256"]).exists():
        return model, None, candidates
    number = (model.versions.aggregate(last=Max("version"))["last"] or 0) + 1
    version = ModelVersion.objects.create(model=model, version=number, **values)
    version.refresh_from_db(fields=["signature", "params", "tags"])  # the JSON as stored
    return model, version, candidates


def _version_insert(
    *, project: Project, model_name: str, values: dict
) -> tuple[RegisteredModel | None, ModelVersion | None, bool]:
    """One statement: find the model, insert its next version unless one has the artifact hash already, and say
    whether any dataset of the project may name the artifact (``artifact_dataset_candidates_sql``). Returns (the
    model or None if there is none, the new version or None, whether there are candidates). The caller holds
    the artifact link lock, which every registration in the project takes first and keeps to its commit: the
    number read here is taken by no other, and no model row lock is needed. The version's JSON columns are
    returned as stored, so the answer shows them exactly as a later read does."""
    if connection.vendor != "postgresql":
        return _version_insert_orm(project=project, model_name=model_name, values=values)
    quote = connection.ops.quote_name
    model_fields = RegisteredModel._meta.concrete_fields
    version_fields = ModelVersion._meta.concrete_fields
    written = [field for field in version_fields if not field.primary_key and field.attname != "model_id"]
    template = ModelVersion(**values)
    versions = quote(ModelVersion._meta.db_table)
    selected, params = [], []
    for field in written:
        if field.attname == "version":
            selected.append(f"(SELECT COALESCE(MAX(x.version), 0) + 1 FROM {versions} x WHERE x.model_id = m.id)")
        else:
            selected.append("%s")
            params.append(field.get_db_prep_save(field.pre_save(template, True), connection))
    candidates_sql, candidates_params = artifact_dataset_candidates_sql(project, values["artifact_uri"])
    sql = (
        f"WITH m AS (SELECT {', '.join(quote(f.column) for f in model_fields)} "
        f"FROM {quote(RegisteredModel._meta.db_table)} WHERE project_id = %s AND name = %s), "
        f"v AS (INSERT INTO {versions} (model_id, {', '.join(quote(f.column) for f in written)}) "
        f"SELECT m.id, {', '.join(selected)} FROM m "
        f"WHERE NOT EXISTS (SELECT 1 FROM {versions} x WHERE x.model_id = m.id AND x.artifact_sha256 = %s) "
        f"RETURNING {', '.join(quote(f.column) for f in version_fields)}) "
        f"SELECT {', '.join('m.' + quote(f.column) for f in model_fields)}, "
        f"{', '.join('v.' + quote(f.column) for f in version_fields)}, EXISTS ({candidates_sql}) "
        "FROM m LEFT JOIN v ON true"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [project.pk, model_name, *params, values["artifact_sha256"], *candidates_params])
        row = cursor.fetchone()
    if row is None:
        return None, None, False
    model = _from_row(RegisteredModel, model_fields, row[: len(model_fields)])
    model.project = project
    version_row = row[len(model_fields) : -1]
    version = _from_row(ModelVersion, version_fields, version_row) if version_row[0] is not None else None
    return model, version, bool(row[-1])


def _with_representation(version: ModelVersion, *, model, actor, metrics, links, runs) -> ModelVersion:
    """``version``, just created, with what ``ModelVersionSerializer`` reads, in the order the read path
    gives it (the models' orderings), so the answer needs no second read: its model and author, its metrics
    and links (with their dataset versions and datasets), no card, and the runs linked to it."""
    version.model = model
    version.created_by = actor.user
    version._state.fields_cache["card"] = None  # a new version has no card yet
    version_children_set(
        version, metrics=sorted(metrics, key=lambda m: (m.name, m.subgroup, m.pk)),
        dataset_links=sorted(links, key=lambda link: (link.role, link.pk)), lineage_runs=runs,
    )  # fmt: skip
    return version


@transaction.atomic
def model_version_register(
    *,
    actor: Principal,
    project: Project,
    model_name: str,
    artifact_uri: str,
    artifact_sha256: str,
    signature: dict,
    framework: str = "",
    params: dict | None = None,
    tags: list[str] | None = None,
    description: str = "",
    metrics: list[dict] | None = None,
    datasets: list[dict] | None = None,
) -> tuple[ModelVersion, bool]:
    """Register version N+1 of ``model_name`` (created if missing). The same artifact hash again returns
    the existing version (``created`` is False) as long as nothing immutable differs; otherwise 409.
    Completed OpenLineage runs that wrote this artifact, and match no other version, are linked to it
    (``lineage_runs_link_artifact``). A new version comes back with what its representation shows
    (``_with_representation``)."""
    require_role(actor, project, WRITERS, action="register model versions")
    artifact_uri = check_uri(artifact_uri, project=project, field="artifact_uri").uri
    metrics, datasets = metrics or [], datasets or []
    _check_metrics(metrics)
    # Before any audit event: the lock comes before the audit chain's head. It also serialises the
    # registrations of the project, so the next version number needs no lock of the model row.
    artifact_link_lock(project.pk)
    values = {
        "artifact_uri": artifact_uri, "artifact_sha256": artifact_sha256, "framework": framework,
        "signature": signature, "params": params or {}, "tags": tags or [], "description": description,
        "created_by": actor.user,
    }  # fmt: skip
    model, version, candidates = _version_insert(project=project, model_name=model_name, values=values)
    if model is None:
        try:
            with transaction.atomic():
                _model_insert(actor=actor, project=project, name=model_name, description="", tags=[])
        except IntegrityError:
            pass  # created concurrently (by model_create, which does not take the artifact link lock)
        model, version, candidates = _version_insert(project=project, model_name=model_name, values=values)

    # The dataset versions the links and metrics name, read once (a new version's and a retry's alike).
    found = _dataset_versions_in(
        project, [link["dataset_version"] for link in datasets] + [m.get("dataset_version") for m in metrics]
    )
    if version is None:
        existing = (
            ModelVersion.objects.filter(model=model, artifact_sha256=artifact_sha256).prefetch_related("metrics").get()
        )
        differing = _same_registration(
            existing, artifact_uri=artifact_uri, signature=signature, params=params, metrics=metrics
        )
        if differing:
            raise Conflict(
                f"Version {existing.version} has this artifact hash with other {', '.join(differing)}; "
                "registered versions are immutable.",
                details=[{"field": field} for field in differing],
            )
        existing.model = model
        # A retry may carry what the first attempt already stored; anything new is recorded as an addition.
        _record_additions(
            actor=actor,
            version=existing,
            links=_add_links(actor=actor, version=existing, links=datasets, found=found),
            metrics=_add_metrics(actor=actor, version=existing, metrics=metrics, found=found),
        )
        if candidates:
            lineage_runs_link_artifact(actor=actor, version=existing)
        return existing, False

    version.model = model
    links = _add_links(actor=actor, version=version, links=datasets, new=True, found=found)
    added = _add_metrics(actor=actor, version=version, metrics=metrics, new=True, found=found) if metrics else []
    audit_record(
        action="model_version.registered",
        actor=actor,
        project=project,
        target=version,
        diff={
            "model": model.name,
            "version": version.version,
            "artifact_uri": artifact_uri,
            "artifact_sha256": artifact_sha256,
            "framework": framework,
            "signature": signature,
            "params": params or {},
            "tags": tags or [],
            "metrics": [[m.name, m.value, m.dataset_version_id, m.subgroup] for m in added],
            "datasets": [[link.dataset_version_id, link.role] for link in links],
        },
    )
    runs = []
    if candidates and lineage_runs_link_artifact(actor=actor, version=version):
        # Rare: runs that wrote this artifact before it was registered; read as the read path shows them.
        linked = LineageRun.objects.filter(model_version=version).select_related("job", "agent")
        runs = list(linked.order_by("created_at", "id"))
    return _with_representation(version, model=model, actor=actor, metrics=added, links=links, runs=runs), True


@transaction.atomic
def model_version_update(
    *, actor: Principal, version: ModelVersion, description: str | None = None, tags: list[str] | None = None
) -> ModelVersion:
    project = version.model.project
    require_role(actor, project, WRITERS, action="edit model versions")
    version = ModelVersion.objects.select_for_update().select_related("model__project").get(pk=version.pk)
    data = {field: value for field, value in (("description", description), ("tags", tags)) if value is not None}
    audited_update(version, data, actor=actor, action="model_version.updated", project=project)
    return version


@transaction.atomic
def model_version_archive(*, actor: Principal, version: ModelVersion) -> ModelVersion:
    project = version.model.project
    require_role(actor, project, WRITERS, action="archive model versions")
    version = ModelVersion.objects.select_for_update().select_related("model__project").get(pk=version.pk)
    if version.status == ModelVersion.Status.ARCHIVED:
        raise Conflict("This version is already archived.")
    version.status = ModelVersion.Status.ARCHIVED
    version.save(update_fields=["status"])
    audit_record(
        action="model_version.archived", actor=actor, project=project, target=version, diff={"status": "archived"}
    )
    return version


def _record_additions(*, actor, version: ModelVersion, links=(), metrics=()) -> None:
    """Audit what was added to a registered version, and void decisions whose evidence it changed."""
    project = version.model.project
    if links:
        audit_record(
            action="model_version.datasets_linked",
            actor=actor,
            project=project,
            target=version,
            diff={"datasets": [[link.dataset_version_id, link.role] for link in links]},
        )
    if metrics:
        audit_record(
            action="model_version.metrics_recorded",
            actor=actor,
            project=project,
            target=version,
            diff={"metrics": [[m.name, m.value, m.dataset_version_id, m.subgroup] for m in metrics]},
        )
    if links or metrics:
        version_evidence_changed.send(sender=ModelVersion, version=version, actor=actor)


@transaction.atomic
def model_version_metrics_add(*, actor: Principal, version: ModelVersion, metrics: list[dict]) -> list[Metric]:
    require_role(actor, version.model.project, WRITERS, action="record metrics")
    version = ModelVersion.objects.select_for_update().select_related("model__project").get(pk=version.pk)
    added = _add_metrics(actor=actor, version=version, metrics=metrics)
    _record_additions(actor=actor, version=version, metrics=added)
    return added


@transaction.atomic
def model_version_datasets_link(
    *, actor: Principal, version: ModelVersion, links: list[dict]
) -> list[ModelVersionDataset]:
    require_role(actor, version.model.project, WRITERS, action="link datasets")
    version = ModelVersion.objects.select_for_update().select_related("model__project").get(pk=version.pk)
    added = _add_links(actor=actor, version=version, links=links)
    _record_additions(actor=actor, version=version, links=added)
    return added


def card_content_hash(content: dict) -> str:
    return digest(canonical(content))


def blank_card() -> dict:
    return {field: "" for field in MODEL_CARD_FIELDS}


@transaction.atomic
def model_card_edit(*, actor: Principal, version: ModelVersion, fields: dict, replace: bool = False) -> ModelCard:
    """Edit the card (``replace``: the body is the whole card). Each change is a new revision with its
    author and hash; it voids the risk tier's confirmation, which was bound to an earlier revision."""
    project = version.model.project
    require_role(actor, project, [Role.ML_ENGINEER], action="edit model cards")
    unknown = sorted(set(fields) - set(MODEL_CARD_FIELDS))
    if unknown:
        raise DomainError("Unknown model card fields.", details=[{"field": name} for name in unknown])
    tier = fields.get("proposed_risk_tier")
    if tier not in (None, "") and tier not in RiskTier.values:
        raise DomainError(
            f"proposed_risk_tier must be one of {', '.join(RiskTier.values)}.",
            details=[{"field": "proposed_risk_tier"}],
        )
    card, _ = ModelCard.objects.get_or_create(model_version=version, defaults={"content": blank_card()})
    card = ModelCard.objects.select_for_update().get(pk=card.pk)
    before = {**blank_card(), **card.content}
    after = {**blank_card(), **(fields if replace else {**before, **fields})}
    diff = changes(before, after)
    if not diff:
        return card
    card.content = after
    card.revision += 1
    card.content_hash = card_content_hash(after)
    card.updated_at = timezone.now()
    voided = _confirmation_void(card, actor=actor, changed=sorted(diff)) if card.confirmed_risk_tier else None
    card.save()
    ModelCardRevision.objects.create(
        card=card, revision=card.revision, content=after, content_hash=card.content_hash, author=actor.user
    )
    audit_record(
        action="model_card.edited",
        actor=actor,
        project=project,
        target=version,
        diff={**diff, "revision": card.revision, "confirmation_cleared": voided is not None},
    )
    if voided is not None:
        audit_record(action="model_card.confirmation_voided", actor=actor, project=project, target=version,
                     diff=voided)  # fmt: skip
    version_evidence_changed.send(sender=ModelVersion, version=version, actor=actor)
    return card


def _confirmation_void(card: ModelCard, *, actor: Principal, changed: list[str]) -> dict:
    """A new revision voids the confirmation of an earlier one (like a decision whose evidence changed): the
    card keeps who voided it, when, which revision had been confirmed and why. Returns the audit diff."""
    confirmer = card.confirmed_by.username if card.confirmed_by else ""
    reason = (
        f"{actor.user.username} edited the card after {confirmer} confirmed revision {card.confirmed_revision} as "
        f"{card.confirmed_risk_tier}: revision {card.revision} changed {', '.join(changed)}"
    )
    voided = {"confirmed_risk_tier": card.confirmed_risk_tier, "confirmed_by": confirmer,
              "confirmed_revision": card.confirmed_revision, "revision": card.revision, "reason": reason}  # fmt: skip
    card.confirmation_voided_at, card.confirmation_voided_by = timezone.now(), actor.user
    card.confirmation_voided_revision, card.confirmation_void_reason = card.confirmed_revision, reason
    card.confirmed_risk_tier, card.confirmed_revision, card.confirmed_by = "", None, None
    card.confirmed_at, card.confirmation_comment = None, ""
    return voided
