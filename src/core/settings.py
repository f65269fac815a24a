"""Django settings: every value comes from `core.env.load_config()`, read once at import."""

from __future__ import annotations

from typing import Any

from core.env import REPO_ROOT, Config, load_config
from core.logs import logging_settings
from core.sentry import init_sentry
from eventlog.conf import DEFAULTS as EVENTLOG_DEFAULTS
from eventlog.scheduling.beat import beat_schedule

CONFIG = load_config()
init_sentry(CONFIG)

BASE_DIR = REPO_ROOT / "src"
DEBUG = CONFIG.debug
SECRET_KEY = CONFIG.secret_key
ALLOWED_HOSTS = CONFIG.allowed_hosts

# Behind a TLS-terminating proxy in production (DJANGO_HTTPS=1): HTTPS only, secure cookies, HSTS.
# Probes and Prometheus scrape over plain HTTP inside the network, so those paths are not redirected.
if CONFIG.https:
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = 365 * 24 * 3600
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "eventlog",
    "users",
]

MIDDLEWARE = [
    "core.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Static files (STATIC_ROOT, from collectstatic) served by Django, last, so that they carry every
    # header the middleware above gives an answer (nosniff, HSTS, frame and referrer policy).
    "whitenoise.middleware.WhiteNoiseMiddleware",
]

ROOT_URLCONF = "core.urls"
WSGI_APPLICATION = "core.wsgi.application"

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

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": CONFIG.database.name,
        "USER": CONFIG.database.user,
        "PASSWORD": CONFIG.database.password,
        "HOST": CONFIG.database.host,
        "PORT": CONFIG.database.port,
        # Persistent connections: the relay and the API run many short transactions.
        "CONN_MAX_AGE": 60,
        # No `SELECT 1` before each request's first query: one round trip less per request. A
        # connection broken by a PostgreSQL restart fails one request, then is discarded.
        "CONN_HEALTH_CHECKS": False,
        # Direct, persistent connections, so prepared statements are safe: emit_events prepares its
        # insert (Django's own queries bind client-side, unprepared). PREPARED_STATEMENTS=0 turns
        # them off, for a transaction-pooling proxy in between.
        "OPTIONS": {"prepare_threshold": 5 if CONFIG.prepared_statements else None},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
# collectstatic's output, filled by `make run` and the image's build; served by WhiteNoise (MIDDLEWARE)
STATIC_ROOT = REPO_ROOT / "var" / "static"

# The HTTP API enforces its own byte limit (INGEST_MAX_BYTES, answered with 413); Django's
# form-parsing limit must not cut in first with a 400.
DATA_UPLOAD_MAX_MEMORY_SIZE = None

# Celery: JSON only, results are not needed (the relay reports through the outbox tables).
CELERY_BROKER_URL = CONFIG.broker_url
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False


# eventlog's own settings (eventlog/conf.py), from the environment's configuration: every key of
# the app's DEFAULTS is a field of core.env.Config of the same name.
def eventlog_settings(config: Config) -> dict[str, Any]:
    return {key: getattr(config, key.lower()) for key in EVENTLOG_DEFAULTS}


EVENTLOG = eventlog_settings(CONFIG)
CELERY_BEAT_SCHEDULE = beat_schedule(EVENTLOG)

LOGGING = logging_settings(CONFIG)
