"""Demo monitoring for ``seed_demo``: drift and quality monitors on the deployed version, and two production
batches -- one distributed like the reference data (its checks pass), one drifted (its checks fail and raise
alerts; under the default policy they suspend the deployment, so ``seed_demo`` sends it to a second model's
deployment, which has drift and quality monitors of its own, and the first model's stays active); a history
of daily batches before them whose amounts creep up (a series to draw); a model_quality monitor on an hourly
schedule with a freshness rule, and labels arriving for the like-reference batch (a new batch revision that
runs only model_quality). Works in eager mode (no ``REDIS_URL``): the checks and their reports run in process.

Safe to run again: monitors are reused, and the batches are deterministic (derived from the reference data with
a fixed seed), so a second run gets the same batches and runs back instead of new ones.
"""

from __future__ import annotations

import datetime
import io

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from governance.accounts.access import Principal
from governance.accounts.models import Project, User
from governance.promotion.models import Deployment
from governance.provenance.models import DatasetVersion
from governance.registry.models import ModelVersion
from governance.registry.services import model_version_datasets_link
from monitoring.models import Monitor
from monitoring.services.batches import batch_labels_upload, batch_upload
from monitoring.services.monitors import monitor_create

SEED = 2026
HISTORY_DAYS = 8
QUALITY_MONITOR = "fraud-model-quality"
TRUTH = "is_fraud"  # the training data's outcome: the labels that "arrive later" for a batch


def _reference_frame(reference: DatasetVersion, version: ModelVersion) -> pd.DataFrame:
    with default_storage.open(reference.storage_path, "rb") as handle:
        frame = pq.read_table(handle).to_pandas()
    wanted = [c["name"] for side in ("inputs", "outputs") for c in version.signature.get(side, [])] + [TRUTH]
    return frame[[c for c in wanted if c in frame.columns]]


def _like_reference(frame: pd.DataFrame) -> pd.DataFrame:
    """The reference's rows, shuffled, with float values jittered by up to 0.5 %: no drift, in range."""
    rng = np.random.default_rng(SEED)
    batch = frame.sample(frac=1, random_state=SEED).reset_index(drop=True)
    for column in batch.columns:
        if pd.api.types.is_float_dtype(batch[column]):
            jitter = 1 + rng.uniform(-0.005, 0.005, len(batch))
            low, high = frame[column].min(), frame[column].max()
            batch[column] = (batch[column] * jitter).clip(low, high).round(2)
    return batch


def _drifted(frame: pd.DataFrame) -> pd.DataFrame:
    """Amounts (every float column) three times larger, text columns half taken by a value never seen."""
    rng = np.random.default_rng(SEED + 1)
    batch = frame.sample(frac=1, random_state=SEED + 1).reset_index(drop=True)
    for column in batch.columns:
        if pd.api.types.is_float_dtype(batch[column]):
            batch[column] = (batch[column] * 3).round(2)
        elif pd.api.types.is_object_dtype(batch[column]) or pd.api.types.is_string_dtype(batch[column]):
            batch[column] = np.where(rng.random(len(batch)) < 0.5, "unseen", batch[column])
    return batch


def _csv(frame: pd.DataFrame, name: str) -> ContentFile:
    out = io.StringIO()
    frame.to_csv(out, index=False)
    return ContentFile(out.getvalue().encode(), name=name)


