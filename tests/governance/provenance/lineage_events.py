"""RunEvents as the openlineage-python client writes them, and a way to ingest them without HTTP."""

import json
import uuid
from datetime import UTC, datetime

from governance.provenance.api.serializers import validate_event
from governance.provenance.ingest import lineage_event_ingest

PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.54.0/client/python"
SPEC = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"


def facet(name: str, **fields) -> dict:
    return {"_producer": PRODUCER, "_schemaURL": f"https://openlineage.io/spec/facets/1-0-0/{name}.json", **fields}


def dataset(name: str, namespace: str = "s3://fraud", version: str | None = None, **facets) -> dict:
    if version is not None:
        facets["version"] = facet("DatasetVersionDatasetFacet", datasetVersion=version)
    return {"namespace": namespace, "name": name, "facets": facets}


def run_event(
    job: str,
    *,
    run_id: str | None = None,
    event_type: str = "COMPLETE",
    inputs=(),
    outputs=(),
    namespace: str = "pipelines",
    run_facets: dict | None = None,
    job_facets: dict | None = None,
    event_time: str | None = None,
) -> dict:
    return {
        "eventTime": event_time or datetime.now(UTC).isoformat(),
        "eventType": event_type,
        "producer": PRODUCER,
        "schemaURL": SPEC,
        "run": {"runId": run_id or str(uuid.uuid4()), "facets": run_facets or {}},
        "job": {"namespace": namespace, "name": job, "facets": job_facets or {}},
        "inputs": [{**d, "inputFacets": {}} for d in inputs],
        "outputs": [{**d, "outputFacets": {}} for d in outputs],
    }


def model_facet(model: str, version: int) -> dict:
    return {"tollgate_modelVersion": facet("TollgateModelVersionRunFacet", model=model, version=version)}


def ingest(principal, project, event: dict):
    """What the endpoint does with one event, minus HTTP."""
    text = json.dumps(event)
    return lineage_event_ingest(actor=principal, project=project, body=text, event=validate_event(json.loads(text)))
