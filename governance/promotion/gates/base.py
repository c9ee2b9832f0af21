"""The gate registry. A gate kind is one small class: it validates its policy spec and evaluates one
version against one environment, given a ``GateContext``. See README.md beside this file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

PASSED, FAILED, PENDING, WAIVED = "passed", "failed", "pending", "waived"


@dataclass
class GateResult:
    kind: str
    status: str
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)
    spec: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in (PASSED, WAIVED)

    def as_dict(self) -> dict:
        return {"kind": self.kind, "status": self.status, "reason": self.reason, "evidence": self.evidence,
                "spec": self.spec}  # fmt: skip


class Gate:
    kind: ClassVar[str]
    floor: ClassVar[bool] = False  # floor gates are never waived, by an exception or an emergency
    description: ClassVar[str] = ""

    def __init__(self, spec: dict):
        self.spec = spec

    @classmethod
    def validate_spec(cls, spec: dict, *, environment_kind: str) -> list[tuple[str, str]]:
        """Problems with a policy's spec of this gate, as (field, message); empty when it is valid."""
        unknown = sorted(set(spec) - {"kind"} - set(cls.spec_fields()))
        return [(name, "unknown field") for name in unknown]

    @classmethod
    def spec_fields(cls) -> tuple[str, ...]:
        return ()

    @classmethod
    def prefetch(cls, contexts: list) -> None:
        """Load, for every ``GateContext`` at once, what ``evaluate`` reads beyond the context, into
        ``ctx.prefetched[cls.kind]``: the officer's queue evaluates every request's gates together, in a number
        of queries that does not grow with the number of requests. A kind that reads only the context has
        nothing to load."""

    @property
    def target(self) -> str:
        """Which gate of this kind, for exceptions that waive one (e.g. a metric's name)."""
        return ""

    def evaluate(self, ctx) -> GateResult:
        raise NotImplementedError

    def result(self, status: str, reason: str, **evidence) -> GateResult:
        return GateResult(self.kind, status, reason, evidence, self.spec)


GATE_KINDS: dict[str, type[Gate]] = {}


def register(gate_class: type[Gate]) -> type[Gate]:
    GATE_KINDS[gate_class.kind] = gate_class
    return gate_class
