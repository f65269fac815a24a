"""ClickHouse: connecting, the `event_log` schema, and writing one batch.

Every process reaches ClickHouse over its HTTP interface (`http(s)://user:password@host:port/database`),
whether a ClickHouse server or the embedded one (eventlog.embedded_clickhouse), through
clickhouse-connect.
This module is also the one boundary where clickhouse-connect's errors become ours.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, DataError, ProgrammingError

from eventlog.errors import ClickHouseError, ClickHouseRejected, ClickHouseUnavailable
from eventlog.metrics import CLICKHOUSE_INSERT_DURATION

TABLE = "event_log"
COLUMNS = ("event_id", "event_type", "event_date_time", "environment", "event_context", "metadata_version")

# How many recent insert blocks ClickHouse remembers to drop a repeated deduplication token. A batch
# is resent only when it is the oldest unfinished one, so a few thousand blocks is ample headroom.
DEDUPLICATION_WINDOW = 10_000

# Exactly-once depends on every one of these: a synchronous insert (chDB defaults to async, which
# bypasses the token), deduplication on, and no failure for a batch whose events span many months.
INSERT_SETTINGS: dict[str, Any] = {
    "async_insert": 0,
    "insert_deduplicate": 1,
    "throw_on_max_partitions_per_insert_block": 0,
}

# Read the relay's CSV literally: no single-quoted strings, nothing trimmed.
CSV_SETTINGS: dict[str, Any] = {"format_csv_allow_single_quotes": 0, "input_format_csv_trim_whitespaces": 0}

# ClickHouse error codes caused by the rows themselves (parse, type and range errors, 376: a UUID,
# 469: a CHECK constraint of the table): resending the same rows fails again. Every other code (missing table,
# read-only, memory, network) is treated as an outage of ClickHouse and retried.
DATA_ERROR_CODES = frozenset({6, 25, 26, 27, 38, 41, 53, 69, 70, 72, 117, 321, 376, 469})
UNKNOWN_DATABASE = 81
# How long `ping` and `event_log_stats` (a readiness probe, a metrics scrape) wait for ClickHouse.
READ_SECONDS = 5.0
_CODE = re.compile(r"Code: (\d+)")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def database_name(url: str) -> str:
    """The database holding event_log: the URL's path, `default` when it has none."""
    name = urlsplit(url).path.strip("/") or "default"
    if not _IDENTIFIER.match(name):
        raise ClickHouseUnavailable(f"invalid ClickHouse database name {name!r} in CLICKHOUSE_URL")
    return name


_COLUMNS_DDL = """(
            event_id UUID,
            event_type String,
            event_date_time DateTime64(6, 'UTC'),
            environment String,
            event_context String,
            metadata_version UInt64
        )"""
_LAYOUT = "PARTITION BY toYYYYMM(event_date_time)\n        ORDER BY (event_date_time, event_type)"
# With a cluster, batches go into this replicated table and reads go through event_log (Distributed).
LOCAL_TABLE = "event_log_local"


@dataclass(frozen=True)
class ClickHouseOptions:
    """How to reach ClickHouse and lay out the table (`cluster` empty: a single node)."""

    connect_timeout: float = 10.0
    send_receive_timeout: float = 60.0
    verify: bool = True  # check the server's TLS certificate (https)
    ca_cert: str = ""  # a CA bundle for that check; empty: the system's
    cluster: str = ""  # a cluster of the server's remote_servers: replicated, ON CLUSTER DDL

    def insert_table(self) -> str:
        return LOCAL_TABLE if self.cluster else TABLE


