"""What a run reads -- the batch, its labels, the version's reference -- and its configuration resolved
against them. Shared by the check and its report, so both look at the same columns."""

from __future__ import annotations

from django.core.files.storage import default_storage
from django.db.models import QuerySet

from governance.models import DatasetRole, ModelVersion, ModelVersionDataset
from monitoring import evidently_checks as checks
from monitoring.models import BatchLabels, CheckRun

from ._common import CHECKED_AS, _signature_columns


def _read_parquet(storage_path: str, columns: list[str] | None = None):
    import pyarrow.parquet as pq

    with default_storage.open(storage_path, "rb") as handle:
        table = pq.read_table(handle, columns=columns)
    return table.to_pandas()


def _read_arrow(storage_path: str, columns: list[str]):
    import pyarrow.parquet as pq

    with default_storage.open(storage_path, "rb") as handle:
        return pq.read_table(handle, columns=columns)


def _parquet_schema(storage_path: str) -> list[dict]:
    import pyarrow.parquet as pq

    from governance.storage import schema_of

    with default_storage.open(storage_path, "rb") as handle:
        return schema_of(pq.ParquetFile(handle).schema_arrow)


def quality_config(run: CheckRun) -> dict:
    """A model_quality revision's settings, with the prediction column resolved (default: the first output)."""
    config = dict(run.monitor_revision.config)
    if not config.get("prediction"):
        outputs = (run.model_version.signature or {}).get("outputs") or []
        if not outputs:
            raise checks.CheckInputError("the signature has no output: name the prediction column")
        config["prediction"] = outputs[0]["name"]
    return config


def labelled_frame(run: CheckRun):
    """The batch's prediction column beside its labels at the run's batch revision: joined on the labels'
    ``key`` column, or row by row (the labels file has the batch's rows, in its order)."""
    config = quality_config(run)
    target, prediction = config["target"], config["prediction"]
    labels = BatchLabels.objects.filter(batch=run.batch_id, revision__lte=run.batch_revision).order_by("-revision")
    labels = labels.first()
    batch_columns = {c["name"] for c in run.batch.schema or []} or {c["name"] for c in _parquet_schema(
        run.batch.storage_path)}  # fmt: skip
    if labels is None:
        if target not in batch_columns:
            raise checks.CheckInputError(f"no labels have arrived for batch {run.batch_id} (no column {target!r})")
        return _read_parquet(run.batch.storage_path, [target, prediction])
    label_columns = {c["name"] for c in labels.schema}
    if target not in label_columns:
        raise checks.CheckInputError(f"the labels (revision {labels.revision}) have no column {target!r}")
    if prediction not in batch_columns:
        raise checks.CheckInputError(f"the batch has no prediction column {prediction!r}")
    if labels.key:
        current = _read_parquet(run.batch.storage_path, [labels.key, prediction])
        given = _read_parquet(labels.storage_path, [labels.key, target]).drop_duplicates(labels.key, keep="last")
        return current.merge(given, on=labels.key, how="inner")[[target, prediction]]
    current = _read_parquet(run.batch.storage_path, [prediction])
    given = _read_parquet(labels.storage_path, [target])
    if len(given) != len(current):
        raise checks.CheckInputError(f"the labels have {len(given)} rows, the batch {len(current)}; give a key column")
    current[target] = given[target].to_numpy()
    return current


def readable_reference_links() -> QuerySet[ModelVersionDataset]:
    """Links with the role ``reference`` to dataset versions workers can read -- stored under the project's prefix
    (uploaded, or registered by a storage:// URI) and not purged under the project's retention -- newest first.
    The one rule for "this version has reference data": runs, the monitor's state and the check gate use it."""
    return (
        ModelVersionDataset.objects.filter(role=DatasetRole.REFERENCE, dataset_version__purge__isnull=True)
        .exclude(dataset_version__storage_path="")
        .order_by("-id")
    )


def reference_of(version: ModelVersion):
    """The version's reference dataset version that workers can read, or None."""
    link = readable_reference_links().filter(model_version=version).select_related("dataset_version").first()
    return link.dataset_version if link else None


def reference_link_hint(version: ModelVersion) -> dict:
    """How to link reference data to the version: the request to send."""
    project, model = version.model.project, version.model
    return {
        "method": "POST",
        "url": f"/api/v1/projects/{project.slug}/models/{model.name}/versions/{version.version}/datasets/",
        "body": [{"dataset_version": "<the id of a dataset version uploaded to Tollgate>", "role": "reference"}],
    }


def reference_missing(version: ModelVersion, kind: str, *, linked: bool | None = None) -> str:
    """Why a ``kind`` monitor of the version cannot run, and how to link reference data. ``linked``: whether the
    version has reference links at all (workers can read none of them); looked up when not given."""
    if linked is None:
        linked = version.dataset_links.filter(role=DatasetRole.REFERENCE).exists()
    url = reference_link_hint(version)["url"]
    where = f"{version.model.name} v{version.version}"
    why = f"no reference data linked to {where}"
    if linked:
        why = (
            f"no readable reference data linked to {where}: the linked dataset version is not stored in "
            "Tollgate (registered by a URI outside the project's storage, or deleted under its retention)"
        )
    datasets = f"/api/v1/projects/{version.model.project.slug}/datasets/{{id}}/versions/"
    return (
        f"{why}. A {kind} check compares each batch with the version's reference data (the data it was "
        f"validated on): upload it as a dataset version (POST {datasets}, multipart) and link that version with "
        f"the role 'reference' (POST {url} "
        '[{"dataset_version": <its id>, "role": "reference"}]). Batches that arrive after that are checked; '
        '"run now" (POST .../check-runs/ {"monitor": <id>}) checks the latest one.'
    )


def resolved_config(run: CheckRun, batch_schema: list[dict], reference_schema: list[dict]) -> dict:
    """The pure module's config: the revision's settings plus the columns to check and their types."""
    config = dict(run.monitor_revision.config)
    signature = _signature_columns(run.model_version)
    wanted = config.pop("columns", None)
    in_batch = {c["name"] for c in batch_schema}
    in_reference = {c["name"] for c in reference_schema}
    if wanted is None:
        wanted = [name for name in signature if name in in_batch and name in in_reference]
    columns = {}
    for name in wanted:
        checked_as = CHECKED_AS.get(signature.get(name, ""))
        if checked_as is not None:
            columns[name] = checked_as
    if not columns:
        raise checks.CheckInputError("no column of the signature can be checked (none is in both data sets)")
    return {**config, "columns": columns}
