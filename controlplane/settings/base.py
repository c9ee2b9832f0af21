"""Settings shared by every environment; values come from the environment through ``controlplane.env``.

With neither ``DATABASE_URL`` nor ``REDIS_URL`` set this is the embedded default: SQLite in the project
folder and Celery tasks run in process.
"""

from pathlib import Path

import dj_database_url
from celery.schedules import crontab

from controlplane import env

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env.string("TOLLGATE_VAR_DIR", str(BASE_DIR / "var")))

SECRET_KEY = env.string("DJANGO_SECRET_KEY", "insecure-development-key-do-not-use-in-production")
DEBUG = env.boolean("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env.string_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.string_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "controlplane",
    "governance",
    "monitoring",
]

MIDDLEWARE = [
    "controlplane.middleware.RequestIdMiddleware",
    # Outermost after the request id, so refusals by the middleware below (413, HTTPS redirects) are logged.
    "governance.audit.middleware.AccessLogMiddleware",
    "controlplane.middleware.UrlCharactersMiddleware",
    "governance.audit.middleware.RefusalAuditMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "controlplane.middleware.BodySizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "governance.console.middleware.SessionLifetimeMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "controlplane.urls"
WSGI_APPLICATION = "controlplane.wsgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: PostgreSQL from DATABASE_URL, otherwise SQLite in the project folder.
DATABASE_URL = env.string("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env.boolean(
        "TOLLGATE_DB_PREPARED_STATEMENTS", True
    ):
        # Parameters bound by the server, and a statement run 5 times on a connection prepared there (psycopg):
        # PostgreSQL then skips parsing and planning it, which was most of its CPU per request (issue 19). Turn
        # off behind a pooler that cannot keep prepared statements (PgBouncer in transaction mode before 1.21).
        DATABASES["default"].setdefault("OPTIONS", {}).update({"server_side_binding": True, "prepare_threshold": 5})
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "tollgate.sqlite3",
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "governance.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:home"
LOGOUT_REDIRECT_URL = "console:login"
# Console sessions (governance.console.middleware): they end after this many idle minutes, and 8 hours after the
# login however busy (SESSION_COOKIE_AGE, which the middleware enforces from the login time).
TOLLGATE_SESSION_IDLE_MINUTES = env.integer("TOLLGATE_SESSION_IDLE_MINUTES", 30, minimum=1)
SESSION_COOKIE_AGE = 8 * 3600

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": env.string("TOLLGATE_STORAGE_DIR", str(VAR_DIR / "storage"))},
    },
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "governance.console.staticfiles.PlotlyFinder",  # plotly.min.js from the plotly package, for console charts
]
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True  # development: no collectstatic needed