def schema_statements(database: str, cluster: str = "") -> list[str]:
    """DDL that creates event_log, or brings an older one up to date; each statement idempotent.

    With a cluster: every statement runs ON CLUSTER; the data lives in a ReplicatedMergeTree table
    (`event_log_local`, deduplicating inserts across its replicas through Keeper) and `event_log`
    is a Distributed table over it for reads. Batches are inserted into `event_log_local` on the
    replica the client reaches: a Distributed insert is forwarded to the shards in the background by
    default, so its acknowledgement, which the relay settles on, would not mean the rows are stored;
    and a replicated table shares its deduplication window among replicas, so a batch resent through
    another replica still lands once. One shard (of any number of replicas) is what this supports.
    """
    if not cluster:
        table, window = f"{database}.{TABLE}", f"non_replicated_deduplication_window = {DEDUPLICATION_WINDOW}"
        return [
            f"CREATE DATABASE IF NOT EXISTS {database}",
            f"""CREATE TABLE IF NOT EXISTS {table}
        {_COLUMNS_DDL}
        ENGINE = MergeTree()
        {_LAYOUT}
        SETTINGS index_granularity = 8192, {window}""",
            f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS event_id UUID FIRST",
            f"ALTER TABLE {table} MODIFY SETTING {window}",
        ]
    local = f"{database}.{LOCAL_TABLE}"
    return [
        f"CREATE DATABASE IF NOT EXISTS {database} ON CLUSTER {cluster}",
        f"""CREATE TABLE IF NOT EXISTS {local} ON CLUSTER {cluster}
        {_COLUMNS_DDL}
        ENGINE = ReplicatedMergeTree('/clickhouse/tables/{{shard}}/{database}/{LOCAL_TABLE}', '{{replica}}')
        {_LAYOUT}
        SETTINGS index_granularity = 8192, replicated_deduplication_window = {DEDUPLICATION_WINDOW}""",
        f"""CREATE TABLE IF NOT EXISTS {database}.{TABLE} ON CLUSTER {cluster} AS {local}
        ENGINE = Distributed({cluster}, {database}, {LOCAL_TABLE}, rand())""",
    ]


@contextmanager
def translated_errors() -> Iterator[None]:
    """Turn clickhouse-connect's exceptions into ClickHouseUnavailable or ClickHouseRejected."""
    try:
        yield
    except DataError as exc:  # the client could not even serialize a value
        raise ClickHouseRejected(f"ClickHouse client refused the data: {exc}") from exc
    except ProgrammingError as exc:
        raise ClickHouseUnavailable(f"cannot open ClickHouse: {exc}") from exc
    except DatabaseError as exc:
        match = _CODE.search(str(exc))
        code = int(match.group(1)) if match else None
        error = ClickHouseRejected if code in DATA_ERROR_CODES else ClickHouseUnavailable
        raise error(f"ClickHouse error: {exc}", code=code) from exc
    except OSError as exc:
        raise ClickHouseUnavailable(f"ClickHouse unreachable: {exc}") from exc


def server_arguments(options: ClickHouseOptions) -> dict[str, Any]:
    """clickhouse-connect's arguments for a server; user, password, host, port, database and TLS
    (https) come from the URL itself."""
    arguments: dict[str, Any] = {
        "connect_timeout": options.connect_timeout,
        "send_receive_timeout": options.send_receive_timeout,
        "verify": options.verify,
    }
    if options.ca_cert:
        arguments["ca_cert"] = options.ca_cert
    return arguments


def connect(url: str, options: ClickHouseOptions | None = None) -> Client:
    """Open a client for `url`. Raises ClickHouseUnavailable when it cannot."""
    with translated_errors():
        return clickhouse_connect.get_client(dsn=url, **server_arguments(options or ClickHouseOptions()))


def ensure_schema(client: Client, database: str, cluster: str = "") -> None:
    """Create or update event_log. Safe to run any number of times, from any number of processes."""
    with translated_errors():
        for statement in schema_statements(database, cluster):
            client.command(statement)


@dataclass(frozen=True)
class EventLogStats:
    active_parts: dict[str, int]  # partition id (YYYYMM) -> active parts
    rows: int
    bytes: int  # on disk
    insert_queries: int  # since the engine started


_PARTS = """
    SELECT partition, count(), sum(rows), sum(bytes_on_disk) FROM system.parts
    WHERE database = {database:String} AND table = {table:String} AND active
    GROUP BY partition ORDER BY partition
"""
_INSERT_QUERIES = "SELECT value FROM system.events WHERE event = 'InsertQuery'"


