"""ClickHouse for reads: every query read-only, under a time, memory and result-size limit.

A read over its limits is stopped by ClickHouse and raised as ReadLimitExceeded; nothing of it is
returned, so a page is whole or an error, never a part. Clients are opened without a session (a
session serializes its queries, and the embedded server applies `readonly` only without one), one
per thread, as clickhouse-connect's clients are not shared between threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from eventlog.clickhouse.event_log import (
    TABLE,
    ClickHouseOptions,
    database_name,
    server_arguments,
    translated_errors,
)
from eventlog.errors import ClickHouseError, ReadLimitExceeded
from eventlog.metrics import READ_ROWS

# ClickHouse's codes for a query stopped at a limit: TOO_MANY_ROWS, TIMEOUT_EXCEEDED, MEMORY_LIMIT_EXCEEDED,
# TOO_MANY_BYTES, TOO_MANY_ROWS_OR_BYTES.
LIMIT_CODES = frozenset({158, 159, 241, 307, 396})


@dataclass(frozen=True)
class ReadLimits:
    max_seconds: float = 10.0
    max_memory_bytes: int = 2 * 1024**3

    def settings(self, max_result_rows: int) -> dict[str, Any]:
        return {
            "readonly": 1,
            "max_execution_time": self.max_seconds,
            "timeout_overflow_mode": "throw",
            "max_memory_usage": self.max_memory_bytes,
            "max_result_rows": max_result_rows,
            "result_overflow_mode": "throw",
        }


@dataclass(frozen=True)
class Rows:
    """A query's rows, column values in SELECT order, and the rows ClickHouse read for them."""

    rows: list[tuple[Any, ...]]
    read_rows: int


Opener = Callable[[str, ClickHouseOptions], Client]


def open_reading_client(url: str, options: ClickHouseOptions) -> Client:
    with translated_errors():
        return clickhouse_connect.get_client(
            dsn=url, autogenerate_session_id=False, **server_arguments(options)
        )


class EventLogReader:
    """Reads event_log (`table`, default: the URL's database's event_log) within `limits`."""

    def __init__(
        self,
        url: str,
        options: ClickHouseOptions | None = None,
        limits: ReadLimits | None = None,
        opener: Opener = open_reading_client,
    ) -> None:
        self.url = url
        self.options = options or ClickHouseOptions()
        self.limits = limits or ReadLimits()
        self.opener = opener
        self.table = f"{database_name(url)}.{TABLE}"
        self._local = threading.local()

    def select(self, sql: str, parameters: dict[str, Any], max_rows: int, endpoint: str) -> Rows:
        """The rows of `sql` (`{table}` in it names event_log), at most `max_rows` of them."""
        with self._client() as client:
            result = client.query(
                sql.replace("{table}", self.table),
                parameters=parameters,
                settings=self.limits.settings(max_rows),
            )
        read_rows = int(result.summary.get("read_rows", 0))
        READ_ROWS.labels(endpoint=endpoint).observe(read_rows)
        return Rows([tuple(row) for row in result.result_rows], read_rows)

    def select_text(
        self, sql: str, parameters: dict[str, Any], max_rows: int, endpoint: str
    ) -> tuple[list[bytes], int]:
        """The one String column of `sql`'s rows, as bytes (rows ClickHouse rendered for an
        export), and the rows ClickHouse read for them."""
        with self._client() as client:
            result = client.query(
                sql.replace("{table}", self.table),
                parameters=parameters,
                settings=self.limits.settings(max_rows),
                query_formats={"String": "bytes"},
            )
        read_rows = int(result.summary.get("read_rows", 0))
        READ_ROWS.labels(endpoint=endpoint).observe(read_rows)
        return (list(result.result_columns[0]) if result.result_columns else []), read_rows

    @contextmanager
    def _client(self) -> Iterator[Client]:
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            client = self.opener(self.url, self.options)
            self._local.client = client
        try:
            with translated_errors():
                yield client
        except ClickHouseError as exc:
            if exc.code in LIMIT_CODES:
                raise ReadLimitExceeded(_limit_message(exc.code, self.limits), code=exc.code) from exc
            raise

    def close(self) -> None:
        client: Client | None = getattr(self._local, "client", None)
        if client is not None:
            client.close()
            self._local.client = None


def _limit_message(code: int | None, limits: ReadLimits) -> str:
    if code == 159:
        return f"the query ran longer than {limits.max_seconds:g} s; narrow the time range or the filters"
    if code == 241:
        return f"the query needed more than {limits.max_memory_bytes} bytes of memory; narrow it"
    return "the query would read or return more than its limits allow; narrow it"
