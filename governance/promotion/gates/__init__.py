from . import kinds  # noqa: F401 - registers the built-in gate kinds
from .base import FAILED, GATE_KINDS, PASSED, PENDING, WAIVED, Gate, GateResult, register

__all__ = ["FAILED", "GATE_KINDS", "PASSED", "PENDING", "WAIVED", "Gate", "GateResult", "register"]
