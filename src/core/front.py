"""The web's front: an ASGI application that reads each request's body whole in the event loop and
only then runs a WSGI application on it, in one of a fixed pool of threads (core/asgi.py builds it).

Why: under WSGI a thread reads the body as the client sends it, so a client that sends its body a
byte a second holds one of a process's few threads for as long as it likes (tests/web/test_edge.py).
Read by the event loop, a body costs no thread while it arrives, as behind a buffering proxy
(nginx) or in waitress.

- A body must arrive within `BodyLimits.seconds`, else 408 and the connection is closed.
- Of a body, the first `keep_bytes` are kept (ingest's limit and one more byte, enough for it to
  answer 413); the rest is read and dropped up to `discard_bytes`, so that a client that sends its
  whole body before reading (Python's http.client) still reads a 413. Past that, or when the client
  asked to be told before sending (`Expect: 100-continue`) a body declared longer than is kept,
  nothing more is read and the answer closes the connection.
- A body cut so goes on only to the paths that read no further than `keep_bytes` and answer
  themselves (`cut_body_paths`: ingest, whose 401 comes before its 413); any other path gets the
  front's 413, never a body shorter than its Content-Length.
- Bodies are buffered before anyone is authenticated, so the bytes they may hold at once are
  bounded (`budget_bytes`, reserved from their declared length): past it, 503 with Retry-After.
- An answer is collected in its thread and handed to the event loop in one piece, one hand-over per
  request. A file (Django's FileResponse of a real file: static files) is sent by the server from
  its path. Any other streamed answer (an export) is sent on from the thread piece by piece, each
  piece waiting for the client to take the ones before; a client that takes none for
  `BodyLimits.seconds`, or leaves, ends it. Until then its thread is held: a client reading an
  export slowly holds one of the process's threads (behind nginx, which buffers answers, it does
  not).
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

import structlog

from core.fastpath import WSGIApp, is_secure, security_headers
from core.middleware import log_request, plain_request_id

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True)
class BodyLimits:
    keep_bytes: int  # passed on to the application
    discard_bytes: int  # read and dropped past keep_bytes
    seconds: float  # for a body to arrive, from the request's headers on; for a client to take a piece
    budget_bytes: int  # bodies held at once by one process, reserved from their declared length
    cut_body_paths: frozenset[str] = frozenset()  # given a body cut at keep_bytes; the rest get 413

    @property
    def too_large(self) -> str:
        return f"body larger than {self.keep_bytes - 1} bytes"


@dataclass(frozen=True)
class Body:
    content: bytes
    complete: bool  # read to its end: the connection can serve another request
    cut: bool  # longer than what was kept


@dataclass(frozen=True)
class Collected:
    """An answer read whole in its thread, or a file for the server to send (`path`)."""

    status: int
    headers: Headers
    body: bytes = b""
    path: str | None = None


class ClientGone(Exception):
    """The client closed the connection, or took nothing of the answer for too long."""


class WSGIInThreads:
    """ASGI application: each request's body read by the event loop, then `application` (WSGI) run
    on it in one of `threads` threads."""

    def __init__(self, application: WSGIApp, threads: int, limits: BodyLimits) -> None:
        self.application = application
        self.threads = ThreadPoolExecutor(threads, thread_name_prefix="web")
        self.limits = limits
        self.budget = limits.budget_bytes  # free bytes; only the event loop's thread changes it

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        elif scope["type"] == "http":  # no websockets here (granian --no-ws)
            await self.http(scope, receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if refused_before_sending(scope, self.limits):  # the client waits for a go-ahead it will not get
                await self.answer_cut(scope, closing(send), b"")
                return
            reserved = reservation(scope, self.limits)
            if reserved > self.budget:
                await refuse(scope, send, 503, "too many request bodies in flight; try again", retry_after=1)
                return
            self.budget -= reserved
            try:
                await self.read_and_answer(scope, receive, send)
            finally:
                self.budget += reserved
        except ClientGone:
            pass  # nobody left to answer

    async def read_and_answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with asyncio.timeout(self.limits.seconds):
                body = await read_body(receive, self.limits)
        except TimeoutError:
            await refuse(
                scope, send, 408, f"the request's body did not arrive within {self.limits.seconds:g} s"
            )
            return
        if body.cut:
            await self.answer_cut(scope, send if body.complete else closing(send), body.content)
        else:
            await self.answer(scope, receive, send, body.content)

    async def answer_cut(self, scope: Scope, send: Send, body: bytes) -> None:
        """The answer to a body longer than what was kept: the application's where it reads no more
        (no watching for the client leaving: that would read the rest), else the front's 413."""
        if scope["path"] in self.limits.cut_body_paths:
            await self.answer(scope, None, send, body)
        else:
            await refuse(scope, send, 413, self.limits.too_large)

    async def answer(self, scope: Scope, receive: Receive | None, send: Send, body: bytes) -> None:
        """The application's answer; `receive` is watched for the client leaving during a stream."""
        loop = asyncio.get_running_loop()
        files = "http.response.pathsend" in scope.get("extensions", {})
        relay = Relay(loop, send, receive, self.limits.seconds, files)
        answer = await loop.run_in_executor(self.threads, self.respond, wsgi_environ(scope, body), relay)
        if answer is None:
            return
        await send({"type": "http.response.start", "status": answer.status, "headers": answer.headers})
        if answer.path is not None:
            await send({"type": "http.response.pathsend", "path": answer.path})
        else:
            await send({"type": "http.response.body", "body": answer.body})

    def respond(self, environ: dict[str, Any], relay: Relay) -> Collected | None:
        """In a thread: the application's answer, collected; None once `relay` has streamed it."""
        started = StartResponse()
        iterable = self.application(environ, started)
        try:
            if not getattr(iterable, "streaming", False):
                body = b"".join(iterable)  # first: start_response may come as late as the first piece
                return Collected(started.status, started.headers, body)
            path = file_path(iterable)
            if path is not None and relay.files:
                return Collected(started.status, started.headers, path=path)
            relay.stream(started, iterable)
            return None
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:  # Django's request_finished: in the thread that served the request
                close()

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.threads.shutdown(wait=False, cancel_futures=True)
                await send({"type": "lifespan.shutdown.complete"})
                return


