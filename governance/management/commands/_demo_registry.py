"""Demo registry and workflow for ``seed_demo``: a model with two versions, their metrics and cards;
version 1 approved and running in production; version 2 requested and blocked by a named gate. A second model,
``fraud-mobile``, runs in production too: the demo's drifted batch goes to it, so the default policy suspends
its deployment while ``fraud-gbm``'s stays active."""

import hashlib

from governance.accounts.access import Principal
from governance.accounts.models import Project, User
from governance.promotion.models import Deployment, PromotionRequest
from governance.promotion.services import (
    decision_record,
    model_card_confirm_risk_tier,
    promotion_execute,
    promotion_request_create,
)
from governance.provenance.models import DatasetVersion
from governance.registry.models import ModelVersion
from governance.registry.services import model_card_edit, model_version_register

MODEL = "fraud-gbm"
SECOND_MODEL = "fraud-mobile"
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


def _artifact(version: int, model: str = MODEL) -> tuple[str, str]:
    uri = f"s3://fraud-models/{model}/{version}/model.onnx"
    return uri, hashlib.sha256(f"demo artifact {model} v{version}".encode()).hexdigest()


def _register(project, *, pipeline, engineer, model, number, auc, training, card) -> ModelVersion:
    """A version registered by the CI pipeline's service account, its card written by the engineer."""
    uri, sha = _artifact(number, model)
    version, _ = model_version_register(
        actor=Principal(pipeline), project=project, model_name=model, artifact_uri=uri, artifact_sha256=sha,
        signature=SIGNATURE, framework="lightgbm", params={"num_leaves": 31, "learning_rate": 0.05 * number},
        tags=["gbm", "nightly"],
        metrics=[{"name": "auc", "value": auc, "dataset_version": training.pk},
                 {"name": "f1", "value": round(auc - 0.3, 2), "dataset_version": training.pk}],
        datasets=[{"dataset_version": training.pk, "role": "trained_on"},
                  {"dataset_version": training.pk, "role": "reference"}],
    )  # fmt: skip
    model_card_edit(actor=Principal(engineer), version=version, fields=card, replace=True)
    return version


def _promote(project, *, engineer: User, officer: User, version: ModelVersion, comment: str) -> None:
    """Into production through a real promotion: requested by the engineer, approved by the officer."""
    production = project.environments.get(name="production")
    if Deployment.objects.filter(model=version.model, environment=production).exists():
        return
    request = promotion_request_create(actor=Principal(engineer), version=version, environment=production,
                                       comment=comment)  # fmt: skip
    decision_record(actor=Principal(officer), request=request, outcome="approve", comment="Evidence complete")
    promotion_execute(actor=Principal(engineer), request=request)


def seed_registry(
    project: Project, *, pipeline: User, engineer: User, officer: User, training: DatasetVersion
) -> tuple[ModelVersion, ModelVersion]:
    """Two versions registered by the CI pipeline's service account; cards written by the engineer."""
    versions = [
        _register(
            project,
            pipeline=pipeline,
            engineer=engineer,
            model=MODEL,
            number=number,
            auc=auc,
            training=training,
            card=CARD,
        )  # fmt: skip
        for number, auc in ((1, 0.91), (2, 0.93))
    ]
    model_card_confirm_risk_tier(actor=Principal(officer), version=versions[0], risk_tier=None, comment="agreed")
    return versions[0], versions[1]


def seed_workflow(project: Project, *, engineer: User, officer: User, v1: ModelVersion, v2: ModelVersion) -> None:
    """Version 1 in production through a real promotion; version 2 requested and blocked."""
    _promote(project, engineer=engineer, officer=officer, version=v1, comment="First production release")
    production = project.environments.get(name="production")
    if not PromotionRequest.objects.filter(model_version=v2, environment=production, state="open").exists():
        promotion_request_create(
            actor=Principal(engineer), version=v2, environment=production,
            comment="Better AUC; waiting for the risk tier to be confirmed",
        )  # fmt: skip


def seed_second_model(
    project: Project, *, pipeline: User, engineer: User, officer: User, training: DatasetVersion
) -> ModelVersion:
    """``fraud-mobile`` v1 (the mobile app's payments, the same features), its tier confirmed, promoted to
    production. Safe to run again: an existing version and deployment are kept (suspended or not)."""
    model = project.models.filter(name=SECOND_MODEL).first()
    version = model.versions.filter(version=1).first() if model else None
    if version is None:
        card = {**CARD, "intended_use": "Score the mobile app's card payments; scores above 0.8 are held."}
        version = _register(project, pipeline=pipeline, engineer=engineer, model=SECOND_MODEL, number=1, auc=0.9,
                            training=training, card=card)  # fmt: skip
        model_card_confirm_risk_tier(actor=Principal(officer), version=version, risk_tier=None, comment="agreed")
    _promote(project, engineer=engineer, officer=officer, version=version, comment="Mobile app launch")
    return version
