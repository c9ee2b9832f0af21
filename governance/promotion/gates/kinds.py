"""The built-in gate kinds (DESIGN §5). The monitoring app registers ``check``."""

from __future__ import annotations

import math

from governance.accounts.models import Role
from governance.promotion.gates.base import FAILED, PASSED, PENDING, Gate, register
from governance.promotion.models import EnvironmentKind
from governance.provenance.models import DatasetRole
from governance.registry.models import MODEL_CARD_FIELDS, RiskTier


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# The card fields the model_card gate requires unless its spec names others.
REQUIRED_CARD_FIELDS = (
    "intended_use",
    "out_of_scope_uses",
    "users_and_affected_persons",
    "limitations",
    "ethical_considerations",
    "evaluation_data",
    "human_oversight",
    "proposed_risk_tier",
    "risk_tier_rationale",
)


@register
class ApprovalsGate(Gate):
    """At least ``min`` distinct governance officers approved, on the current evidence, and nobody rejected."""

    kind = "approvals"
    floor = True

    @classmethod
    def spec_fields(cls):
        return ("min",)

    @classmethod
    def validate_spec(cls, spec, *, environment_kind):
        problems = super().validate_spec(spec, environment_kind=environment_kind)
        minimum = spec.get("min", 1)
        if not isinstance(minimum, int) or isinstance(minimum, bool) or not 0 <= minimum <= 10:
            problems.append(("min", "an integer from 0 to 10"))
        elif environment_kind == EnvironmentKind.PRODUCTION and minimum < 1:
            problems.append(("min", "production always needs at least one approval by a governance officer"))
        return problems

    def evaluate(self, ctx):
        needed = max(int(self.spec.get("min", 1)), 2 if ctx.emergency else 0)
        if ctx.request is None:
            return self.result(
                PENDING, f"needs {needed} approval(s) by governance officers on a request", needed=needed
            )
        rejects = [d for d in ctx.decisions if d.outcome == "reject"]
        if rejects:
            names = ", ".join(sorted(d.reviewer.username for d in rejects))
            return self.result(FAILED, f"rejected by {names}", rejected_by=names)
        approvers = sorted(
            {
                d.reviewer.username
                for d in ctx.decisions
                if d.outcome == "approve"
                and d.reviewer_id not in ctx.excluded
                and Role.GOVERNANCE_OFFICER in ctx.officer_roles.get(d.reviewer_id, ())
            }
        )
        evidence = {"needed": needed, "approved_by": approvers}
        if len(approvers) >= needed:
            return self.result(PASSED, f"approved by {', '.join(approvers) or 'nobody needed'}", **evidence)
        return self.result(PENDING, f"{len(approvers)} of {needed} approval(s) by governance officers", **evidence)


@register
class SeparationOfDutiesGate(Gate):
    """Always on: nobody who registered the version, edited its card, requested it or appears as an agent in
    its lineage may approve it; service accounts never approve."""

    kind = "separation_of_duties"
    floor = True

    def evaluate(self, ctx):
        offending = sorted(
            d.reviewer.username for d in ctx.decisions if d.outcome == "approve" and d.reviewer_id in ctx.excluded
        )
        evidence = {"excluded": sorted(ctx.excluded_reasons.values(), key=lambda e: e["principal"])}
        if offending:
            return self.result(FAILED, f"approved by excluded principals: {', '.join(offending)}", **evidence)
        return self.result(PASSED, "no approval comes from anyone who built or requested this version", **evidence)


@register
class ModelCardGate(Gate):
    """The card's required fields are filled and a governance officer confirmed the risk tier (a confirmation
    that a later card edit voided, or whose confirmer separation of duties now excludes, does not count)."""

    kind = "model_card"

    @classmethod
    def spec_fields(cls):
        return ("required_fields",)

    @classmethod
    def validate_spec(cls, spec, *, environment_kind):
        problems = super().validate_spec(spec, environment_kind=environment_kind)
        fields = spec.get("required_fields", [])
        if not isinstance(fields, list) or any(f not in MODEL_CARD_FIELDS for f in fields):
            problems.append(("required_fields", f"a list of card fields ({', '.join(MODEL_CARD_FIELDS)})"))
        return problems

    def evaluate(self, ctx):
        required = self.spec.get("required_fields", list(REQUIRED_CARD_FIELDS))
        content = ctx.card.content if ctx.card else {}
        missing = [name for name in required if content.get(name) in (None, "", [], {})]
        evidence = {"missing": missing, "confirmed_risk_tier": ctx.card.confirmed_risk_tier if ctx.card else ""}
        if ctx.confirmation_note:
            evidence["confirmation_note"] = ctx.confirmation_note
        reasons = []
        if missing:
            reasons.append(f"missing card fields: {', '.join(missing)}")
        if not ctx.tier_confirmed:
            note = f" ({ctx.confirmation_note})" if ctx.confirmation_note else ""
            reasons.append(f"the risk tier is not confirmed by a governance officer{note}")
        if reasons:
            return self.result(FAILED, "; ".join(reasons), **evidence)
        return self.result(PASSED, "card complete, risk tier confirmed", **evidence)


