"""Policy documents: parsing (JSON, or YAML given as text), validation with an error per field, the
default policy, and the floor that no policy lowers (DESIGN §4).

A document lists, per environment kind and risk tier, the gates a version must pass::

    {"environments": {"production": {"high": [{"kind": "approvals", "min": 2},
                                              {"kind": "metric", "name": "auc", "min": 0.8}, ...]}},
     "suspend_on_failed_check": ["production"]}

``suspend_on_failed_check`` lists environment kinds (not check kinds): a failed check of a version suspends its
deployments in those. The default policy names ``production``; a document that leaves the key out gets the
default's value when it is published, and ``[]`` turns automatic suspension off.
"""

from __future__ import annotations

import json

import yaml

from controlplane.exceptions import DomainError
from governance.promotion.gates import GATE_KINDS
from governance.promotion.gates.kinds import REQUIRED_CARD_FIELDS
from governance.promotion.models import EnvironmentKind
from governance.registry.models import RiskTier

TIERS = tuple(RiskTier.values)
KINDS = tuple(EnvironmentKind.values)


def _tiers(*, approvals: int, card: bool = True, provenance: bool = True, extra=()) -> list[dict]:
    gates = [{"kind": "approvals", "min": approvals}] if approvals else []
    if card:
        gates.append({"kind": "model_card", "required_fields": list(REQUIRED_CARD_FIELDS)})
    if provenance:
        gates.append({"kind": "provenance"})
    return gates + list(extra)


# High-risk versions reach production only with passing drift and quality checks at most 7 days old.
CHECK_GATES = [
    {"kind": "check", "check_kind": "data_drift", "max_age_hours": 168},
    {"kind": "check", "check_kind": "data_quality", "max_age_hours": 168},
]

DEFAULT_POLICY = {
    "environments": {
        "staging": {tier: _tiers(approvals=0, card=False) for tier in TIERS},
        "production": {
            "minimal": _tiers(approvals=1),
            "limited": _tiers(approvals=1),
            "high": _tiers(approvals=2, extra=CHECK_GATES),
            "unacceptable": _tiers(approvals=2, extra=CHECK_GATES),
        },
    },
    # A deployment of these environment kinds is suspended when a check of its version fails (DESIGN §4):
    # the enforcement point then refuses it until an officer resumes it. [] turns it off.
    "suspend_on_failed_check": ["production"],
}


def parse(source: str | dict) -> dict:
    """A document from a dict, JSON text or YAML text; 400 when it is none of them."""
    if isinstance(source, dict):
        return source
    try:
        document = json.loads(source)
    except ValueError:
        try:
            document = yaml.safe_load(source)
        except yaml.YAMLError as exc:
            raise DomainError(f"The policy is neither JSON nor YAML: {exc}", details=[{"field": "document"}]) from None
    if not isinstance(document, dict):
        raise DomainError("The policy must be a mapping.", details=[{"field": "document"}])
    return document


def validate(document: dict) -> dict:
    """The document, normalised; raises DomainError listing every problem with its path."""
    problems: list[dict] = []
    document = dict(document)

    def problem(path: str, message: str) -> None:
        problems.append({"field": path, "message": message})

    for key in sorted(set(document) - {"environments", "suspend_on_failed_check", "description"}):
        problem(key, "unknown key")
    environments = document.get("environments")
    if not isinstance(environments, dict) or not environments:
        problem("environments", "a mapping of environment kind to tiers is required")
        environments = {}
    for kind, tiers in environments.items():
        if kind not in KINDS:
            problem(f"environments.{kind}", f"unknown environment kind (use {', '.join(KINDS)})")
            continue
        if not isinstance(tiers, dict):
            problem(f"environments.{kind}", "a mapping of risk tier to a list of gates is required")
            continue
        for tier, gates in tiers.items():
            path = f"environments.{kind}.{tier}"
            if tier not in TIERS:
                problem(path, f"unknown risk tier (use {', '.join(TIERS)})")
                continue
            if not isinstance(gates, list):
                problem(path, "a list of gates is required")
                continue
            for index, gate in enumerate(gates):
                gate_path = f"{path}[{index}]"
                if not isinstance(gate, dict) or "kind" not in gate:
                    problem(gate_path, "a gate is a mapping with a 'kind'")
                    continue
                gate_class = GATE_KINDS.get(gate["kind"])
                if gate_class is None:
                    problem(f"{gate_path}.kind", f"unknown gate kind (use {', '.join(sorted(GATE_KINDS))})")
                    continue
                for field, message in gate_class.validate_spec(gate, environment_kind=kind):
                    problem(f"{gate_path}.{field}" if field else gate_path, message)
    # Absent, it is the default's (governance first): a document turns suspension off with [] explicitly.
    suspend = document.setdefault("suspend_on_failed_check", list(DEFAULT_POLICY["suspend_on_failed_check"]))
    if not isinstance(suspend, list):
        wrong = f"got {json.dumps(suspend, default=str)}, not a list"
    else:
        unknown = [json.dumps(kind, default=str) for kind in suspend if kind not in KINDS]
        verb = "is not an environment kind" if len(unknown) == 1 else "are not environment kinds"
        wrong = f"{', '.join(unknown)} {verb}" if unknown else ""
    if wrong:
        problem(
            "suspend_on_failed_check",
            f"a list of the environment kinds whose deployments a failed check suspends, each one of "
            f"{', '.join(KINDS)} (an empty list suspends none); {wrong}",
        )
    if problems:
        raise DomainError("The policy is not valid.", code="invalid_policy", details=problems)
    return document


def gate_specs(document: dict, *, environment_kind: str, tier: str) -> list[dict]:
    """The gates for this environment kind and tier, with the floor applied (DESIGN §4, §5):
    separation of duties always; in production at least one officer's approval and the risk-tier gate."""
    specs = [dict(spec) for spec in document.get("environments", {}).get(environment_kind, {}).get(tier, [])]
    kinds = {spec["kind"] for spec in specs}
    if "separation_of_duties" not in kinds:
        specs.insert(0, {"kind": "separation_of_duties"})
    if environment_kind == EnvironmentKind.PRODUCTION:
        approvals = [spec for spec in specs if spec["kind"] == "approvals"]
        if not approvals:
            specs.insert(0, {"kind": "approvals", "min": 1})
        for spec in approvals:
            spec["min"] = max(1, int(spec.get("min", 1)))
        if "risk_tier" not in kinds:
            specs.append({"kind": "risk_tier"})
    return specs
