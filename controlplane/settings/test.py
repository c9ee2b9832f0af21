"""Settings for the test suite: the base settings with a fast password hasher."""

import os

from controlplane import env

from .base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["default"]["OPTIONS"]["location"] = str(VAR_DIR / "test-storage")  # noqa: F405

# Throttle counters of one test run never meet another's in a shared Redis.
CACHES["default"]["KEY_PREFIX"] = f"tollgate-test-{os.getpid()}"  # noqa: F405

# Webhook tests deliver to a local plain-HTTP receiver, quickly (the worker subprocess reads these too; a test
# may tune them through the environment before it starts a worker).
TOLLGATE_WEBHOOK_ALLOW_HTTP = True
TOLLGATE_WEBHOOK_ALLOW_PRIVATE_TARGETS = True
TOLLGATE_WEBHOOK_BACKOFF_SECONDS = env.integer("TOLLGATE_WEBHOOK_BACKOFF_SECONDS", 1, minimum=0)
TOLLGATE_WEBHOOK_BACKOFF_MAX_SECONDS = env.integer("TOLLGATE_WEBHOOK_BACKOFF_MAX_SECONDS", 4, minimum=0)
TOLLGATE_WEBHOOK_MAX_ATTEMPTS = env.integer("TOLLGATE_WEBHOOK_MAX_ATTEMPTS", 3, minimum=1)

# Monitoring: a check may be slowed down so a test can kill its worker mid-run (0: no delay; tests set it
# through the environment of the worker they start). The test app tests/monitoring/slow_checks.py applies it.
TOLLGATE_TEST_CHECK_DELAY_SECONDS = env.integer("TOLLGATE_TEST_CHECK_DELAY_SECONDS", 0, minimum=0)
INSTALLED_APPS = [*INSTALLED_APPS, "tests.monitoring.slow_checks.SlowChecks"]  # noqa: F405