# Redis: the Celery broker, the cache behind throttling. Without it tasks run in process.
REDIS_URL = env.string("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Celery (DESIGN §7). Read by controlplane/celery.py through the CELERY_ namespace. The time limits that apply
# are the worker's own (controlplane.celery.WorkerLimitsRequest), never those of the process that sent the task.
CELERY_TASK_SOFT_TIME_LIMIT, CELERY_TASK_TIME_LIMIT = env.time_limits(
    soft="TOLLGATE_TASK_SOFT_TIME_LIMIT", hard="TOLLGATE_TASK_TIME_LIMIT", default_hard=360
)
CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"  # a host: kombu warns when it has none
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
# In process (eager), a task's failure is recorded on its outbox row rather than raised into the request, and a
# task's retry (autoretry_for) runs at once: Celery applies a retry eagerly only when failures do not propagate.
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "monitoring.tasks.run_check": {"queue": "checks"},
    "monitoring.tasks.build_report": {"queue": "reports"},
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    # The digest of yesterday's access log first, then the prune (which keeps yesterday anyway).
    "access-log-digest": {"task": "governance.tasks.access_log_digest", "schedule": crontab(minute=5, hour=0)},
    "access-log-prune": {"task": "governance.tasks.access_log_prune", "schedule": crontab(minute=35, hour=0)},
    "outbox-sweep": {"task": "controlplane.tasks.outbox_sweep", "schedule": 30.0, "options": {"expires": 25}},
    # Check runs still running past their hard time limit plus a margin: re-queued, or timed out.
    "check-runs-reap": {"task": "monitoring.tasks.check_runs_reap", "schedule": 30.0, "options": {"expires": 25}},
    # Raw batches and reference data past their project's retention: files deleted, hashes and results kept.
    "raw-data-prune": {"task": "monitoring.tasks.raw_data_prune", "schedule": crontab(minute=50, hour=0)},
}
CELERY_TIMEZONE = "UTC"
# The outbox (DESIGN §7): a pending row is published again this long after its last publish (then with
# backoff); done rows are kept this many days.
TOLLGATE_OUTBOX_REPUBLISH_SECONDS = env.integer("TOLLGATE_OUTBOX_REPUBLISH_SECONDS", 60, minimum=1)
TOLLGATE_OUTBOX_RETENTION_DAYS = env.integer("TOLLGATE_OUTBOX_RETENTION_DAYS", 7, minimum=1)
# Monitoring (DESIGN §4, §7): check runs (checks queue) and their Evidently reports (reports queue). A run
# still running past its hard limit plus the margin is re-queued while attempts remain, then timed out.
# The worker records the hard limit it applies on the run it claims; the reaper goes by the run's value.
TOLLGATE_CHECK_SOFT_TIME_LIMIT, TOLLGATE_CHECK_TIME_LIMIT = env.time_limits(
    soft="TOLLGATE_CHECK_SOFT_TIME_LIMIT", hard="TOLLGATE_CHECK_TIME_LIMIT", default_hard=CELERY_TASK_TIME_LIMIT
)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Above the longest hard time limit (tasks and checks), so a long task is not redelivered while it runs.
    "visibility_timeout": max(CELERY_TASK_TIME_LIMIT, TOLLGATE_CHECK_TIME_LIMIT) + 600,
    "socket_timeout": 5,
    "socket_connect_timeout": 5,
}
TOLLGATE_CHECK_MAX_ATTEMPTS = env.integer("TOLLGATE_CHECK_MAX_ATTEMPTS", 3, minimum=1)
TOLLGATE_CHECK_REAP_MARGIN_SECONDS = env.integer("TOLLGATE_CHECK_REAP_MARGIN_SECONDS", 60, minimum=0)
TOLLGATE_MAX_BATCH_BYTES = env.integer("TOLLGATE_MAX_BATCH_BYTES", 1024**3, minimum=1024)
TOLLGATE_MAX_BATCH_ROWS = env.integer("TOLLGATE_MAX_BATCH_ROWS", 5_000_000, minimum=1)
# The Evidently report (built after the verdict, for people) samples each side above this many rows and says so
# (monitoring.checks.engine.REPORT_MAX_ROWS); the verdict always uses every row.
TOLLGATE_REPORT_MAX_ROWS = env.integer("TOLLGATE_REPORT_MAX_ROWS", 100_000, minimum=1000)
# A monitor's schedule queues at most this many runs per tick (the newest unchecked batches first).
TOLLGATE_SCHEDULE_MAX_RUNS = env.integer("TOLLGATE_SCHEDULE_MAX_RUNS", 100, minimum=1)
# Check runs queued or running at once (issue 13): per principal who asked (across projects) and per project.
# "Run now" and batch uploads beyond a bound are 429; runs of labels and schedules wait as ``deferred`` instead.
TOLLGATE_CHECK_QUEUE_PER_PRINCIPAL = env.integer("TOLLGATE_CHECK_QUEUE_PER_PRINCIPAL", 20, minimum=1)
TOLLGATE_CHECK_QUEUE_PER_PROJECT = env.integer("TOLLGATE_CHECK_QUEUE_PER_PROJECT", 100, minimum=1)

