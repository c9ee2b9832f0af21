"""Codes of the structured warnings a check run carries (``CheckRun.warnings``: ``[{"code", "message", ...}]``).

Pure (no Django, no NumPy): the drift engine writes these codes, the models and the suspension code read them.
A warning's ``message`` is worded to become the reason of an ``inconclusive`` verdict once verdicts account for
sample size (the honest-drift issue).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# The window is below the size at which the drift methods of some columns tell drift from sampling noise
# (``monitoring.checks.engine.RELIABLE_ROWS``). Fields: message, columns, methods, rows, reference_rows, effective_rows,
# reliable_rows, suitable_methods.
WINDOW_BELOW_RELIABLE_SIZE = "window_below_reliable_size"


def below_reliable_size(warnings: Iterable[Mapping[str, Any]] | None) -> bool:
    """Whether a run's warnings say its window was below the reliable size of its methods."""
    return any(w.get("code") == WINDOW_BELOW_RELIABLE_SIZE for w in warnings or ())
