"""Console fixtures: a logged-in browser-like client per persona, and a version with an open production request."""

import pytest
from django.test import Client

from governance.accounts.access import Principal
from governance.promotion.services import promotion_request_create
from governance.provenance.models import Dataset, DatasetVersion
from governance.registry.services import model_card_edit, model_version_register
from tests.factories import CARD, sha

SIGNATURE = {"inputs": [{"name": "amount", "type": "float"}], "outputs": [{"name": "score", "type": "float"}]}


@pytest.fixture
def login():
    """``login(user)``: a client holding that user's console session, enforcing CSRF like a browser."""

    def make(user):
        client = Client(enforce_csrf_checks=True)
        client.force_login(user)
        client.get("/console/")  # the session's clock starts, and the CSRF cookie is set
        return client

    return make


def post(client, path, data=None):
    """A form post with the CSRF token, as the browser sends it."""
    client.get("/console/")
    return client.post(path, {**(data or {}), "csrfmiddlewaretoken": client.cookies["csrftoken"].value})


@pytest.fixture
def version(project, ml_engineer):
    """fraud-gbm v1: registered by the engineer with training data and an AUC, a complete card (tier proposed
    ``limited``, not confirmed), and an open production request by the engineer."""
    dataset = Dataset.objects.create(
        project=project, namespace="s3://fraud", name="train", owner=ml_engineer, license="CC-BY-4.0",
        classification="internal",
    )  # fmt: skip
    training = DatasetVersion.objects.create(
        dataset=dataset, version="1", kind="uri", uri="s3://fraud/train.parquet", sha256=sha("train"),
        created_by=ml_engineer,
    )  # fmt: skip
    actor = Principal(ml_engineer)
    version, _ = model_version_register(
        actor=actor, project=project, model_name="fraud-gbm", artifact_uri="s3://models/fraud/1/model.onnx",
        artifact_sha256=sha("artifact 1"), signature=SIGNATURE, framework="sklearn",
        metrics=[{"name": "auc", "value": 0.91, "dataset_version": training.pk}],
        datasets=[{"dataset_version": training.pk, "role": "trained_on"}],
    )  # fmt: skip
    model_card_edit(actor=actor, version=version, fields=CARD, replace=True)
    return version


@pytest.fixture
def open_request(project, ml_engineer, version):
    production = project.environments.get(name="production")
    return promotion_request_create(actor=Principal(ml_engineer), version=version, environment=production,
                                    comment="nightly retrain")  # fmt: skip


VERSION_PATH = "/console/p/fraud/models/fraud-gbm/versions/1/"
