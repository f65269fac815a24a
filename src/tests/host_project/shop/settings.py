"""The shop's settings. The lines eventlog asks of a host are marked "eventlog:"."""

import os
from urllib.parse import unquote, urlsplit

from eventlog.scheduling.beat import beat_schedule

SECRET_KEY = os.environ["SHOP_SECRET_KEY"]
DEBUG = False
ALLOWED_HOSTS = ["localhost"]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "eventlog",  # eventlog:
    "orders",
]

database = urlsplit(os.environ["SHOP_DATABASE_URL"])
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": database.path.lstrip("/"),
        "USER": unquote(database.username or ""),
        "PASSWORD": unquote(database.password or ""),
        "HOST": database.hostname or "",
        "PORT": database.port or "",
    }
}

# eventlog: its settings, and the embedded ClickHouse server's data.
EVENTLOG = {
    "CLICKHOUSE_URL": os.environ["SHOP_CLICKHOUSE_URL"],
    "EMBEDDED_CLICKHOUSE_PATH": os.environ["SHOP_CLICKHOUSE_DATA"],
    "REDIS_URL": os.environ["SHOP_REDIS_URL"],
    "ENVIRONMENT": "shop",
    "RELAY_INTERVAL_SECONDS": 0.2,
}
if os.environ.get("SHOP_BROKEN_EVENTLOG"):
    EVENTLOG["RELAY_BATCH_SIZ"] = 100  # a misspelt key, which the checks report

CELERY_BROKER_URL = os.environ["SHOP_REDIS_URL"]
CELERY_BEAT_SCHEDULE = beat_schedule(EVENTLOG)  # eventlog: the relay and the purge
