"""The process: an HTTP/1.1 server on one address, a thread per connection, one engine for all.

An insert whose rows are the rest of its body (clickhouse-connect's, with the INSERT in the `query`
parameter or at the body's start) is read into a spool file as it arrives, up to `max_insert_bytes`;
any other body is read into memory, up to `max_body_bytes`, before the query runs. A response is
sent whole, with its length, once the query has ended. A request it cannot read gets an error answer
and its connection is closed; nothing a client sends stops the process.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from eventlog.embedded_clickhouse import bodies
from eventlog.embedded_clickhouse.config import ServerConfig
from eventlog.embedded_clickhouse.engine import Engine
from eventlog.embedded_clickhouse.errors import ServerError
from eventlog.embedded_clickhouse.protocol import (
    Head,
    Response,
    SpooledRows,
    answer_before_body,
    error_response,
    serve,
    streamed_insert,
)

log = logging.getLogger("embedded_clickhouse")


class EmbeddedServer(ThreadingHTTPServer):
    daemon_threads = True  # a connection left open by a client does not hold up the shutdown
    allow_reuse_address = True

    def __init__(self, config: ServerConfig, engine: Engine) -> None:
        self.config = config
        self.engine = engine
        self.closing = False  # set on SIGTERM: requests still arriving are refused
        self._requests = 0
        self._idle = threading.Condition()
        super().__init__((config.host, config.port), _Handler)

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        with self._idle:
            self._requests += 1
        try:
            yield
        finally:
            with self._idle:
                self._requests -= 1
                self._idle.notify_all()

    def wait_idle(self, seconds: float) -> None:
        with self._idle:
            self._idle.wait_for(lambda: self._requests == 0, timeout=seconds)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections, as with a server
    default_request_version = "HTTP/1.0"  # even a request that is not HTTP gets a status line
    timeout = 300  # seconds a connection may stay silent, mid-body or idle between requests
    # TCP_NODELAY: an answer's headers and body go out as two writes, and with Nagle's algorithm
    # the body waited for the client's delayed ACK of the headers: 40 ms on every query.
    disable_nagle_algorithm = True
    server: EmbeddedServer

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    do_PUT = do_DELETE = do_PATCH = do_POST  # answered as a server answers them: not allowed

    def _serve(self) -> None:
        with self.server.request():
            try:
                response, close = self._answer()
            except Exception as exc:  # e.g. no room for the spool file: still an answer, then close
                log.exception("%s %s failed", self.command, self.path[:200])
                failure = ServerError("STD_EXCEPTION", f"{type(exc).__name__}: {exc}", code=1001)
                response, close = error_response(failure, "", self.server.engine.timezone), True
            self._send(response, close)

    def _answer(self) -> tuple[Response, bool]:
        """The response, and whether the connection must close after it (a body left unread)."""
        url = urlsplit(self.path)
        headers = {name.lower(): value for name, value in self.headers.items()}
        has_body = bodies.has_body(headers)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        head = Head(self.command, url.path, params, headers, has_body)
        timezone = self.server.engine.timezone
        if self.server.closing:
            shutting_down = ServerError("ABORTED", "The server is shutting down", status=503)
            return error_response(shutting_down, head.query_id, timezone), True
        early = answer_before_body(head, self.server.config.credentials, timezone)
        if early is not None:
            return early, has_body
        try:
            response = self._serve_with_body(head)
        except ServerError as error:  # the body could not be read: the connection cannot go on
            return error_response(error, head.query_id, timezone), True
        if response.status >= 500:
            log.warning("%s: %s", url.path, response.body[:500].decode(errors="replace").strip())
        return response, False

    def _serve_with_body(self, head: Head) -> Response:
        config, engine = self.server.config, self.server.engine
        headers = dict(head.headers)
        limit = config.max_insert_bytes
        pieces = iter(bodies.decoded(bodies.transferred(self.rfile, headers, limit), headers, limit))
        first = next(pieces, b"")
        insert = streamed_insert(head, first, engine.formats)
        if insert is None:
            return serve(head, bodies.joined(first, pieces, config.max_body_bytes), engine)
        statement, rows_in_first = insert
        with engine.spool_file() as (path, rows):
            rows.write(rows_in_first)
            for piece in pieces:
                rows.write(piece)
            rows.close()
            return serve(head, SpooledRows(statement, path), engine)

    def _send(self, response: Response, close: bool = False) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)


def run(config: ServerConfig) -> None:
    """Serve until SIGTERM or SIGINT, then let the queries in flight finish and close the engine."""
    spool = config.data_path.parent / f"{config.data_path.name}-spool"
    engine = Engine(config.data_path, config.engine_options, spool)
    server = EmbeddedServer(config, engine)

    def stop(signum: int, frame: object) -> None:
        server.closing = True
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("embedded ClickHouse on http://%s:%d, data in %s", config.host, config.port, config.data_path)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        server.wait_idle(30.0)
        engine.close()
