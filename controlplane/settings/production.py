"""Production: behind a TLS-terminating proxy, secrets from the environment, no defaults for them."""

from controlplane import env

from .base import *  # noqa: F403

SECRET_KEY = env.string("DJANGO_SECRET_KEY")
DEBUG = False

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
TOLLGATE_PROXY_COUNT = env.integer("TOLLGATE_PROXY_COUNT", 1, minimum=0)
SECURE_SSL_REDIRECT = env.boolean("TOLLGATE_SSL_REDIRECT", True)
# Plain-HTTP probes of the health endpoints must not be redirected.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env.integer("TOLLGATE_HSTS_SECONDS", 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
STORAGES["staticfiles"]["BACKEND"] = "whitenoise.storage.CompressedManifestStaticFilesStorage"  # noqa: F405
WHITENOISE_USE_FINDERS = False
WHITENOISE_AUTOREFRESH = False
REST_FRAMEWORK = {**REST_FRAMEWORK, "NUM_PROXIES": TOLLGATE_PROXY_COUNT}  # noqa: F405
# Webhook targets: https and public addresses only, whatever the environment says (DESIGN §6).
TOLLGATE_WEBHOOK_ALLOW_HTTP = False
TOLLGATE_WEBHOOK_ALLOW_PRIVATE_TARGETS = False