def seed_monitoring(
    project: Project,
    engineer: User,
    deployed_version: ModelVersion,
    reference_dataset_version: DatasetVersion,
    *,
    pipeline: User | None = None,
    drifted_version: ModelVersion | None = None,
) -> dict:
    """As ``engineer`` (an ML engineer of ``project``): link the reference data if it is not linked, create a
    drift and a quality monitor on the version's deployment (production if it runs in several places), and
    upload two production batches of the last two days -- the older one like the reference, the newer one
    drifted. The drifted one goes to ``drifted_version``'s deployment (with monitors of its own) when given.
    The daily history before them is ``pipeline``'s (default: the engineer's): uploaded at once, its
    runs and the engineer's would not all fit one principal's queue bound (TOLLGATE_CHECK_QUEUE_PER_PRINCIPAL)
    while no worker runs them. Returns the batches and their runs."""
    actor = Principal(engineer)
    deployment = _monitored(project, actor, deployed_version, reference_dataset_version, prefix="fraud")
    drifted_deployment = deployment
    if drifted_version is not None:
        prefix = drifted_version.model.name
        drifted_deployment = _monitored(project, actor, drifted_version, reference_dataset_version, prefix=prefix)

    frame = _reference_frame(reference_dataset_version, deployed_version)
    outputs = [c["name"] for c in deployed_version.signature.get("outputs", [])]
    prediction = outputs[0] if outputs and TRUTH in frame.columns else None
    if prediction and not Monitor.objects.filter(project=project, name=QUALITY_MONITOR).exists():
        config = {"task": "classification", "target": "is_fraud", "prediction": prediction,
                  "thresholds": {"accuracy": {"gte": 0.8}, "roc_auc": {"gte": 0.75}},
                  "schedule": {"every_minutes": 60}, "freshness_hours": 48}  # fmt: skip
        monitor_create(actor=actor, project=project, name=QUALITY_MONITOR, kind="model_quality", config=config,
                       deployment=deployment)  # fmt: skip
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    day = datetime.timedelta(days=1)
    for index in range(HISTORY_DAYS):  # a series to draw: amounts creep up a little every day
        start = today - (2 + HISTORY_DAYS - index) * day
        batch_upload(
            actor=Principal(pipeline or engineer), project=project, deployment=deployment,
            file=_csv(_history(frame, index).drop(columns=TRUTH, errors="ignore"), f"day-{index}.csv"),
            window_start=start, window_end=start + day - datetime.timedelta(seconds=1),
        )  # fmt: skip
    results = {}
    like = _like_reference(frame)
    truth = like.pop(TRUTH) if TRUTH in like.columns else None
    if prediction and truth is not None:
        like[prediction] = _scores(truth)
    for label, batch_frame, start, target in (
        ("like-reference", like, today - 2 * day, deployment),
        ("drifted", _drifted(frame).drop(columns=TRUTH, errors="ignore"), today - day, drifted_deployment),
    ):
        result = batch_upload(
            actor=actor, project=project, deployment=target, file=_csv(batch_frame, f"{label}.csv"),
            window_start=start, window_end=start + day - datetime.timedelta(seconds=1),
        )  # fmt: skip
        if label == "like-reference" and prediction and truth is not None:  # the outcomes, a day later
            labels = pd.DataFrame({TRUTH: truth.to_numpy()})
            batch_labels_upload(actor=actor, batch=result.batch, file=_csv(labels, "labels.csv"))
        results[label] = {"batch": result.batch.pk, "runs": {r.kind: r.pk for r in result.batch.runs.all()}}
    return results


def _monitored(project: Project, actor: Principal, version: ModelVersion, reference: DatasetVersion, *,
               prefix: str) -> Deployment:  # fmt: skip
    """The version's deployment (production if it runs in several places), with the reference data linked and
    a drift and a quality monitor (``<prefix>-drift``, ``<prefix>-quality``)."""
    if not version.dataset_links.filter(dataset_version=reference, role="reference").exists():
        model_version_datasets_link(actor=actor, version=version,
                                    links=[{"dataset_version": reference.pk, "role": "reference"}])  # fmt: skip
    deployments = Deployment.objects.filter(model_version=version).select_related("environment")
    deployment = sorted(deployments, key=lambda d: d.environment.kind != "production")[0]
    for kind, name in (("data_drift", f"{prefix}-drift"), ("data_quality", f"{prefix}-quality")):
        if not Monitor.objects.filter(project=project, name=name).exists():
            monitor_create(actor=actor, project=project, name=name, kind=kind, config={}, deployment=deployment)
    return deployment


def _history(frame: pd.DataFrame, index: int) -> pd.DataFrame:
    batch = _like_reference(frame.sample(frac=1, random_state=SEED + 10 + index).reset_index(drop=True))
    for column in batch.columns:
        if pd.api.types.is_float_dtype(batch[column]) and column != "fraud_score":
            batch[column] = (batch[column] * (1 + 0.02 * index)).round(2)
    return batch


def _scores(truth: pd.Series) -> np.ndarray:
    """What the model scored: high for most frauds, low for most others (a good model, not a perfect one)."""
    rng = np.random.default_rng(SEED + 2)
    noise = rng.beta(2, 5, len(truth))
    return np.where(truth.to_numpy() == 1, 1 - noise, noise).round(4)
