"""The process: an HTTP/1.1 server on one address, a thread per connection, one engine for all.

A request's body is read whole (Content-Length or chunked) before the query runs, up to
`max_body_bytes`; its response is sent whole, with its length, once the query has ended. A request
it cannot read gets an error answer and the connection is closed; nothing a client sends stops the
process.
"""

from __future__ import annotations

import contextlib
import logging
import re
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BufferedIOBase
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from embedded_clickhouse.engine import Engine
from embedded_clickhouse.errors import ServerError
from embedded_clickhouse.protocol import (
    Credentials,
    Head,
    Response,
    answer_before_body,
    error_response,
    serve,
)

log = logging.getLogger("embedded_clickhouse")
_DIGITS = re.compile(rb"[0-9]+".decode())
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")


@dataclass(frozen=True)
class ServerConfig:
    host: str
    port: int
    credentials: Credentials
    data_path: Path
    engine_options: dict[str, Any]
    max_body_bytes: int = 256 << 20  # a request's body, and the same decompressed


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
    server: EmbeddedServer

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    do_PUT = do_DELETE = do_PATCH = do_POST  # answered as a server answers them: not allowed

    def _serve(self) -> None:
        with self.server.request():
            self._send(*self._answer())

    def _answer(self) -> tuple[Response, bool]:
        """The response, and whether the connection must close after it (a body left unread)."""
        url = urlsplit(self.path)
        headers = {name.lower(): value for name, value in self.headers.items()}
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        has_body = chunked or headers.get("content-length", "0") not in ("", "0")
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
            body = read_body(self.rfile, headers, self.server.config.max_body_bytes)
        except ServerError as error:
            return error_response(error, head.query_id, timezone), True
        response = serve(head, body, self.server.engine)
        if response.status >= 500:
            log.warning("%s: %s", url.path, response.body[:500].decode(errors="replace").strip())
        return response, False

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


def read_body(stream: BufferedIOBase, headers: dict[str, str], limit: int) -> bytes:
    """The request's body by its Content-Length or chunked transfer encoding; none without either."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return _read_chunked(stream, limit)
    raw = headers.get("content-length")
    if raw is None:
        return b""
    if not _DIGITS.fullmatch(raw):
        raise ServerError("BAD_ARGUMENTS", f"Invalid Content-Length {raw!r}")
    if int(raw) > limit:
        raise ServerError("QUERY_IS_TOO_LARGE", f"Request body of {raw} bytes is larger than {limit} bytes")
    body = stream.read(int(raw))
    if len(body) < int(raw):
        raise ServerError("BAD_ARGUMENTS", "The request body ended before its Content-Length")
    return body


def _read_chunked(stream: BufferedIOBase, limit: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        line = stream.readline(1024)
        size_field = line.split(b";")[0].strip()
        if not _HEX.fullmatch(size_field):
            raise ServerError("BAD_ARGUMENTS", f"Malformed chunk size line {line[:40]!r}")
        size = int(size_field, 16)
        if size == 0:
            while stream.readline(1024).strip():  # trailers, then the empty line
                pass
            return b"".join(parts)
        total += size
        if total > limit:
            raise ServerError("QUERY_IS_TOO_LARGE", f"Request body is larger than {limit} bytes")
        chunk = stream.read(size)
        if len(chunk) < size or stream.read(2) != b"\r\n":
            raise ServerError("BAD_ARGUMENTS", "Malformed chunked request body")
        parts.append(chunk)


def run(config: ServerConfig) -> None:
    """Serve until SIGTERM or SIGINT, then let the queries in flight finish and close the engine."""
    spool = config.data_path.parent / f"{config.data_path.name}-spool"
    engine = Engine(config.data_path, config.engine_options, spool, config.max_body_bytes)
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