def reservation(scope: Scope, limits: BodyLimits) -> int:
    """The bytes a request's body may hold in the front: its declared length, at most keep_bytes;
    keep_bytes for a chunked one; none without a body."""
    headers = dict(scope["headers"])
    length = headers.get(b"content-length", b"")
    if length.isdigit():
        return min(int(length), limits.keep_bytes)
    return limits.keep_bytes if b"transfer-encoding" in headers else 0


def refused_before_sending(scope: Scope, limits: BodyLimits) -> bool:
    """The client waits to be told to send (`Expect: 100-continue`) a body declared longer than is
    kept: the answer can go without reading any of it."""
    headers = dict(scope["headers"])
    length = headers.get(b"content-length", b"")
    expects = headers.get(b"expect", b"").lower() == b"100-continue"
    return expects and length.isdigit() and int(length) > limits.keep_bytes


async def read_body(receive: Receive, limits: BodyLimits) -> Body:
    """The body's first `keep_bytes` bytes; the rest is read and dropped, up to `discard_bytes`."""
    kept: list[bytes] = []
    kept_bytes = dropped_bytes = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk: bytes = message.get("body", b"")
        room = max(limits.keep_bytes - kept_bytes, 0)
        kept.append(chunk[:room])
        kept_bytes += min(room, len(chunk))
        dropped_bytes += len(chunk) - min(room, len(chunk))
        more = message.get("more_body", False)
        if not more or dropped_bytes > limits.discard_bytes:
            return Body(b"".join(kept), complete=not more, cut=dropped_bytes > 0)


def wsgi_environ(scope: Scope, body: bytes) -> dict[str, Any]:
    """PEP 3333's environ of an ASGI request, as granian's WSGI interface builds it, but that a header
    whose name has an underscore is dropped (as nginx and gunicorn drop them): `X_Forwarded_Proto`
    would otherwise pass for the proxy's `X-Forwarded-Proto`."""
    server, server_port = scope.get("server") or ("", 0)
    client = scope.get("client") or ("", 0)
    raw_path = scope.get("raw_path")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"], "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(raw_path).decode("latin-1") if raw_path else scope["path"],
        "QUERY_STRING": scope["query_string"].decode("latin-1"),
        "SERVER_NAME": server, "SERVER_PORT": str(server_port), "REMOTE_ADDR": client[0],
        "SERVER_PROTOCOL": f"HTTP/{scope['http_version']}", "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"), "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }  # fmt: skip
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        if "_" in name:
            continue
        key = _CGI_NAMES.get(name) or f"HTTP_{name.upper().replace('-', '_')}"
        if key in environ:  # a repeated header, joined as granian does (cookies with ";")
            value = f"{environ[key]}{';' if name == 'cookie' else ','}{value}"
        environ[key] = value
    return environ