class EventLogWriter:
    """Writes batches into event_log, one client per thread (clients are not thread-safe).

    The schema is ensured once per writer, before its first batch. `ping` and `event_log_stats`
    share one more client, one call at a time, and change nothing: they serve `/readyz` and the
    metrics scrape, whose threads come and go. `opener` makes every client (default: `connect`);
    the benchmark passes clickhouse-connect's in-process chDB backend.
    """

    def __init__(
        self,
        url: str,
        options: ClickHouseOptions | None = None,
        opener: Callable[[str, ClickHouseOptions], Client] = connect,
    ) -> None:
        self.url = url
        self.options = options or ClickHouseOptions()
        self.opener = opener
        self.database = database_name(url)
        self.table = f"{self.database}.{self.options.insert_table()}"
        self._local = threading.local()
        self._schema_lock = threading.Lock()
        self._schema_ready = False
        self._reader: Client | None = None
        self._reader_lock = threading.Lock()

    def client(self) -> Client:
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            client = self._open()
            self._local.client = client
        with self._schema_lock:
            if not self._schema_ready:
                ensure_schema(client, self.database, self.options.cluster)
                self._schema_ready = True
        return client

    def _open(self) -> Client:
        """A client on the URL's database. A server refuses a client whose database is missing, so
        a first connection creates it (with the whole schema) through one on the server's default."""
        try:
            return self.opener(self.url, self.options)
        except ClickHouseUnavailable as exc:
            if exc.code != UNKNOWN_DATABASE:
                raise
        bootstrap = self.opener(urlunsplit(urlsplit(self.url)._replace(path="")), self.options)
        try:
            ensure_schema(bootstrap, self.database, self.options.cluster)
        finally:
            bootstrap.close()
        return self.opener(self.url, self.options)

    def write_batch(self, columns: Sequence[Sequence[Any]], token: str) -> None:
        """Insert the rows given column by column (in COLUMNS order) as one deduplicated insert.

        Returns only after ClickHouse acknowledged the insert. Repeating a call with the same token
        and rows stores them once. Raises ClickHouseUnavailable or ClickHouseRejected otherwise.
        """
        client = self.client()
        with CLICKHOUSE_INSERT_DURATION.time(), translated_errors():
            client.insert(
                self.table,
                columns,
                column_names=COLUMNS,
                column_oriented=True,
                settings={**INSERT_SETTINGS, "insert_deduplication_token": token},
            )

    def write_csv(self, block: bytes | bytearray, token: str) -> None:
        """Insert CSV rows (every field quoted, columns in COLUMNS order) as one deduplicated insert,
        with the same guarantees as `write_batch`."""
        client = self.client()
        with CLICKHOUSE_INSERT_DURATION.time(), translated_errors():
            client.raw_insert(
                self.table,
                COLUMNS,
                # Both of clickhouse-connect's backends send a bytearray as it is; the hint omits it.
                block,  # type: ignore[arg-type]
                settings={**INSERT_SETTINGS, **CSV_SETTINGS, "insert_deduplication_token": token},
                fmt="CSV",
            )

    @contextmanager
    def _reading(self) -> Iterator[Client]:
        """The shared reading client, for this caller alone; a failed call drops it (its
        connection may be half-used), and the next call connects anew. A probe must not queue
        behind a stalled one (each holds a web thread): both waits are short."""
        if not self._reader_lock.acquire(timeout=READ_SECONDS):
            raise ClickHouseUnavailable(
                f"ClickHouse did not answer an earlier check within {READ_SECONDS:g} s"
            )
        try:
            if self._reader is None:
                quick = replace(
                    self.options, send_receive_timeout=min(self.options.send_receive_timeout, READ_SECONDS)
                )
                self._reader = self.opener(self.url, quick)
            try:
                with translated_errors():
                    yield self._reader
            except ClickHouseError:
                self._reader.close()
                self._reader = None
                raise
        finally:
            self._reader_lock.release()

    def ping(self) -> None:
        """Return when ClickHouse answers a query on the URL's database; raise ClickHouseUnavailable
        otherwise. Runs no DDL."""
        with self._reading() as client:
            client.command("SELECT 1")

    def event_log_stats(self) -> EventLogStats:
        """event_log's parts, rows and bytes, and the inserts run so far, from ClickHouse's system
        tables. Raises ClickHouseUnavailable (or ClickHouseRejected) when it cannot read them."""
        with self._reading() as client:
            table = self.options.insert_table()
            parts = client.query(_PARTS, parameters={"database": self.database, "table": table}).result_rows
            inserts = client.query(_INSERT_QUERIES).result_rows
        return EventLogStats(
            active_parts={str(partition): int(count) for partition, count, _, _ in parts},
            rows=sum(int(row[2]) for row in parts),
            bytes=sum(int(row[3]) for row in parts),
            insert_queries=int(inserts[0][0]) if inserts else 0,
        )

    def close(self) -> None:
        """Close this thread's client and the shared reading one."""
        client: Client | None = getattr(self._local, "client", None)
        if client is not None:
            client.close()
            self._local.client = None
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
