"""Seed the benchmark's Tollgate database: one project, one model of N versions, version 1 deployed to production.

Run by ``bench.api_load`` with the application's virtualenv and the server's environment (production settings,
``DATABASE_URL`` of the throwaway database, which must be empty). Not a management command and not a test: it
calls the application's own services (the registry's ``model_version_register``, the access services) and, for the
promotion story of version 1, the API itself through Django's test client, as ``tests/governance/test_promotion.py``
does. Prints one JSON line (keys, names, hashes) on stdout, last.

    .venv/bin/python bench/api_load/seed_tollgate.py --versions 3000
"""

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT, MODEL, WRITES_MODEL = "bench", "bench-model", "bench-writes"
SIGNATURE = {
    "inputs": [{"name": "amount", "type": "float"}, {"name": "country", "type": "string"}],
    "outputs": [{"name": "score", "type": "float"}],
}
CARD = {
    "intended_use": "Score card payments for fraud",
    "out_of_scope_uses": "Wire transfers",
    "users_and_affected_persons": "Fraud analysts; card holders",
    "limitations": "Trained on EU data only",
    "ethical_considerations": "False positives block legitimate payments",
    "evaluation_data": "October 2026 hold-out",
    "human_oversight": "Analysts review every block",
    "proposed_risk_tier": "limited",
    "risk_tier_rationale": "Decisions are reviewed by people",
}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def version_body(model: str, n: int) -> dict:
    """What a pipeline registers: the same shape the load test's register requests send."""
    return {
        "artifact_uri": f"s3://models/{model}/{n}/model.onnx",
        "artifact_sha256": sha(f"{model} artifact {n}"),
        "framework": "sklearn",
        "signature": SIGNATURE,
        "params": {"max_depth": 6, "n_estimators": 200},
        "tags": ["gbm"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=3000)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)

    from django.test import Client

    from governance.accounts.access import Principal
    from governance.accounts.models import Role, User
    from governance.accounts.services import api_key_issue, project_create, role_grant
    from governance.provenance.services import dataset_create, dataset_version_register
    from governance.registry.services import model_version_register

    staff = User.objects.create_user("staff", is_staff=True)
    admin = User.objects.create_user("admin")
    engineer = User.objects.create_user("mlengineer")
    officer = User.objects.create_user("officer")
    project = project_create(actor=Principal(staff), slug=PROJECT, name="Bench", admin=admin)
    role_grant(actor=Principal(admin), project=project, principal=engineer, role=Role.ML_ENGINEER)
    role_grant(actor=Principal(admin), project=project, principal=officer, role=Role.GOVERNANCE_OFFICER)

    def key(user):
        return api_key_issue(
            actor=Principal(user), owner=user, project=None, name="bench", read_only=False, expires_at=None
        )[1]

    engineer_key, officer_key = key(engineer), key(officer)
    actor = Principal(engineer)
    dataset = dataset_create(
        actor=actor,
        project=project,
        namespace="s3://fraud",
        name="train",
        license="CC-BY-4.0",
        classification="internal",
    )
    training, _ = dataset_version_register(
        actor=actor, dataset=dataset, uri="s3://fraud/train.parquet", sha256=sha("train")
    )

    # Version 1 through the API, as the promotion tests run it: registered with training data and an AUC, a
    # complete card, its tier confirmed by the officer, a promotion request approved by the officer and executed.
    def client(raw_key):
        return Client(HTTP_AUTHORIZATION=f"Bearer {raw_key}", HTTP_X_FORWARDED_PROTO="https", HTTP_HOST="localhost")

    def call(c, method, path, body=None, expected=200):
        url = f"/api/v1/projects/{PROJECT}/{path}"
        if method == "get":
            response = c.get(url)
        else:
            response = getattr(c, method)(url, data=json.dumps(body or {}), content_type="application/json")
        if response.status_code != expected:
            raise SystemExit(f"seed: {method.upper()} {path} answered {response.status_code}: {response.content!r}")
        return response.json()

    eng, off = client(engineer_key), client(officer_key)
    first = version_body(MODEL, 1)
    first["metrics"] = [{"name": "auc", "value": 0.91}]
    first["datasets"] = [{"dataset_version": training.pk, "role": "trained_on"}]
    call(eng, "post", f"models/{MODEL}/versions/", first, 201)
    call(eng, "put", f"models/{MODEL}/versions/1/model-card/", CARD)
    call(off, "post", f"models/{MODEL}/versions/1/model-card/confirm-risk-tier/", {"comment": "agreed"})
    request = call(eng, "post", "promotion-requests/", {"model": MODEL, "version": 1, "environment": "production"}, 201)
    call(off, "post", f"promotion-requests/{request['id']}/approve/", {"comment": "ok"})
    call(eng, "post", f"promotion-requests/{request['id']}/execute/")
    deployed = call(eng, "get", f"deployments/{MODEL}/production/")
    assert deployed["artifact_sha256"] == first["artifact_sha256"], deployed

    # The other versions through the registry's service: what the API's register view calls.
    started = time.monotonic()
    for n in range(2, args.versions + 1):
        model_version_register(actor=actor, project=project, model_name=MODEL, **version_body(MODEL, n))
        if n % 500 == 0:
            print(f"seed: {n} versions ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
    # The load test's register requests go to a second model, so that the model read and listed stays at N.
    model_version_register(actor=actor, project=project, model_name=WRITES_MODEL, **version_body(WRITES_MODEL, 1))

    print(
        json.dumps(
            {
                "key": engineer_key,
                "project": PROJECT,
                "model": MODEL,
                "writes_model": WRITES_MODEL,
                "versions": args.versions,
                "environment": "production",
                "deployed_sha256": first["artifact_sha256"],
                "gates_version": 1,
            }
        )
    )


if __name__ == "__main__":
    main()
