"""Settings for the test suite: the base settings with a fast password hasher."""

import os

from .base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["default"]["OPTIONS"]["location"] = str(VAR_DIR / "test-storage")  # noqa: F405

# Throttle counters of one test run never meet another's in a shared Redis.
CACHES["default"]["KEY_PREFIX"] = f"tollgate-test-{os.getpid()}"  # noqa: F405
