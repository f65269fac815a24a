"""The engine: chDB on one data path, with sessions, as a ClickHouse server keeps them.

Every chDB connection handle on the path is a session of the engine's own (its `SET`s, `USE` and
temporary tables are its alone, and handles run queries in parallel). A request without a session
gets a fresh handle for itself; a request with `session_id` gets that session's handle, one request
at a time, kept until the session has been idle for its timeout. A request's settings apply to that
request only, as on a server: on a session's handle they are set before the query and put back after.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from eventlog.embedded_clickhouse import ALLOCATOR

os.environ.setdefault("JE_MALLOC_CONF", ALLOCATOR)  # before chDB is loaded, just below

import chdb

from eventlog.embedded_clickhouse.errors import ServerError
from eventlog.embedded_clickhouse.statements import Statement

log = logging.getLogger("embedded_clickhouse")

DEFAULT_SESSION_TIMEOUT = 60.0
MAX_SESSION_TIMEOUT = 3600.0
# Defaults for every request; a request's own settings win.
# - async_insert: chDB inserts asynchronously unless told otherwise, and an asynchronous insert
#   ignores its deduplication token (a server's default is synchronous).
# - use_query_condition_cache: the engine (26.5) keeps, per table and part name, which marks of a
#   part matched a condition. A table emptied, then detached and attached again, numbers its parts
#   from 1 again, so a new part can take an old part's name with fewer marks; the next query with
#   the same condition then reads past the cached bitmap and the engine aborts ("libc++ Hardening
#   assertion ... vector<bool>::operator[] index out of bounds"), taking the server with it. Seen
#   mid-suite twice (tests/embedded_clickhouse/test_clients.py reproduces it).
SERVER_DEFAULTS = {"async_insert": "0", "use_query_condition_cache": "0"}
_NAME = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


@dataclass(frozen=True)
class Query:
    """One request's statement, ready for the engine."""

    statement: Statement
    rows: memoryview | Path | None  # an INSERT's rows, decoded: in memory, or in a spool file
    output_format: str  # when the statement names none
    database: str | None
    settings: Mapping[str, str]
    parameters: Mapping[str, str]
    query_id: str


@dataclass(frozen=True)
class SessionRequest:
    """A request's `session_id`, and what it asks of the session."""

    session_id: str
    timeout: float | None = None  # session_timeout: keep it this long when idle (None: as it was)
    check: bool = False  # session_check=1: the session must exist already
    close: bool = False  # close_session=1: end it after this request


@dataclass(frozen=True)
class Result:
    body: bytes
    output_format: str
    has_output: bool
    summary: dict[str, str]


@dataclass
class _Session:
    handle: Any
    timeout: float
    last_used: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ended: bool = False  # closed by the client, or its settings could not be put back


def quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def check_names(names: list[str]) -> None:
    for name in names:
        if not name or not set(name) <= _NAME or name[0].isdigit():
            raise ServerError("BAD_ARGUMENTS", f"Invalid setting or database name {name!r}")