_CGI_NAMES = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}


def file_path(iterable: object) -> str | None:
    """The path of the file a Django FileResponse sends whole (not a range of it), if it has one."""
    name = getattr(getattr(iterable, "file_to_stream", None), "name", None)
    return name if isinstance(name, str) and Path(name).is_file() else None


class StartResponse:
    """WSGI's start_response, keeping the status and headers: a later call, with exc_info, replaces
    them until they are `sent` (a stream's), and raises its exception after (PEP 3333)."""

    def __init__(self) -> None:
        self.status = 500
        self.headers: Headers = []
        self.sent = False

    def __call__(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[..., None]:
        if exc_info is not None and self.sent:
            raise exc_info[1].with_traceback(exc_info[2])
        self.status = int(status[:3])
        self.headers = encoded(headers)
        return _no_write


def _no_write(data: bytes) -> None:
    raise NotImplementedError("start_response's write() is not supported: return an iterable")


def encoded(headers: Iterable[tuple[str, str]]) -> Headers:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]


@dataclass
class Relay:
    """Sends a streamed answer through the event loop from a thread, each piece once the server has
    taken the one before (it holds a few: a slow client slows its thread, and one that takes
    nothing for `seconds`, or leaves, ends the answer with ClientGone)."""

    loop: asyncio.AbstractEventLoop
    send: Send
    receive: Receive | None  # watched for the client leaving; None: not read at all
    seconds: float
    files: bool  # the server sends a file from its path (ASGI's http.response.pathsend)
    gone: threading.Event = field(default_factory=threading.Event)

    def stream(self, started: StartResponse, chunks: Iterable[bytes]) -> None:
        watching = None
        if self.receive is not None:
            watching = asyncio.run_coroutine_threadsafe(self._watch(self.receive), self.loop)
        try:
            pieces = iter(chunks)
            first = next(pieces, b"")  # start_response may come as late as the first piece
            self.put({"type": "http.response.start", "status": started.status, "headers": started.headers})
            started.sent = True
            for chunk in itertools.chain([first], pieces):
                self.put({"type": "http.response.body", "body": chunk, "more_body": True})
            self.put({"type": "http.response.body", "body": b""})
        finally:
            if watching is not None:
                watching.cancel()

    def put(self, message: Message) -> None:
        if self.gone.is_set():
            raise ClientGone
        sent = asyncio.run_coroutine_threadsafe(self._send(message), self.loop)
        try:
            sent.result(timeout=self.seconds)
        except TimeoutError:
            sent.cancel()
            raise ClientGone from None

    async def _send(self, message: Message) -> None:  # a coroutine: the server's send need not be one
        await self.send(message)

    async def _watch(self, receive: Receive) -> None:
        """Sets `gone` when the client leaves: the server's send does not say so."""
        while (await receive())["type"] != "http.disconnect":
            pass
        self.gone.set()


def closing(send: Send) -> Send:
    """`send`, with Connection: close on the answer: the rest of the body was never read."""

    async def send_and_close(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message["headers"], (b"connection", b"close")]}
        await send(message)

    return send_and_close


async def refuse(scope: Scope, send: Send, status: int, error: str, retry_after: int | None = None) -> None:
    """The front's own answer (408, 503), with the security headers every answer has, logged as any
    answer is (core/middleware.py); the connection is closed after it."""
    started = time.perf_counter()
    given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
    request_id = plain_request_id(given)
    headers = {"Content-Type": "application/json", "X-Request-ID": request_id, "Connection": "close",
               **security_headers(is_secure(wsgi_environ(scope, b"")))}  # fmt: skip
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    await send({"type": "http.response.start", "status": status, "headers": encoded(headers.items())})
    await send({"type": "http.response.body", "body": json.dumps({"error": error}).encode()})
    with structlog.contextvars.bound_contextvars(request_id=request_id):
        log_request(scope["method"], scope["path"], status, started)
