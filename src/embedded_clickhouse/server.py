"""The process: an HTTP/1.1 server on one address, a thread per connection, one engine for all.

A request's body is read whole (Content-Length or chunked) before the query runs, up to
`max_body_bytes`; its response is sent whole, with its length, once the query has ended. A request
it cannot read gets an error answer and the connection is closed; nothing a client sends stops the
process.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BufferedIOBase
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from embedded_clickhouse.engine import Engine
from embedded_clickhouse.errors import ServerError
from embedded_clickhouse.protocol import Credentials, Request, Response, error_response, serve

log = logging.getLogger("embedded_clickhouse")


@dataclass(frozen=True)
class ServerConfig:
    host: str
    port: int
    credentials: Credentials
    data_path: Path
    engine_options: dict[str, Any]
    max_body_bytes: int = 1 << 30


class EmbeddedServer(ThreadingHTTPServer):
    daemon_threads = True  # a connection left open by a client does not hold up the shutdown
    allow_reuse_address = True

    def __init__(self, config: ServerConfig, engine: Engine) -> None:
        self.config = config
        self.engine = engine
        super().__init__((config.host, config.port), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections, as with a server
    default_request_version = "HTTP/1.0"  # even a request that is not HTTP gets a status line
    server: EmbeddedServer

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    do_PUT = do_DELETE = do_PATCH = do_POST  # answered as a server answers them: not allowed

    def _serve(self) -> None:
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            body = read_body(self.rfile, headers, self.server.config.max_body_bytes)
        except ServerError as error:
            self.close_connection = True  # the rest of an unread body must not be taken for a request
            self._send(error_response(error, params.get("query_id", ""), self.server.engine.timezone))
            return
        request = Request(self.command, url.path, params, headers, body)
        response = serve(request, self.server.engine, self.server.config.credentials)
        if response.status >= 500:
            log.warning(
                "%s %s: %s", self.command, url.path, response.body[:500].decode(errors="replace").strip()
            )
        self._send(response)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
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
    if not raw.isdigit():
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
        try:
            size = int(line.split(b";")[0].strip(), 16)
        except ValueError:
            raise ServerError("BAD_ARGUMENTS", f"Malformed chunk size line {line[:40]!r}") from None
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
    engine = Engine(config.data_path, config.engine_options, spool)
    server = EmbeddedServer(config, engine)

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("embedded ClickHouse on http://%s:%d, data in %s", config.host, config.port, config.data_path)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        engine.close()