class Engine:
    """chDB on `path`, shared by every request of this process; `options` are the engine's own
    start-up settings (`background_pool_size`, ...)."""

    def __init__(self, path: Path, options: Mapping[str, Any], spool: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        spool.mkdir(parents=True, exist_ok=True)
        arguments = "&".join(f"{key}={value}" for key, value in options.items())
        self.address = f"{path}?{arguments}" if arguments else str(path)
        self.spool = spool  # where an insert's rows wait for the engine to read them
        self._root = chdb.connect(self.address)  # holds the engine open for the process's life
        self._sessions: dict[str, _Session] = {}
        self._running: set[str] = set()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self.timezone = self._root.query("SELECT timezone()", "TabSeparated").bytes().decode().strip()
        names = self._root.query("SELECT name FROM system.formats", "TabSeparated").bytes().decode()
        self.formats = frozenset(name.lower() for name in names.split())  # matched in any case
        for leftover in spool.glob("*.rows"):  # from a process that was killed mid-insert
            leftover.unlink(missing_ok=True)

    def execute(self, query: Query, session: SessionRequest | None = None) -> Result:
        """Run `query`, in `session` if given; raises ServerError as a server would."""
        with self._query_id(query.query_id):
            if session is None:
                handle = chdb.connect(self.address)
                try:
                    self._apply(handle, query, {**SERVER_DEFAULTS, **query.settings})
                    return self._statement(handle, query)
                finally:
                    handle.close()
            with self._session(session) as state:
                return self._in_session(state, query)

    def close(self, wait_seconds: float = 30.0) -> None:
        """Close every handle once the queries in flight have ended (or `wait_seconds` passed)."""
        with self._idle:
            self._idle.wait_for(lambda: not self._running, timeout=wait_seconds)
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.handle.close()
        self._root.close()

    @contextlib.contextmanager
    def _query_id(self, query_id: str) -> Iterator[None]:
        with self._lock:
            if query_id in self._running:
                raise ServerError(
                    "QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING", f"Query with id = {query_id} is already running"
                )
            self._running.add(query_id)
        try:
            yield
        finally:
            with self._idle:
                self._running.discard(query_id)
                self._idle.notify_all()

    @contextlib.contextmanager
    def _session(self, request: SessionRequest) -> Iterator[_Session]:
        """The session, held by this request alone (another request of it meanwhile is refused)."""
        with self._lock:
            stale = self._take_expired()
            session = self._sessions.get(request.session_id)
            if session is None:
                if request.check:
                    raise ServerError("SESSION_NOT_FOUND", f"Session {request.session_id} not found")
                handle = chdb.connect(self.address)
                try:
                    _call(handle, "SET " + ", ".join(f"{k} = {quote(v)}" for k, v in SERVER_DEFAULTS.items()))
                except ServerError:
                    handle.close()
                    raise
                session = _Session(handle, DEFAULT_SESSION_TIMEOUT)
                self._sessions[request.session_id] = session
            if not session.lock.acquire(blocking=False):
                raise ServerError(
                    "SESSION_IS_LOCKED", f"Session {request.session_id} is locked by a concurrent client"
                )
        for expired in stale:
            expired.handle.close()
        try:
            if request.timeout is not None:
                session.timeout = request.timeout
            session.ended = session.ended or request.close
            yield session
        finally:
            session.last_used = time.monotonic()
            if session.ended:
                with self._lock:
                    if self._sessions.get(request.session_id) is session:
                        del self._sessions[request.session_id]
                session.handle.close()
            session.lock.release()

    def _take_expired(self) -> list[_Session]:
        now = time.monotonic()
        expired = [key for key, session in self._sessions.items()
                   if not session.lock.locked() and now - session.last_used > session.timeout]  # fmt: skip
        return [self._sessions.pop(key) for key in expired]

    def _in_session(self, session: _Session, query: Query) -> Result:
        """Run `query` with its settings for it alone: they are set on the session's handle before
        and put back after. A session whose settings cannot be put back is ended, never reused."""
        handle = session.handle
        if query.settings.get("readonly", "0") != "0":
            raise ServerError(
                "BAD_ARGUMENTS", "The embedded server applies readonly to requests without session_id only"
            )
        previous = _current(handle, list(query.settings)) if query.settings or query.database else None
        try:
            self._apply(handle, query, dict(query.settings))
            return self._statement(handle, query)
        finally:
            if previous is not None:
                try:
                    _restore(handle, previous)
                except ServerError:
                    log.warning("ending a session whose settings could not be put back", exc_info=True)
                    session.ended = True

    def _apply(self, handle: Any, query: Query, settings: dict[str, str]) -> None:
        check_names([*settings, *([query.database] if query.database else [])])
        readonly = settings.pop("readonly", None)  # last: once set, it refuses further SETs
        if query.database:
            _call(handle, f"USE `{query.database}`")
        if settings:
            _call(handle, "SET " + ", ".join(f"{name} = {quote(value)}" for name, value in settings.items()))
        if readonly is not None:
            _call(handle, f"SET readonly = {quote(readonly)}")

    def _statement(self, handle: Any, query: Query) -> Result:
        statement = query.statement
        output_format = statement.output_format or query.output_format
        if statement.data_format is None:
            raw = _call(handle, _text(statement.sql), output_format, query.parameters)
            return _result(raw, output_format, statement)
        if isinstance(query.rows, Path):
            raw = _call(
                handle, _text(statement.insert_from_file(str(query.rows))), output_format, query.parameters
            )
            return _result(raw, output_format, statement)
        with self.spool_file() as (path, rows):
            rows.write(query.rows or b"")
            rows.close()
            raw = _call(handle, _text(statement.insert_from_file(str(path))), output_format, query.parameters)
            return _result(raw, output_format, statement)

    @contextlib.contextmanager
    def spool_file(self) -> Iterator[tuple[Path, BinaryIO]]:
        """A new file for an insert's rows, open for writing; removed afterwards."""
        descriptor, name = tempfile.mkstemp(dir=self.spool, suffix=".rows")
        try:
            with os.fdopen(descriptor, "wb") as rows:
                yield Path(name), rows
        finally:
            with contextlib.suppress(OSError):  # the insert's outcome stands either way
                os.unlink(name)


def _text(sql: bytes) -> str:
    try:
        return sql.decode()
    except UnicodeDecodeError:
        raise ServerError("BAD_ARGUMENTS", "The query is not valid UTF-8") from None


def _call(
    handle: Any, sql: str, output_format: str = "TabSeparated", parameters: Mapping[str, str] | None = None
) -> Any:
    try:
        return handle.query(sql, output_format, params=dict(parameters or {}))
    except RuntimeError as exc:
        raise ServerError.from_engine(exc) from exc


def _result(raw: Any, output_format: str, statement: Statement) -> Result:
    body = raw.bytes()
    # rows_read() counts a result's rows (an insert's: those written); storage_rows_read() the rows
    # the query read from tables, which is what a server's read_rows reports.
    rows, size = str(raw.rows_read()), str(raw.bytes_read())
    read_rows, read_bytes = str(raw.storage_rows_read()), str(raw.storage_bytes_read())
    insert = statement.keyword == b"INSERT"
    summary = {
        "read_rows": "0" if insert else read_rows,
        "read_bytes": "0" if insert else read_bytes,
        "written_rows": rows if insert else "0",
        "written_bytes": size if insert else "0",
        "total_rows_to_read": "0",
        "result_rows": "0" if insert else rows,
        "result_bytes": str(len(body)),
        "elapsed_ns": str(int(raw.elapsed() * 1e9)),
    }
    return Result(body=body, output_format=output_format, has_output=statement.has_result, summary=summary)


@dataclass(frozen=True)
class _Previous:
    database: str
    settings: dict[str, str | None]  # None: the default


def _current(handle: Any, names: list[str]) -> _Previous:
    check_names(names)
    sql = (
        "SELECT currentDatabase() AS d, groupArray((name, value, changed)) AS s"
        " FROM system.settings WHERE name IN {names:Array(String)}"
    )
    names_literal = "[" + ",".join(quote(name) for name in names) + "]"
    row = json.loads(_call(handle, sql, "JSONEachRow", {"names": names_literal}).bytes())
    settings = {name: (value if changed else None) for name, value, changed in row["s"]}
    unknown = [name for name in names if name not in settings]
    if unknown:
        raise ServerError("UNKNOWN_SETTING", f"Unknown setting '{unknown[0]}'")
    return _Previous(database=row["d"], settings=settings)


def _restore(handle: Any, previous: _Previous) -> None:
    _call(handle, f"USE `{previous.database.replace('`', '``')}`")
    if previous.settings:
        values = ", ".join(
            f"{name} = {'DEFAULT' if value is None else quote(value)}"
            for name, value in previous.settings.items()
        )
        _call(handle, f"SET {values}")
