"""The web server's entry point (granian serves it as ASGI): a request's body is read whole by the
event loop, and only then does one of a fixed pool of threads run the WSGI application on it
(core/wsgi.py: the ingest fast path, then Django).

Why not WSGI straight from granian: there a thread reads the body as the client sends it, so a
client that sends its body a byte a second holds one of the process's four threads for as long as
it likes; with seven such clients a new request waited past its client's 10 s timeout
(tests/web/test_edge.py times out that way). Read by the event loop, a body costs no thread while
it arrives, as behind a buffering proxy (nginx) or in waitress. The price: 1.47x the web's CPU per
one-event request against WSGI straight, in the same `make bench` run (http_ingest_paths,
docs/benchmarks.md). Behind a proxy that buffers request bodies, `core.wsgi:application` under
granian's WSGI interface is the cheaper choice.

A body must arrive within WEB_BODY_TIMEOUT_SECONDS (else 408, and the connection is closed). Of a
body, the first INGEST_MAX_BYTES + 1 bytes are kept and passed on: enough for ingest to see that it
is too large and answer 413; the rest is read and dropped, up to ingest's DISCARD_BYTES, so that a
client that sends its whole body before reading (Python's http.client) still reads that 413. Past
that the connection is closed.

An answer is collected in its thread and handed to the event loop in one piece, one hand-over per
request; an answer the application streams (Django's StreamingHttpResponse: an export) is sent on
from the thread as the application yields it, each piece waiting for the client to take the ones
before.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from core import wsgi  # first: it sets up Django and the metrics' directory
from core.fastpath import WSGIApp, is_secure, security_headers
from core.processes import WEB_THREADS
from eventlog.conf import app_settings
from eventlog.web.ingest import DISCARD_BYTES

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True)
class BodyLimits:
    keep_bytes: int  # passed on to the application
    discard_bytes: int  # read and dropped past keep_bytes; the connection is closed past them
    seconds: float  # for the whole body to arrive, from the request's headers on


@dataclass(frozen=True)
class Collected:
    """An answer read whole in its thread."""

    status: int
    headers: Headers
    body: bytes


class ClientGone(Exception):
    """The client closed the connection before its body was complete."""


class WSGIInThreads:
    """ASGI application: each request's body read by the event loop, then `application` (WSGI) run
    on it in one of `threads` threads."""

    def __init__(self, application: WSGIApp, threads: int, limits: BodyLimits) -> None:
        self.application = application
        self.threads = ThreadPoolExecutor(threads, thread_name_prefix="web")
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":  # websockets: none here (granian --no-ws)
            return
        try:
            async with asyncio.timeout(self.limits.seconds):
                body = await read_body(receive, self.limits)
        except TimeoutError:
            await send_timeout(scope, send, self.limits.seconds)
            return
        except ClientGone:
            return
        loop = asyncio.get_running_loop()
        relay = Relay(loop, send)
        answer = await loop.run_in_executor(self.threads, self.respond, wsgi_environ(scope, body), relay)
        if answer is not None:
            await send({"type": "http.response.start", "status": answer.status, "headers": answer.headers})
            await send({"type": "http.response.body", "body": answer.body})

    def respond(self, environ: dict[str, Any], relay: Relay) -> Collected | None:
        """In a thread: the application's answer, collected; None once `relay` has streamed it."""
        started = StartResponse()
        iterable = self.application(environ, started)
        try:
            if getattr(iterable, "streaming", False):
                relay.stream(started.status, started.headers, iterable)
                return None
            return Collected(started.status, started.headers, b"".join(iterable))
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:  # Django's request_finished: in the thread that served the request
                close()


class StartResponse:
    """WSGI's start_response, keeping the status and headers (a later call, with exc_info, replaces
    them: nothing has been sent before the application returns)."""

    def __init__(self) -> None:
        self.status = 500
        self.headers: Headers = []

    def __call__(
        self, status: str, headers: list[tuple[str, str]], exc_info: object = None
    ) -> Callable[..., None]:
        self.status = int(status[:3])
        self.headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        return _no_write


def _no_write(data: bytes) -> None:
    raise NotImplementedError("start_response's write() is not supported: return an iterable")


@dataclass(frozen=True)
class Relay:
    """Sends an answer through the event loop from a thread, each message once the loop has taken
    the one before (the server holds a few pieces of a body: a slow client slows its thread)."""

    loop: asyncio.AbstractEventLoop
    send: Send

    def stream(self, status: int, headers: Headers, chunks: Iterable[bytes]) -> None:
        self.put({"type": "http.response.start", "status": status, "headers": headers})
        for chunk in chunks:
            self.put({"type": "http.response.body", "body": chunk, "more_body": True})
        self.put({"type": "http.response.body", "body": b""})

    def put(self, message: Message) -> None:
        asyncio.run_coroutine_threadsafe(self._send(message), self.loop).result()

    async def _send(self, message: Message) -> None:  # a coroutine: the server's send need not be one
        await self.send(message)


async def read_body(receive: Receive, limits: BodyLimits) -> bytes:
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
        if not message.get("more_body", False) or dropped_bytes > limits.discard_bytes:
            return b"".join(kept)


def wsgi_environ(scope: Scope, body: bytes) -> dict[str, Any]:
    """PEP 3333's environ of an ASGI request, as granian's WSGI interface builds it (a path that is
    not UTF-8 reaches the application with U+FFFD where granian's WSGI would pass its bytes)."""
    server, server_port = scope.get("server") or ("", 0)
    client = scope.get("client") or ("", 0)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"], "SCRIPT_NAME": "",
        "PATH_INFO": scope["path"].encode("utf-8", "replace").decode("latin-1"),
        "QUERY_STRING": scope["query_string"].decode("latin-1"),
        "SERVER_NAME": server, "SERVER_PORT": str(server_port), "REMOTE_ADDR": client[0],
        "SERVER_PROTOCOL": f"HTTP/{scope['http_version']}", "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"), "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }  # fmt: skip
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        key = _CGI_NAMES.get(name) or f"HTTP_{name.upper().replace('-', '_')}"
        if key in environ:  # a repeated header, joined as granian does (cookies with ";")
            value = f"{environ[key]}{';' if name == 'cookie' else ','}{value}"
        environ[key] = value
    return environ


_CGI_NAMES = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}


async def send_timeout(scope: Scope, send: Send, seconds: float) -> None:
    """408, with the security headers every answer has (Django's, as on the fast path)."""
    body = json.dumps({"error": f"the request's body did not arrive within {seconds:g} s"}).encode()
    secure = is_secure(wsgi_environ(scope, b""))
    headers = {"content-type": "application/json", "connection": "close", **_SECURITY_HEADERS[secure]}
    encoded = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
    await send({"type": "http.response.start", "status": 408, "headers": encoded})
    await send({"type": "http.response.body", "body": body})


async def lifespan(receive: Receive, send: Send) -> None:
    """Nothing to start or stop."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


_SECURITY_HEADERS = {secure: security_headers(secure) for secure in (False, True)}
_LIMITS = BodyLimits(
    keep_bytes=app_settings().ingest_max_bytes + 1,
    discard_bytes=DISCARD_BYTES,
    seconds=settings.CONFIG.web_body_timeout_seconds,
)

application = WSGIInThreads(wsgi.application, WEB_THREADS, _LIMITS)
# The other ways to serve ingest, which `make bench` (http_ingest_paths) measures beside it.
lean_application = WSGIInThreads(wsgi.lean_application, WEB_THREADS, _LIMITS)
django_application = WSGIInThreads(wsgi.django_application, WEB_THREADS, _LIMITS)
