"""Demo lineage for ``seed_demo``: a training run reported through OpenLineage by the pipeline's service
account, reading the demo datasets and producing a registered model version. Idempotent: the events are fixed
(run id and times), so seeding again stores nothing new."""

import json
import uuid
from datetime import UTC, datetime, timedelta

from governance.accounts.access import Principal
from governance.accounts.models import Project, User
from governance.provenance.api.serializers import validate_event
from governance.provenance.ingest import MODEL_VERSION_FACET, lineage_event_ingest
from governance.provenance.models import DatasetVersion
from governance.registry.models import ModelVersion

PRODUCER = "https://github.com/tollgate/demo-pipelines/tree/main/fraud"
SPEC = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
JOB_NAMESPACE = "airflow://fraud-ci"


def _facet(name: str, **fields) -> dict:
    return {"_producer": PRODUCER, "_schemaURL": f"https://openlineage.io/spec/facets/1-0-0/{name}.json", **fields}


def _dataset(version: DatasetVersion) -> dict:
    facets = {"version": _facet("DatasetVersionDatasetFacet", datasetVersion=version.version)}
    if version.schema:
        columns = [{"name": column["name"], "type": column.get("type", "")} for column in version.schema]
        facets["schema"] = _facet("SchemaDatasetFacet", fields=columns)
    return {"namespace": version.dataset.namespace, "name": version.dataset.name, "facets": facets}


def seed_lineage(
    project: Project, service_account: User, model_version: ModelVersion, dataset_versions: list[DatasetVersion]
) -> uuid.UUID:
    """Report START and COMPLETE of ``fraud_training.train`` (inputs: ``dataset_versions``; run facet
    ``tollgate_modelVersion``: ``model_version``) as ``service_account``. Returns the run id."""
    model = model_version.model
    run_id = uuid.uuid5(uuid.NAMESPACE_URL, f"tollgate-demo:{project.slug}:{model.name}:{model_version.version}")
    started = datetime(2026, 10, 31, 22, 0, tzinfo=UTC)
    inputs = [{**_dataset(version), "inputFacets": {}} for version in dataset_versions]
    job = {
        "namespace": JOB_NAMESPACE,
        "name": "fraud_training.train",
        "facets": {
            "sourceCodeLocation": _facet(
                "SourceCodeLocationJobFacet",
                type="git",
                url="https://git.example.org/fraud/pipelines",
                path="dags/train.py",
                version="4f2c1e9",
            )  # fmt: skip
        },
    }
    run_facets = {
        MODEL_VERSION_FACET: _facet("TollgateModelVersionRunFacet", model=model.name, version=model_version.version)
    }
    events = [
        {"eventType": "START", "eventTime": started.isoformat(), "run": {"runId": str(run_id), "facets": {}}},
        {
            "eventType": "COMPLETE",
            "eventTime": (started + timedelta(minutes=42)).isoformat(),
            "run": {"runId": str(run_id), "facets": run_facets},
        },
    ]
    actor = Principal(service_account)
    for event in events:
        body = json.dumps(
            {**event, "producer": PRODUCER, "schemaURL": SPEC, "job": job, "inputs": inputs, "outputs": []}
        )
        lineage_event_ingest(actor=actor, project=project, body=body, event=validate_event(json.loads(body)))
    return run_id
