"""What a run reads -- the batch, its labels, the version's reference -- and its configuration resolved
against them. Shared by the check and its report, so both look at the same columns."""

from __future__ import annotations

import pyarrow.parquet as pq
from django.core.files.storage import default_storage

from governance.provenance.storage import schema_of
from monitoring.checks.definitions import CheckInputError
from monitoring.models import BatchLabels, CheckRun

from ._common import CHECKED_AS, _signature_columns


def _read_parquet(storage_path: str, columns: list[str] | None = None):
    with default_storage.open(storage_path, "rb") as handle:
        table = pq.read_table(handle, columns=columns)
    return table.to_pandas()


def _read_arrow(storage_path: str, columns: list[str]):
    with default_storage.open(storage_path, "rb") as handle:
        return pq.read_table(handle, columns=columns)


def _parquet_schema(storage_path: str) -> list[dict]:
    with default_storage.open(storage_path, "rb") as handle:
        return schema_of(pq.ParquetFile(handle).schema_arrow)


def quality_config(run: CheckRun) -> dict:
    """A model_quality revision's settings, with the prediction column resolved (default: the first output)."""
    config = dict(run.monitor_revision.config)
    if not config.get("prediction"):
        outputs = (run.model_version.signature or {}).get("outputs") or []
        if not outputs:
            raise CheckInputError("the signature has no output: name the prediction column")
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
            raise CheckInputError(f"no labels have arrived for batch {run.batch_id} (no column {target!r})")
        return _read_parquet(run.batch.storage_path, [target, prediction])
    label_columns = {c["name"] for c in labels.schema}
    if target not in label_columns:
        raise CheckInputError(f"the labels (revision {labels.revision}) have no column {target!r}")
    if prediction not in batch_columns:
        raise CheckInputError(f"the batch has no prediction column {prediction!r}")
    if labels.key:
        current = _read_parquet(run.batch.storage_path, [labels.key, prediction])
        given = _read_parquet(labels.storage_path, [labels.key, target]).drop_duplicates(labels.key, keep="last")
        return current.merge(given, on=labels.key, how="inner")[[target, prediction]]
    current = _read_parquet(run.batch.storage_path, [prediction])
    given = _read_parquet(labels.storage_path, [target])
    if len(given) != len(current):
        raise CheckInputError(f"the labels have {len(given)} rows, the batch {len(current)}; give a key column")
    current[target] = given[target].to_numpy()
    return current


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
        raise CheckInputError("no column of the signature can be checked (none is in both data sets)")
    return {**config, "columns": columns}
