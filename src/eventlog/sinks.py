"""The process-wide EventLogWriter, built on first use from settings (the composition root)."""

from __future__ import annotations

import threading

from django.conf import settings

from eventlog.clickhouse import EventLogWriter

_lock = threading.Lock()
_writer: EventLogWriter | None = None


def event_log_writer() -> EventLogWriter:
    """The writer for CLICKHOUSE_URL. Opening the embedded engine is deferred to the first batch,
    so only a process that relays ever holds the chDB path."""
    global _writer
    with _lock:
        if _writer is None:
            _writer = EventLogWriter(settings.EVENTLOG.clickhouse_url)
        return _writer
