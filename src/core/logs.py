"""Logging: one structlog pipeline for our own logs and every library's (Django, Celery, ...).

JSON lines in production (LOG_FORMAT=json, the default unless DJANGO_DEBUG), readable lines in
development (LOG_FORMAT=console). Values bound with `structlog.contextvars` (the web's request id,
the relay's batch id) are added to every line logged while they are bound, by any logger.

What must never reach a log: API keys and events' contents. Our code logs neither, and the relay
logs ClickHouse's error code, not its message (a parse error quotes the row it failed on).
"""

from __future__ import annotations

from typing import Any

import structlog

from core.env import Config

_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def logging_settings(config: Config) -> dict[str, Any]:
    """Django's LOGGING, and structlog configured to hand its events to it."""
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    renderer = (
        structlog.processors.JSONRenderer()
        if config.log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": [structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
                "foreign_pre_chain": _SHARED,  # other libraries' records get the same fields
            }
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["console"], "level": config.log_level},
        "loggers": {
            # clickhouse-connect logs the errors it also raises; ours are reported once, where handled.
            "clickhouse_connect": {"level": "CRITICAL"},
            # One line per beat tick and per task would drown everything else; the relay logs its work.
            "celery.beat": {"level": "WARNING"},
            "celery.app.trace": {"level": "WARNING"},
            "celery.worker.strategy": {"level": "WARNING"},
        },
    }
