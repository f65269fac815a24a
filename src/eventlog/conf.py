"""eventlog's settings: one `EVENTLOG = {...}` dict in the host project's Django settings, merged
over DEFAULTS and checked once.

Besides Django's own settings (SECRET_KEY, DATABASES) eventlog reads nothing of the host's
settings and never the environment: a project maps its own configuration into this dict (the
reference project does it from environment variables in core/settings.py). A missing or malformed
value is reported by Django's system checks (eventlog/checks.py, ids eventlog.E001...), which
`migrate`, `runserver` and most commands run first; `app_settings()` raises ImproperlyConfigured
with the same messages for a process that skipped them (a worker).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed


@dataclass(frozen=True)
class EventlogSettings:
    """The values in effect; each field is the lower-case form of its key (CLICKHOUSE_URL ->
    clickhouse_url). Defaults are the documented ones (DEFAULTS)."""

    clickhouse_url: str = ""  # required: http(s)://user:password@host:port/database
    clickhouse_connect_timeout: float = 10.0
    clickhouse_send_receive_timeout: float = 60.0
    clickhouse_verify: bool = True
    clickhouse_ca_cert: str = ""
    clickhouse_cluster: str = ""  # empty: one node; otherwise the cluster of the replicated DDL
    # The embedded server (`manage.py embedded_clickhouse`, the `embedded` extra) keeps its data
    # here and serves CLICKHOUSE_URL's user and password where the URL points (or at LISTEN,
    # host:port). Empty: ClickHouse is a server of its own.
    embedded_clickhouse_path: str = ""
    embedded_clickhouse_listen: str = ""
    environment: str = "production"  # an event's environment when its producer names none
    outbox_database: str = "default"  # the alias in DATABASES of the outbox's tables
    # emit_events' insert as a prepared statement, planned once per connection. Off behind a
    # transaction-pooling proxy (PgBouncer's transaction mode), where a connection's prepared
    # statements are not the next transaction's.
    prepared_statements: bool = True
    redis_url: str = "redis://127.0.0.1:6379/0"  # the relay's coordination and the rate limits
    relay_interval_seconds: float = 0.5
    relay_batch_size: int = 25_000
    relay_max_batches_per_run: int = 100
    relay_slots: int = 2
    relay_lease_seconds: float = 30.0
    relay_max_events_per_second: int = 0  # 0: no limit
    outbox_retention_days: float = 7.0
    outbox_purge_interval_seconds: float = 60.0
    ingest_max_events: int = 1000
    ingest_max_bytes: int = 5 * 1024 * 1024
    ingest_rate_limit_per_minute: int = 0  # 0: no limit
    read_rate_limit_per_minute: int = 600
    read_max_execution_seconds: float = 10.0
    read_max_memory_bytes: int = 2 * 1024**3
    metrics_token: str = ""  # empty: /metrics is open
    ready_max_lag_seconds: float = 300.0


DEFAULTS: dict[str, Any] = {
    field.name.upper(): field.default for field in dataclasses.fields(EventlogSettings)
}
# Each number's smallest allowed value.
_MINIMUMS: dict[str, float] = {
    "CLICKHOUSE_CONNECT_TIMEOUT": 0.1,
    "CLICKHOUSE_SEND_RECEIVE_TIMEOUT": 0.1,
    "RELAY_INTERVAL_SECONDS": 0.01,
    "RELAY_BATCH_SIZE": 1,
    "RELAY_MAX_BATCHES_PER_RUN": 1,
    "RELAY_SLOTS": 1,
    "RELAY_LEASE_SECONDS": 1.0,
    "RELAY_MAX_EVENTS_PER_SECOND": 0,
    "OUTBOX_RETENTION_DAYS": 0.0,
    "OUTBOX_PURGE_INTERVAL_SECONDS": 1.0,
    "INGEST_MAX_EVENTS": 1,
    "INGEST_MAX_BYTES": 1,
    "INGEST_RATE_LIMIT_PER_MINUTE": 0,
    "READ_RATE_LIMIT_PER_MINUTE": 0,
    "READ_MAX_EXECUTION_SECONDS": 0.1,
    "READ_MAX_MEMORY_BYTES": 1024**2,
    "READY_MAX_LAG_SECONDS": 0.0,
}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HOST_PORT = re.compile(r"[^\s:\[\]]+:([0-9]{1,5})")  # IPv4 or a name: the server binds IPv4


@dataclass(frozen=True)
class SettingProblem:
    """One thing wrong with EVENTLOG, under a stable check id."""

    id: str
    message: str
    hint: str | None = None


def parse(raw: object) -> tuple[EventlogSettings | None, list[SettingProblem]]:
    """The settings `raw` (the EVENTLOG dict) gives over DEFAULTS, or None and what is wrong."""
    if not isinstance(raw, Mapping):
        hint = "EVENTLOG = {'CLICKHOUSE_URL': 'http://user:password@host:8123/default', ...}"
        return None, [
            SettingProblem("eventlog.E001", f"EVENTLOG must be a dict, got {type(raw).__name__}", hint)
        ]
    problems = [
        SettingProblem(
            "eventlog.E001", f"EVENTLOG has an unknown key {key!r}", f"known keys: {', '.join(DEFAULTS)}"
        )
        for key in raw
        if key not in DEFAULTS
    ]
    values = {key: _coerced(key, raw.get(key, default)) for key, default in DEFAULTS.items()}
    problems += [problem for key, value in values.items() if (problem := _check(key, value))]
    problems += _check_clickhouse_url(
        values["CLICKHOUSE_URL"], embedded=bool(values["EMBEDDED_CLICKHOUSE_PATH"])
    )
    if problems:
        return None, problems
    return EventlogSettings(**{key.lower(): value for key, value in values.items()}), []


def _coerced(key: str, value: Any) -> Any:
    """An int given for a float setting, as a float (10 for 10.0 is what people write)."""
    if type(DEFAULTS[key]) is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _check(key: str, value: object) -> SettingProblem | None:
    """A value of the wrong type or out of range, as eventlog.E002."""
    expected = type(DEFAULTS[key])
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        return SettingProblem(
            "eventlog.E002", f"EVENTLOG[{key!r}] must be a {expected.__name__}, got {value!r}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        return SettingProblem("eventlog.E002", f"EVENTLOG[{key!r}] must be a finite number, got {value!r}")
    if key == "ENVIRONMENT" and not (value and len(str(value)) <= 255 and "\x00" not in str(value)):
        message = f"EVENTLOG['ENVIRONMENT'] must be 1 to 255 characters without NUL, got {value!r}"
        return SettingProblem("eventlog.E002", message)
    minimum = _MINIMUMS.get(key)
    if minimum is not None and value < minimum:
        return SettingProblem("eventlog.E002", f"EVENTLOG[{key!r}] must be >= {minimum}, got {value!r}")
    if key == "EMBEDDED_CLICKHOUSE_LISTEN" and value and not _is_host_port(str(value)):
        return SettingProblem(
            "eventlog.E002",
            f"EVENTLOG['EMBEDDED_CLICKHOUSE_LISTEN'] must be host:port (IPv4 or a name), got {value!r}",
        )
    if key == "CLICKHOUSE_CLUSTER" and value and not _IDENTIFIER.fullmatch(str(value)):
        return SettingProblem(
            "eventlog.E002", f"EVENTLOG['CLICKHOUSE_CLUSTER'] must be a plain identifier, got {value!r}"
        )
    return None


def _is_host_port(value: str) -> bool:
    match = _HOST_PORT.fullmatch(value)
    return match is not None and 1 <= int(match.group(1)) <= 65535


def _check_clickhouse_url(url: object, embedded: bool) -> list[SettingProblem]:
    """CLICKHOUSE_URL missing or malformed, as eventlog.E003. The embedded server accepts the URL's
    user and password, and only with a password."""
    shape = (
        "http(s)://user:password@host:port/database, such as http://eventlog:secret@127.0.0.1:8123/default"
    )
    if not isinstance(url, str) or not url:
        return [
            SettingProblem(
                "eventlog.E003", "EVENTLOG['CLICKHOUSE_URL'] is required", f"it looks like {shape}"
            )
        ]
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 (the property raises for an invalid port)
    except ValueError:
        return [SettingProblem("eventlog.E003", f"EVENTLOG['CLICKHOUSE_URL'] has an invalid port: {url!r}")]
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return [SettingProblem("eventlog.E003", f"EVENTLOG['CLICKHOUSE_URL'] must be {shape}; got {url!r}")]
    database = parts.path.strip("/") or "default"
    if not _IDENTIFIER.fullmatch(database):
        return [
            SettingProblem(
                "eventlog.E003", f"EVENTLOG['CLICKHOUSE_URL'] names an invalid database {database!r}"
            )
        ]
    if embedded and not parts.password:
        message = "EVENTLOG['CLICKHOUSE_URL'] has no password, which the embedded server requires"
        return [SettingProblem("eventlog.E003", message, "the server accepts the URL's user and password")]
    return []


def raw_value(key: str) -> Any:
    """One value as EVENTLOG gives it (or its default), unchecked: for the checks and the router,
    which must work while another key is wrong."""
    raw = getattr(settings, "EVENTLOG", {})
    return raw.get(key, DEFAULTS[key]) if isinstance(raw, Mapping) else DEFAULTS[key]


@functools.cache
def app_settings() -> EventlogSettings:
    """The settings in effect (read once; a test's change of EVENTLOG reads them again)."""
    parsed, problems = parse(getattr(settings, "EVENTLOG", {}))
    if parsed is None:
        raise ImproperlyConfigured("; ".join(f"{problem.message} ({problem.id})" for problem in problems))
    return parsed


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting == "EVENTLOG":
        app_settings.cache_clear()


setting_changed.connect(_reload)
