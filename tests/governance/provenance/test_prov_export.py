"""A model version's upstream lineage as W3C PROV-JSON, for auditors."""

import hashlib
import json

import pytest
from prov.model import ProvDocument

from governance.accounts.access import Principal
from governance.provenance.models import DatasetVersion, ModelVersionDataset
from governance.registry.models import ModelVersion, RegisteredModel
from tests.governance.provenance.lineage_events import dataset, ingest, model_facet, run_event


@pytest.fixture
def model_version(project, ml_engineer):
    model = RegisteredModel.objects.create(project=project, name="fraud-gbm", owner=ml_engineer)
    return ModelVersion.objects.create(
        model=model, version=1, artifact_uri="s3://models/1", artifact_sha256=hashlib.sha256(b"m").hexdigest(),
        signature={}, created_by=ml_engineer,
    )  # fmt: skip


def url(project, version=1):
    return f"/api/v1/projects/{project.slug}/models/fraud-gbm/versions/{version}/lineage.prov.json"


def test_an_auditor_exports_the_upstream_lineage_as_prov_json(api, project, ml_engineer, auditor, model_version):
    engineer = Principal(ml_engineer)
    ingest(engineer, project, run_event("prepare", inputs=[dataset("raw")], outputs=[dataset("features", version="1")]))
    ingest(
        engineer,
        project,
        run_event("train", inputs=[dataset("features", version="1")], run_facets=model_facet("fraud-gbm", 1)),
    )
    features = DatasetVersion.objects.get(dataset__name="features", version="1")
    ModelVersionDataset.objects.create(model_version=model_version, dataset_version=features, role="validated_on")

    response = api(auditor).get(url(project))
    assert response.status_code == 200, response.json()
    doc = response.json()
    base = f"http://testserver/api/v1/projects/{project.slug}/"
    assert doc["prefix"]["tollgate"] == base

    version_id = "tollgate:models/fraud-gbm/versions/1"
    features_id = f"tollgate:datasets/{features.dataset_id}/versions/{features.pk}"
    raw_id = f"tollgate:datasets/{features.dataset.project.datasets.get(name='raw').pk}"
    assert doc["entity"][version_id]["tollgate:artifactSha256"] == model_version.artifact_sha256
    assert doc["entity"][features_id]["tollgate:kind"] == "observed"
    assert raw_id in doc["entity"]
    assert len(doc["activity"]) == 2
    assert set(doc["agent"]) == {"tollgate:users/mlengineer"}
    generated = {(r["prov:entity"], r["prov:activity"].split("/")[-1]) for r in doc["wasGeneratedBy"].values()}
    assert {entity for entity, _ in generated} == {version_id, features_id}
    used = {r["prov:entity"] for r in doc["used"].values()}
    assert used == {raw_id, features_id}
    derived = {(r["prov:generatedEntity"], r["prov:usedEntity"]) for r in doc["wasDerivedFrom"].values()}
    assert (version_id, features_id) in derived and (features_id, raw_id) in derived
    roles = [r.get("tollgate:role") for r in doc["wasDerivedFrom"].values() if "tollgate:role" in r]
    assert roles == ["validated_on"]
    assert len(doc["wasAssociatedWith"]) == 2

    # A PROV library reads it back: the document is well-formed PROV-JSON.
    parsed = ProvDocument.deserialize(content=json.dumps(doc), format="json")
    kinds = {type(record).__name__ for record in parsed.get_records()}
    assert {"ProvEntity", "ProvActivity", "ProvAgent", "ProvGeneration", "ProvUsage", "ProvDerivation"} <= kinds


def test_a_version_without_lineage_exports_itself_and_its_author(api, project, auditor, model_version):
    doc = api(auditor).get(url(project)).json()
    assert list(doc["entity"]) == ["tollgate:models/fraud-gbm/versions/1"]
    assert "activity" not in doc
    assert list(doc["wasAttributedTo"].values())[0]["prov:agent"] == "tollgate:users/mlengineer"


def test_the_export_is_not_visible_outside_the_project(api, project, outsider, model_version):
    assert api(outsider).get(url(project)).status_code == 404
    assert api(outsider).get(url(project, version=9)).status_code == 404