# API conventions (DESIGN §8).
TOLLGATE_PAGE_SIZE = env.integer("TOLLGATE_PAGE_SIZE", 50, minimum=1)
TOLLGATE_MAX_PAGE_SIZE = env.integer("TOLLGATE_MAX_PAGE_SIZE", 500, minimum=1)
TOLLGATE_MAX_JSON_BODY_BYTES = env.integer("TOLLGATE_MAX_JSON_BODY_BYTES", 1024 * 1024, minimum=1024)
TOLLGATE_MAX_UPLOAD_BYTES = env.integer("TOLLGATE_MAX_UPLOAD_BYTES", 2 * 1024**3, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = TOLLGATE_MAX_JSON_BODY_BYTES
TOLLGATE_THROTTLE_USER = env.string("TOLLGATE_THROTTLE_USER", "2000/min")
TOLLGATE_THROTTLE_ANON = env.string("TOLLGATE_THROTTLE_ANON", "120/min")
TOLLGATE_PROXY_COUNT = env.integer("TOLLGATE_PROXY_COUNT", 0, minimum=0)
TOLLGATE_API_KEY_DEFAULT_TTL_DAYS = env.integer("TOLLGATE_API_KEY_DEFAULT_TTL_DAYS", 365, minimum=1)

# Registered URIs (DESIGN §6): allowed schemes; ``file:`` only when explicitly allowed.
TOLLGATE_URI_SCHEMES = env.string_list("TOLLGATE_URI_SCHEMES", ["s3", "gs", "az", "abfs", "hdfs", "https", "storage"])
TOLLGATE_ALLOW_FILE_URIS = env.boolean("TOLLGATE_ALLOW_FILE_URIS", False)

# Audit (DESIGN §4): checkpoints of every chain head, signed, in the storage backend.
TOLLGATE_AUDIT_SIGNING_KEY = env.string("TOLLGATE_AUDIT_SIGNING_KEY", "") or SECRET_KEY
TOLLGATE_AUDIT_CHECKPOINT_MINUTES = env.integer("TOLLGATE_AUDIT_CHECKPOINT_MINUTES", 10, minimum=1)
# Beat signs a checkpoint of every chain head that moved; a message not run within one interval is superseded.
CELERY_BEAT_SCHEDULE["audit-checkpoint-write"] = {
    "task": "governance.tasks.audit_checkpoint_write",
    "schedule": TOLLGATE_AUDIT_CHECKPOINT_MINUTES * 60.0,
    "options": {"expires": TOLLGATE_AUDIT_CHECKPOINT_MINUTES * 60},
}
TOLLGATE_AUDIT_VERIFY_INLINE_MAX = env.integer("TOLLGATE_AUDIT_VERIFY_INLINE_MAX", 20000, minimum=0)
TOLLGATE_EXCEPTION_MAX_DAYS = env.integer("TOLLGATE_EXCEPTION_MAX_DAYS", 90, minimum=1)
TOLLGATE_ACCESS_LOG_RETENTION_DAYS = env.integer("TOLLGATE_ACCESS_LOG_RETENTION_DAYS", 365, minimum=1)

# Webhooks (DESIGN §6): targets are https and public addresses (checked on the resolved address at send time;
# production.py turns both relaxations off whatever the environment says). Secrets are encrypted with a key
# derived from TOLLGATE_WEBHOOK_ENCRYPTION_KEY (default: SECRET_KEY, read at run time).
TOLLGATE_WEBHOOK_ALLOW_HTTP = env.boolean("TOLLGATE_WEBHOOK_ALLOW_HTTP", False)
TOLLGATE_WEBHOOK_ALLOW_PRIVATE_TARGETS = env.boolean("TOLLGATE_WEBHOOK_ALLOW_PRIVATE_TARGETS", False)
TOLLGATE_WEBHOOK_ENCRYPTION_KEY = env.string("TOLLGATE_WEBHOOK_ENCRYPTION_KEY", "")
TOLLGATE_WEBHOOK_TIMEOUT_SECONDS = env.integer("TOLLGATE_WEBHOOK_TIMEOUT_SECONDS", 5, minimum=1)
# Attempts per delivery, with exponential backoff from BACKOFF up to BACKOFF_MAX seconds between them
# (30 s, 1, 2, 4 ... minutes: about an hour and a half by default).
TOLLGATE_WEBHOOK_MAX_ATTEMPTS = env.integer("TOLLGATE_WEBHOOK_MAX_ATTEMPTS", 8, minimum=1)
TOLLGATE_WEBHOOK_BACKOFF_SECONDS = env.integer("TOLLGATE_WEBHOOK_BACKOFF_SECONDS", 30, minimum=0)
TOLLGATE_WEBHOOK_BACKOFF_MAX_SECONDS = env.integer("TOLLGATE_WEBHOOK_BACKOFF_MAX_SECONDS", 3600, minimum=0)
# A webhook whose deliveries failed (every attempt) this many times in a row is disabled.
TOLLGATE_WEBHOOK_DISABLE_AFTER_FAILURES = env.integer("TOLLGATE_WEBHOOK_DISABLE_AFTER_FAILURES", 5, minimum=1)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "governance.accounts.authentication.BearerKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "governance.accounts.permissions.ReadOnlyKeyPermission",
    ],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "controlplane.api.negotiation.ContentNegotiation",
    "DEFAULT_PAGINATION_CLASS": "controlplane.api.pagination.PageNumberPagination",
    "DEFAULT_FILTER_BACKENDS": ["controlplane.api.filters.StrictFilterBackend"],
    "DEFAULT_THROTTLE_CLASSES": [
        "controlplane.api.throttling.UserThrottle",
        "controlplane.api.throttling.AnonThrottle",
    ],
    "EXCEPTION_HANDLER": "controlplane.api.errors.exception_handler",
    "DEFAULT_METADATA_CLASS": "controlplane.api.metadata.Metadata",
    "DEFAULT_SCHEMA_CLASS": "controlplane.api.schema.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # The anonymous throttle keys on the client address; trust X-Forwarded-For only behind our proxies.
    "NUM_PROXIES": TOLLGATE_PROXY_COUNT,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Tollgate API",
    "DESCRIPTION": "Governance and model-monitoring control plane. Every error has the shape "
    '`{"error": {"code": ..., "message": ..., "details": [...]}}`.',
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # One tag per concern; controlplane.api.schema.concern() puts each path under one.
    "TAGS": [
        {
            "name": "accounts",
            "description": "Who you are, projects, members and their roles, users, API keys, service accounts.",
        },
        {"name": "datasets", "description": "Datasets and their immutable versions: registered by URI or uploaded."},
        {"name": "models", "description": "Registered models, their versions, metrics, dataset links and model cards."},
        {"name": "lineage", "description": "OpenLineage ingest, the lineage graph and PROV export."},
        {"name": "promotion", "description": "Environments, policies, exceptions, gates and promotion requests."},
        {"name": "deployments", "description": "What runs where: the enforcement point, its history, suspension."},
        {"name": "monitoring", "description": "Monitors, production batches, check runs and their reports, alerts."},
        {"name": "audit", "description": "The audit chain, its verification and the access log (auditors, admins)."},
        {"name": "webhooks", "description": "Outgoing event subscriptions and their deliveries."},
        {"name": "health", "description": "Liveness and readiness probes (public)."},
    ],
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": "governance.accounts.models.Role",
        "RiskTierEnum": "governance.registry.models.RiskTier",
        "DatasetRoleEnum": "governance.provenance.models.DatasetRole",
        "DeploymentStateEnum": "governance.promotion.models.Deployment.State",
        "PromotionRequestStateEnum": "governance.promotion.models.PromotionRequest.State",
        "AuditVerificationStateEnum": "governance.audit.models.AuditVerification.State",
        "DatasetVersionKindEnum": "governance.provenance.models.DatasetVersion.Kind",
        "EnvironmentKindEnum": "governance.promotion.models.EnvironmentKind",
        "WebhookDeliveryStateEnum": "governance.webhooks.models.WebhookDelivery.State",
        "ServiceAccountRoleEnum": [("ml_engineer", "ML engineer"), ("auditor", "Auditor")],
        "CheckStateEnum": "monitoring.models.CheckState",
        "MonitorKindEnum": "monitoring.models.MonitorKind",
        "BatchKindEnum": "monitoring.models.Batch.Kind",
        "ReportStateEnum": "monitoring.models.ReportState",
        "MonitorStateEnum": "monitoring.models.MonitorState",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "controlplane.api.schema.add_error_component",
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.string("TOLLGATE_LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR"}},
}
