"""Fixtures of the monitoring tests: a deployed version of ``fraud-gbm`` (signature: amount float, country
string -> score float), its reference data, and production batches that pass or drift."""

import io

import numpy as np
import pandas as pd
import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile

from governance.accounts.access import Principal
from governance.provenance.services import dataset_create, dataset_version_upload
from governance.registry.models import ModelVersion
from governance.registry.services import model_version_datasets_link
from tests.factories import CARD_HIGH, DeploymentFactory, RegisteredVersionFactory
from tests.governance.promotion.test_promotion import url

COUNTRIES = ["DE", "FR", "NL", "ES", "IT"]


def reference_frame(rows: int = 300, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "amount": rng.lognormal(3.5, 1.0, rows).round(2),
            "country": rng.choice(COUNTRIES, rows, p=[0.4, 0.2, 0.2, 0.1, 0.1]),
            "score": rng.random(rows).round(4),
        }
    )


def same_as_reference(seed: int = 1) -> pd.DataFrame:
    """Production data distributed exactly as the reference (its rows, shuffled): every check passes."""
    return reference_frame().sample(frac=1, random_state=seed).reset_index(drop=True)


def drifted(rows: int = 300, seed: int = 11) -> pd.DataFrame:
    """Amounts three times larger and a country the reference never saw."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "amount": (rng.lognormal(3.5, 1.0, rows) * 3).round(2),
            "country": rng.choice([*COUNTRIES, "US"], rows, p=[0.1, 0.1, 0.1, 0.1, 0.1, 0.5]),
            "score": rng.random(rows).round(4),
        }
    )


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    out = io.BytesIO()
    frame.to_parquet(out, index=False)
    return out.getvalue()


def upload(client, project, frame: pd.DataFrame | bytes, *, name="batch.csv", **fields):
    data = frame if isinstance(frame, bytes) else csv_bytes(frame)
    content_type = "application/octet-stream" if name.endswith(".parquet") else "text/csv"
    return client.post(
        url(project, "batches/"),
        {"file": SimpleUploadedFile(name, data, content_type=content_type), "model": "fraud-gbm", **fields},
        format="multipart",
    )


def link_reference(project, engineer, version: ModelVersion, frame: pd.DataFrame | None = None):
    actor = Principal(engineer)
    dataset = dataset_create(actor=actor, project=project, namespace="storage://fraud", name="reference",
                             license="internal", classification="internal")  # fmt: skip
    reference, _ = dataset_version_upload(
        actor=actor, dataset=dataset, file=ContentFile(csv_bytes(frame if frame is not None else reference_frame()),
                                                       name="reference.csv"),
    )  # fmt: skip
    model_version_datasets_link(actor=actor, version=version, links=[{"dataset_version": reference.pk,
                                                                       "role": "reference"}])  # fmt: skip
    return reference


def create_monitor(client, project, kind="data_drift", name=None, **fields):
    body = {"name": name or kind.replace("_", "-"), "kind": kind, "model": "fraud-gbm", **fields}
    if "version" not in body and "environment" not in body:
        body["environment"] = "production"
    response = client.post(url(project, "monitors/"), body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.fixture
def version(ready_version):
    return ready_version


@pytest.fixture
def deployed(officer, version):
    """Version 1 of fraud-gbm runs in production (limited risk, approved by ``officer``, executed by its
    requester, the engineer)."""
    DeploymentFactory(version=version, officer=officer)
    return version


@pytest.fixture
def high_risk_version(project, ml_engineer, officer, training_data):
    """Version 1 of fraud-gbm, high risk (its check gates apply), trained on the training data, its tier
    confirmed; not deployed, no reference data, no metrics."""
    return RegisteredVersionFactory(project=project, created_by=ml_engineer, trained_on=training_data,
                                    card=CARD_HIGH, confirmed_by=officer, metrics=[])  # fmt: skip


@pytest.fixture
def reference(project, ml_engineer, deployed):
    return link_reference(project, ml_engineer, deployed)


@pytest.fixture
def shared_storage(settings, tmp_path, monkeypatch):
    """The worker subprocess reads the files this process stores: both use one folder."""
    var = tmp_path / "var"
    (var / "test-storage").mkdir(parents=True)
    monkeypatch.setenv("TOLLGATE_VAR_DIR", str(var))
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {**settings.STORAGES["default"], "OPTIONS": {"location": str(var / "test-storage")}},
    }