@register
class ProvenanceGate(Gate):
    """Every training dataset version is registered with a hash, a licence and a classification; personal
    data is justified; restricted data needs an exception."""

    kind = "provenance"

    @classmethod
    def spec_fields(cls):
        return ("roles",)

    @classmethod
    def validate_spec(cls, spec, *, environment_kind):
        problems = super().validate_spec(spec, environment_kind=environment_kind)
        roles = spec.get("roles", ["trained_on"])
        if not isinstance(roles, list) or not roles or any(r not in DatasetRole.values for r in roles):
            problems.append(("roles", f"a list of dataset roles ({', '.join(DatasetRole.values)})"))
        return problems

    def evaluate(self, ctx):
        roles = self.spec.get("roles", ["trained_on"])
        links = [link for link in ctx.links if link.role in roles]
        if not links:
            return self.result(FAILED, f"no dataset version is linked as {' or '.join(roles)}", datasets=[])
        problems, checked = [], []
        for link in links:
            version, dataset = link.dataset_version, link.dataset_version.dataset
            label = f"{dataset.namespace}/{dataset.name}@{version.version}"
            checked.append({"dataset_version": version.pk, "label": label, "sha256": version.sha256})
            if not version.sha256:
                problems.append(f"{label} was only observed through OpenLineage: register it with its hash")
            if not dataset.license:
                problems.append(f"{label} has no licence")
            if not dataset.classification:
                problems.append(f"{label} has no classification")
            if dataset.contains_pii and not dataset.pii_justification.strip():
                problems.append(f"{label} holds personal data without a justification")
            if dataset.classification == "restricted":
                problems.append(f"{label} is restricted: it needs a policy exception")
        if problems:
            return self.result(FAILED, "; ".join(problems), datasets=checked)
        return self.result(PASSED, f"{len(checked)} dataset version(s) with hashes, licences and classifications",
                           datasets=checked)  # fmt: skip


@register
class MetricGate(Gate):
    """A registered metric meets a threshold (every recorded value of it, when there are several)."""

    kind = "metric"

    @classmethod
    def spec_fields(cls):
        return ("name", "min", "max", "subgroup", "dataset_role")

    @classmethod
    def validate_spec(cls, spec, *, environment_kind):
        problems = super().validate_spec(spec, environment_kind=environment_kind)
        if not isinstance(spec.get("name"), str) or not spec.get("name"):
            problems.append(("name", "the metric's name is required"))
        if "min" not in spec and "max" not in spec:
            problems.append(("min", "give min, max or both"))
        for bound in ("min", "max"):
            if bound in spec and not _is_number(spec[bound]):
                problems.append((bound, "a finite number"))
        if "subgroup" in spec and not isinstance(spec["subgroup"], str):
            problems.append(("subgroup", "a string"))
        if "dataset_role" in spec and spec["dataset_role"] not in DatasetRole.values:
            problems.append(("dataset_role", f"one of {', '.join(DatasetRole.values)}"))
        return problems

    @property
    def target(self):
        return self.spec.get("name", "")

    def evaluate(self, ctx):
        name, subgroup = self.spec["name"], self.spec.get("subgroup", "")
        metrics = [m for m in ctx.metrics if m.name == name and m.subgroup == subgroup]
        role = self.spec.get("dataset_role")
        if role:
            linked = {link.dataset_version_id for link in ctx.links if link.role == role}
            metrics = [m for m in metrics if m.dataset_version_id in linked]
        bounds = " and ".join(f"{'≥' if b == 'min' else '≤'} {self.spec[b]}" for b in ("min", "max") if b in self.spec)
        label = f"{name}{f' [{subgroup}]' if subgroup else ''}{f' on {role} data' if role else ''}"
        if not metrics:
            return self.result(FAILED, f"no {label} metric is recorded (needs {bounds})", values=[])
        values = [m.value for m in metrics]
        bad = [
            v
            for v in values
            if ("min" in self.spec and v < self.spec["min"]) or ("max" in self.spec and v > self.spec["max"])
        ]
        if bad:
            return self.result(FAILED, f"{label} = {bad[0]} does not meet {bounds}", values=values)
        return self.result(PASSED, f"{label} = {values[0] if len(values) == 1 else values} meets {bounds}",
                           values=values)  # fmt: skip


@register
class RiskTierGate(Gate):
    """Blocks tiers the policy names; ``unacceptable`` never reaches production."""

    kind = "risk_tier"
    floor = True

    @classmethod
    def spec_fields(cls):
        return ("blocked",)

    @classmethod
    def validate_spec(cls, spec, *, environment_kind):
        problems = super().validate_spec(spec, environment_kind=environment_kind)
        blocked = spec.get("blocked", [])
        if not isinstance(blocked, list) or any(t not in RiskTier.values for t in blocked):
            problems.append(("blocked", f"a list of risk tiers ({', '.join(RiskTier.values)})"))
        return problems

    def evaluate(self, ctx):
        blocked = set(self.spec.get("blocked", []))
        if ctx.environment.kind == EnvironmentKind.PRODUCTION:
            blocked.add(RiskTier.UNACCEPTABLE)
        evidence = {"tier": ctx.tier, "confirmed": ctx.tier_confirmed, "blocked": sorted(blocked)}
        if ctx.tier in blocked:
            return self.result(FAILED, f"risk tier {ctx.tier} may not run in {ctx.environment.name}", **evidence)
        note = "" if ctx.tier_confirmed else " (not confirmed: treated as high)"
        return self.result(PASSED, f"risk tier {ctx.tier}{note}", **evidence)
