"""The one place that reads the environment.

Every setting that can come from the environment goes through these helpers. They fail loudly
(``ImproperlyConfigured``) on values they cannot parse, and each ``NAME`` may instead be given as
``NAME_FILE``: the path of a file holding the value (Docker and Kubernetes secrets).
"""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_MISSING = object()


def raw(name: str, default=_MISSING):
    """The variable's text, from ``NAME`` or the file named by ``NAME_FILE``."""
    if name in os.environ:
        return os.environ[name]
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc}") from exc
    if default is _MISSING:
        raise ImproperlyConfigured(f"The environment variable {name} is required.")
    return default


def string(name: str, default=_MISSING) -> str:
    return raw(name, default)


def boolean(name: str, default: bool) -> bool:
    value = raw(name, None)
    if value is None:
        return default
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true or false).")


def integer(name: str, default: int, *, minimum: int | None = None) -> int:
    value = raw(name, None)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum of {minimum}.")
    return number


def string_list(name: str, default: list[str]) -> list[str]:
    value = raw(name, None)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def time_limits(*, soft: str, hard: str, default_hard: int) -> tuple[int, int]:
    """A task's (soft, hard) time limits in seconds. An unset soft limit is 90 % of the hard one; a soft limit
    set explicitly must be below the hard one (Celery refuses to publish a task whose soft limit is above its
    hard one, and one equal to it never fires first)."""
    hard_limit = integer(hard, default_hard, minimum=2)
    if raw(soft, None) is None:
        return hard_limit * 9 // 10, hard_limit
    soft_limit = integer(soft, 0, minimum=1)
    if soft_limit >= hard_limit:
        source = f"{hard}={hard_limit}" if raw(hard, None) is not None else f"{hard} (default {hard_limit})"
        raise ImproperlyConfigured(
            f"{soft}={soft_limit} must be below {source}: the soft time limit asks a task to stop before the hard "
            f"one kills it. Lower {soft}, raise {hard}, or unset {soft} for 90 % of the hard limit "
            f"({hard_limit * 9 // 10})."
        )
    return soft_limit, hard_limit
