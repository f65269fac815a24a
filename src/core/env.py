"""The one place that reads the environment.

Every setting is read here, parsed into a typed value, and checked once at start-up: a missing or
malformed value raises `ConfigurationError` naming the variable, so a process never starts half
configured. `src/core/.env` (optional) fills in variables the environment does not set; the
environment always wins. `src/core/.env.example` documents every variable read below.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from dotenv import dotenv_values

REPO_ROOT = Path(__file__).resolve().parents[2]
ENV_FILE = Path(__file__).resolve().parent / ".env"

# Only for DEBUG runs on a developer's machine; production must set DJANGO_SECRET_KEY.
_DEV_SECRET_KEY = "dev-only-insecure-secret-key-do-not-use-in-production"  # noqa: S105


class ConfigurationError(Exception):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class DatabaseConfig:
    name: str
    user: str
    password: str
    host: str
    port: int


@dataclass(frozen=True)
class Config:
    debug: bool
    https: bool
    secret_key: str
    allowed_hosts: list[str]
    database: DatabaseConfig
    broker_url: str
    clickhouse_url: str
    # The embedded server's data (`manage.py embedded_clickhouse`); empty with EMBEDDED_CLICKHOUSE=0,
    # when ClickHouse is a server of its own.
    embedded_clickhouse_path: str
    embedded_clickhouse_listen: str  # host:port; empty: where CLICKHOUSE_URL points
    clickhouse_connect_timeout: float
    clickhouse_send_receive_timeout: float
    clickhouse_verify: bool
    clickhouse_ca_cert: str
    clickhouse_cluster: str
    environment: str
    outbox_database: str
    prepared_statements: bool
    relay_interval_seconds: float
    relay_batch_size: int
    relay_max_batches_per_run: int
    relay_slots: int
    relay_lease_seconds: float
    relay_max_events_per_second: int
    redis_url: str
    outbox_retention_days: float
    outbox_purge_interval_seconds: float
    ingest_max_events: int
    ingest_max_bytes: int
    ingest_rate_limit_per_minute: int
    read_rate_limit_per_minute: int
    read_max_execution_seconds: float
    read_max_memory_bytes: int
    sentry_dsn: str
    sentry_environment: str
    sentry_sample_rate: float
    sentry_traces_sample_rate: float
    log_level: str
    log_format: str
    web_metrics_dir: Path
    worker_metrics_dir: Path
    worker_metrics_address: str
    worker_metrics_port: int
    metrics_token: str
    ready_max_lag_seconds: float
    web_bind: str
    web_body_timeout_seconds: float
    flower_address: str
    flower_port: int
    flower_basic_auth: list[str]


class _Reader:
    """Typed access to one mapping of variables; each getter names the variable when it fails."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = values

    def text(self, name: str, default: str | None = None) -> str:
        value = self._values.get(name)
        if value is None or value == "":
            if default is None:
                raise ConfigurationError(f"{name} is required but not set")
            return default
        return value

    def flag(self, name: str, default: bool) -> bool:
        raw = self.text(name, "1" if default else "0").strip().lower()
        if raw in {"1", "true", "yes", "on"}:
            return True
        if raw in {"0", "false", "no", "off"}:
            return False
        raise ConfigurationError(f"{name} must be a boolean (1/0, true/false), got {raw!r}")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(name, default).strip().lower()
        if value not in choices:
            raise ConfigurationError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value

    def integer(self, name: str, default: int, minimum: int = 1) -> int:
        raw = self.text(name, str(default))
        try:
            value = int(raw)
        except ValueError:
            raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from None
        if value < minimum:
            raise ConfigurationError(f"{name} must be >= {minimum}, got {value}")
        return value

    def number(self, name: str, default: float, minimum: float = 0.0) -> float:
        raw = self.text(name, str(default))
        try:
            value = float(raw)
        except ValueError:
            raise ConfigurationError(f"{name} must be a number, got {raw!r}") from None
        if value < minimum:
            raise ConfigurationError(f"{name} must be >= {minimum}, got {value}")
        return value


