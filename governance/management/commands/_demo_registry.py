"""Demo registry and workflow for ``seed_demo``: a model with two versions, their metrics and cards;
version 1 approved and running in production; version 2 requested and blocked by a named gate."""

import hashlib

from governance.access import Principal
from governance.models import DatasetVersion, Deployment, ModelVersion, Project, PromotionRequest, User
from governance.services.registry import model_card_confirm_risk_tier, model_card_edit, model_version_register
from governance.services.workflow import decision_record, promotion_execute, promotion_request_create

MODEL = "fraud-gbm"
SIGNATURE = {
    "inputs": [
        {"name": "amount", "type": "float"},
        {"name": "merchant_category", "type": "string"},
        {"name": "country", "type": "string"},
        {"name": "hour", "type": "integer"},
    ],
    "outputs": [{"name": "fraud_score", "type": "float"}],
}
CARD = {
    "intended_use": "Score card payments in real time; scores above 0.8 are held for an analyst.",
    "out_of_scope_uses": "Wire transfers, credit decisions, anything without an analyst in the loop.",
    "users_and_affected_persons": "Fraud analysts use the scores; card holders are affected by holds.",
    "limitations": "Trained on EU and US traffic of October 2026; unseen merchant categories score poorly.",
    "ethical_considerations": "False positives delay legitimate payments, more often for travellers.",
    "evaluation_data": "A 20 % hold-out of the training set, stratified by country.",
    "metrics_by_subgroup": {"auc": {"country=DE": 0.92, "country=US": 0.88}},
    "human_oversight": "Every hold is reviewed by an analyst within 15 minutes.",
    "proposed_risk_tier": "limited",
    "risk_tier_rationale": "The model recommends; a person decides on every held payment.",
}


def _artifact(version: int) -> tuple[str, str]:
    uri = f"s3://fraud-models/{MODEL}/{version}/model.onnx"
    return uri, hashlib.sha256(f"demo artifact {MODEL} v{version}".encode()).hexdigest()


def seed_registry(
    project: Project, *, pipeline: User, engineer: User, officer: User, training: DatasetVersion
) -> tuple[ModelVersion, ModelVersion]:
    """Two versions registered by the CI pipeline's service account; cards written by the engineer."""
    versions = []
    for number, auc in ((1, 0.91), (2, 0.93)):
        uri, sha = _artifact(number)
        version, _ = model_version_register(
            actor=Principal(pipeline), project=project, model_name=MODEL, artifact_uri=uri, artifact_sha256=sha,
            signature=SIGNATURE, framework="lightgbm", params={"num_leaves": 31, "learning_rate": 0.05 * number},
            tags=["gbm", "nightly"],
            metrics=[{"name": "auc", "value": auc, "dataset_version": training.pk},
                     {"name": "f1", "value": round(auc - 0.3, 2), "dataset_version": training.pk}],
            datasets=[{"dataset_version": training.pk, "role": "trained_on"},
                      {"dataset_version": training.pk, "role": "reference"}],
        )  # fmt: skip
        model_card_edit(actor=Principal(engineer), version=version, fields=CARD, replace=True)
        versions.append(version)
    model_card_confirm_risk_tier(actor=Principal(officer), version=versions[0], risk_tier=None, comment="agreed")
    return versions[0], versions[1]


def seed_workflow(project: Project, *, engineer: User, officer: User, v1: ModelVersion, v2: ModelVersion) -> None:
    """Version 1 in production through a real promotion; version 2 requested and blocked."""
    production = project.environments.get(name="production")
    if not Deployment.objects.filter(model=v1.model, environment=production).exists():
        request = promotion_request_create(
            actor=Principal(engineer), version=v1, environment=production, comment="First production release"
        )
        decision_record(actor=Principal(officer), request=request, outcome="approve", comment="Evidence complete")
        promotion_execute(actor=Principal(engineer), request=request)
    if not PromotionRequest.objects.filter(model_version=v2, environment=production, state="open").exists():
        promotion_request_create(
            actor=Principal(engineer), version=v2, environment=production,
            comment="Better AUC; waiting for the risk tier to be confirmed",
        )  # fmt: skip
