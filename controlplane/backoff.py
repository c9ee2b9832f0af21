"""The one backoff of every retry whose attempts are counted in the database (outbox publishes, webhook
deliveries): exponential from ``base``, capped at ``cap``, optionally jittered downwards so the retries of one
outage do not all come back at once. Transient errors inside a task retry through Celery's own
``autoretry_for`` / ``retry_backoff`` / ``retry_jitter`` instead."""

import random


def backoff_seconds(attempt: int, *, base: float, cap: float, jitter: float = 0.0) -> float:
    """The pause after attempt number ``attempt`` (1-based): ``base * 2**(attempt-1)``, at most ``cap``, then
    shortened by up to ``jitter`` (a fraction: 0.2 waits 80-100 % of it)."""
    delay = min(base * 2 ** max(attempt - 1, 0), cap)
    return delay * random.uniform(1.0 - jitter, 1.0) if jitter else delay  # noqa: S311 -- jitter, not a secret