def parse_database_url(url: str) -> DatabaseConfig:
    """Parse `postgresql://user:password@host:port/name`; raises ConfigurationError otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql"} or not parts.path.strip("/"):
        raise ConfigurationError(
            f"DATABASE_URL must look like postgresql://user:password@host:5432/name, got {url!r}"
        )
    try:
        port = parts.port or 5432
    except ValueError:
        raise ConfigurationError(f"DATABASE_URL has an invalid port: {url!r}") from None
    return DatabaseConfig(
        name=unquote(parts.path.strip("/")),
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        host=parts.hostname or "",
        port=port,
    )


def parse_basic_auth(value: str) -> list[str]:
    """FLOWER_BASIC_AUTH: comma-separated user:password pairs, or empty for none."""
    pairs = [pair.strip() for pair in value.split(",") if pair.strip()]
    for pair in pairs:
        user, _, password = pair.partition(":")
        if not user or not password:
            raise ConfigurationError("FLOWER_BASIC_AUTH must be user:password[,user:password...]")
    return pairs


def check_identifier(name: str, value: str) -> str:
    """A name that goes into SQL as is (a cluster): letters, digits and underscores only."""
    if value and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise ConfigurationError(f"{name} must be a plain identifier (letters, digits, _), got {value!r}")
    return value


def check_clickhouse_url(url: str) -> str:
    if not url:
        raise ConfigurationError(
            "CLICKHOUSE_URL is required but not set: a new `make run` writes one into src/core/.env; "
            "to an older .env add CLICKHOUSE_URL=http://eventlog:<a new password>@127.0.0.1:8123/default"
        )
    parts = urlsplit(url)
    if parts.scheme == "chdb":
        raise ConfigurationError(
            "CLICKHOUSE_URL no longer opens the embedded engine (chdb://): the embedded ClickHouse "
            "server owns its data path (EMBEDDED_CLICKHOUSE_PATH) and every process reaches it at "
            "CLICKHOUSE_URL=http://eventlog:<password>@127.0.0.1:8123/default (`make run` writes one)"
        )
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigurationError(
            f"CLICKHOUSE_URL must be http(s)://user:password@host:port/database, got {url!r}"
        )
    try:
        parts.port  # noqa: B018 (the property raises for an invalid port)
    except ValueError:
        raise ConfigurationError(f"CLICKHOUSE_URL has an invalid port: {url!r}") from None
    return url


def load_config(environ: Mapping[str, str] | None = None, env_file: Path | None = ENV_FILE) -> Config:
    """Build the Config from `environ` (default: os.environ) over the optional .env file."""
    values: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ if environ is None else environ)
    env = _Reader(values)
    debug = env.flag("DJANGO_DEBUG", False)
    return Config(
        debug=debug,
        https=env.flag("DJANGO_HTTPS", False),
        secret_key=env.text("DJANGO_SECRET_KEY", _DEV_SECRET_KEY if debug else None),
        allowed_hosts=[h.strip() for h in env.text("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1").split(",")],
        database=parse_database_url(env.text("DATABASE_URL", "postgresql://root@127.0.0.1:5432/eventlog")),
        broker_url=env.text("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
        clickhouse_url=check_clickhouse_url(env.text("CLICKHOUSE_URL", "")),
        embedded_clickhouse_path=(
            env.text("EMBEDDED_CLICKHOUSE_PATH", str(REPO_ROOT / "var" / "clickhouse"))
            if env.flag("EMBEDDED_CLICKHOUSE", True)
            else ""
        ),
        embedded_clickhouse_listen=env.text("EMBEDDED_CLICKHOUSE_LISTEN", ""),
        clickhouse_connect_timeout=env.number("CLICKHOUSE_CONNECT_TIMEOUT", 10.0, minimum=0.1),
        clickhouse_send_receive_timeout=env.number("CLICKHOUSE_SEND_RECEIVE_TIMEOUT", 60.0, minimum=0.1),
        clickhouse_verify=env.flag("CLICKHOUSE_VERIFY", True),
        clickhouse_ca_cert=env.text("CLICKHOUSE_CA_CERT", ""),
        clickhouse_cluster=check_identifier("CLICKHOUSE_CLUSTER", env.text("CLICKHOUSE_CLUSTER", "")),
        environment=env.text("EVENTLOG_ENVIRONMENT", "production"),
        outbox_database=env.text("OUTBOX_DATABASE", "default"),
        prepared_statements=env.flag("PREPARED_STATEMENTS", True),
        relay_interval_seconds=env.number("RELAY_INTERVAL_SECONDS", 0.5, minimum=0.01),
        relay_batch_size=env.integer("RELAY_BATCH_SIZE", 25_000),
        relay_max_batches_per_run=env.integer("RELAY_MAX_BATCHES_PER_RUN", 100),
        relay_slots=env.integer("RELAY_SLOTS", 2),
        relay_lease_seconds=env.number("RELAY_LEASE_SECONDS", 30.0, minimum=1.0),
        relay_max_events_per_second=env.integer("RELAY_MAX_EVENTS_PER_SECOND", 0, minimum=0),
        redis_url=env.text("REDIS_URL", env.text("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")),
        outbox_retention_days=env.number("OUTBOX_RETENTION_DAYS", 7.0),
        outbox_purge_interval_seconds=env.number("OUTBOX_PURGE_INTERVAL_SECONDS", 60.0, minimum=1.0),
        ingest_max_events=env.integer("INGEST_MAX_EVENTS", 1000),
        ingest_max_bytes=env.integer("INGEST_MAX_BYTES", 5 * 1024 * 1024),
        ingest_rate_limit_per_minute=env.integer("INGEST_RATE_LIMIT_PER_MINUTE", 0, minimum=0),
        read_rate_limit_per_minute=env.integer("READ_RATE_LIMIT_PER_MINUTE", 600, minimum=0),
        read_max_execution_seconds=env.number("READ_MAX_EXECUTION_SECONDS", 10.0, minimum=0.1),
        read_max_memory_bytes=env.integer("READ_MAX_MEMORY_BYTES", 2 * 1024**3, minimum=1024**2),
        sentry_dsn=env.text("SENTRY_DSN", ""),
        sentry_environment=env.text("SENTRY_ENVIRONMENT", "production"),
        sentry_sample_rate=env.number("SENTRY_SAMPLE_RATE", 1.0),
        sentry_traces_sample_rate=env.number("SENTRY_TRACES_SAMPLE_RATE", 0.0),
        log_level=env.text("LOG_LEVEL", "INFO").upper(),
        log_format=env.choice("LOG_FORMAT", "console" if debug else "json", ("json", "console")),
        web_metrics_dir=Path(env.text("WEB_METRICS_DIR", str(REPO_ROOT / "var" / "metrics-web"))),
        worker_metrics_dir=Path(env.text("WORKER_METRICS_DIR", str(REPO_ROOT / "var" / "metrics-worker"))),
        worker_metrics_address=env.text("WORKER_METRICS_ADDRESS", "127.0.0.1"),
        worker_metrics_port=env.integer("WORKER_METRICS_PORT", 9540, minimum=0),
        metrics_token=env.text("METRICS_TOKEN", ""),
        ready_max_lag_seconds=env.number("READY_MAX_LAG_SECONDS", 300.0, minimum=0.0),
        web_bind=env.text("WEB_BIND", "127.0.0.1:8000"),
        web_body_timeout_seconds=env.number("WEB_BODY_TIMEOUT_SECONDS", 60.0, minimum=1.0),
        flower_address=env.text("FLOWER_ADDRESS", "127.0.0.1"),
        flower_port=env.integer("FLOWER_PORT", 5555),
        flower_basic_auth=parse_basic_auth(env.text("FLOWER_BASIC_AUTH", "")),
    )
