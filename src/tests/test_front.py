"""The web's front (core/front.py), piece by piece: how a body is read, kept and dropped, what a
request's environ holds, and what a body may reserve. Served as a whole by tests/web/test_edge.py."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from core.front import (
    BodyLimits,
    ClientGone,
    Message,
    Receive,
    Relay,
    StartResponse,
    WSGIInThreads,
    read_body,
    refused_before_sending,
    reservation,
    wsgi_environ,
)

LIMITS = BodyLimits(keep_bytes=10, discard_bytes=20, seconds=1.0, budget_bytes=100)


def arriving(*messages: Message) -> Receive:
    """The messages an ASGI server gives for a request, in order."""
    queue = list(messages)

    async def receive() -> Message:
        return queue.pop(0)

    return receive


def piece(body: bytes, more: bool = True) -> Message:
    return {"type": "http.request", "body": body, "more_body": more}


def test_a_body_is_kept_up_to_its_limit_and_the_rest_read_and_dropped() -> None:
    body = asyncio.run(read_body(arriving(piece(b"0123456"), piece(b"789abc"), piece(b"def", False)), LIMITS))
    assert (body.content, body.complete, body.cut) == (b"0123456789", True, True)


def test_a_body_within_its_limit_is_whole() -> None:
    body = asyncio.run(read_body(arriving(piece(b"01234"), piece(b"56789", False)), LIMITS))
    assert (body.content, body.complete, body.cut) == (b"0123456789", True, False)


def test_past_the_discard_bound_reading_stops_and_the_body_is_not_complete() -> None:
    body = asyncio.run(read_body(arriving(piece(b"x" * 10), piece(b"y" * 21), piece(b"never")), LIMITS))
    assert (body.content, body.complete, body.cut) == (b"x" * 10, False, True)


def test_a_client_that_leaves_mid_body_is_gone() -> None:
    with pytest.raises(ClientGone):
        asyncio.run(read_body(arriving(piece(b"abc"), {"type": "http.disconnect"}), LIMITS))


def scope(headers: list[tuple[bytes, bytes]], **fields: Any) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": "/api/v1/events", "raw_path": b"/api/v1/events",
            "query_string": b"", "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 5000), "headers": headers, **fields}  # fmt: skip


def test_the_environ_is_granians_joined_headers_cookies_and_bytes_of_the_path() -> None:
    environ = wsgi_environ(
        scope(
            [
                (b"content-type", b"application/json"),
                (b"content-length", b"2"),
                (b"accept", b"a/b"),
                (b"accept", b"c/d"),
                (b"cookie", b"a=1"),
                (b"cookie", b"b=2"),
            ],
            path="/caf\ufffd",
            raw_path=b"/caf%E9%20x",
            query_string=b"q=%2B1&r",
        ),
        b"{}",
    )
    assert environ["PATH_INFO"] == "/caf\xe9 x"  # the path's bytes, as latin-1 (WSGI's convention)
    assert environ["QUERY_STRING"] == "q=%2B1&r"
    assert (environ["CONTENT_TYPE"], environ["CONTENT_LENGTH"]) == ("application/json", "2")
    assert (environ["HTTP_ACCEPT"], environ["HTTP_COOKIE"]) == ("a/b,c/d", "a=1;b=2")
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"], environ["REMOTE_ADDR"]) == (
        "127.0.0.1",
        "8000",
        "127.0.0.1",
    )
    assert environ["wsgi.input"].read() == b"{}"


def test_a_header_whose_name_has_an_underscore_cannot_pass_for_the_proxys() -> None:
    environ = wsgi_environ(scope([(b"x_forwarded_proto", b"https")]), b"")
    assert "HTTP_X_FORWARDED_PROTO" not in environ


@pytest.mark.parametrize(
    ("headers", "reserved"),
    [
        ([], 0),  # no body
        ([(b"content-length", b"4")], 4),
        ([(b"content-length", b"4000")], 10),  # at most what is kept
        ([(b"transfer-encoding", b"chunked")], 10),  # unknown: what could be kept
    ],
)
def test_a_body_reserves_what_it_may_hold(headers: list[tuple[bytes, bytes]], reserved: int) -> None:
    assert reservation(scope(headers), LIMITS) == reserved


def test_only_a_client_waiting_for_a_go_ahead_with_a_body_too_large_is_answered_unread() -> None:
    waiting = [(b"expect", b"100-continue")]
    assert refused_before_sending(scope([*waiting, (b"content-length", b"11")]), LIMITS)
    assert not refused_before_sending(scope([*waiting, (b"content-length", b"10")]), LIMITS)
    assert not refused_before_sending(scope([(b"content-length", b"4000")]), LIMITS)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running in a thread of its own, as the server's runs beside the front's threads."""
    running = asyncio.new_event_loop()
    thread = threading.Thread(target=running.run_forever, daemon=True)
    thread.start()
    yield running
    running.call_soon_threadsafe(running.stop)
    thread.join(timeout=5)
    running.close()


async def never(*args: object) -> Any:
    """A send the client never makes room for, or a receive on a client that stays."""
    await asyncio.Event().wait()


def test_a_stream_the_client_takes_nothing_of_ends_after_its_seconds(loop: asyncio.AbstractEventLoop) -> None:
    relay = Relay(loop, never, never, seconds=0.2, files=False)
    started = time.monotonic()
    with pytest.raises(ClientGone):
        relay.stream(StartResponse(), iter([b"a", b"b"]))
    assert 0.2 <= time.monotonic() - started < 2  # the thread is free again


def test_a_stream_ends_when_its_client_leaves(loop: asyncio.AbstractEventLoop) -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def leaving() -> Message:
        await asyncio.sleep(0.1)
        return {"type": "http.disconnect"}

    def chunks() -> Iterator[bytes]:
        yield b"first"
        time.sleep(0.3)  # meanwhile the client leaves
        yield b"second"

    relay = Relay(loop, send, leaving, seconds=5, files=False)
    with pytest.raises(ClientGone):
        relay.stream(StartResponse(), chunks())
    assert [message.get("body") for message in sent] == [None, b"first"]


def echo(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    """A WSGI application that answers with the body it was given, calling start_response as late as
    PEP 3333 allows (with its first piece)."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield environ["wsgi.input"].read()


def front(limits: BodyLimits = LIMITS) -> WSGIInThreads:
    return WSGIInThreads(
        echo, threads=2, limits=dataclasses.replace(limits, cut_body_paths=frozenset({"/cut"}))
    )


def served(app: WSGIInThreads, request: dict[str, Any], receive: Receive) -> list[Message]:
    """What `app` sends for one request whose body arrives as `receive` gives it."""
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app.http(request, receive, send))
    return sent


def status_and_body(sent: list[Message]) -> tuple[int, bytes]:
    return sent[0]["status"], b"".join(message.get("body", b"") for message in sent[1:])


@pytest.mark.parametrize(
    ("path", "answer"),
    [("/cut", (200, b"0123456789")), ("/other", (413, b'{"error": "body larger than 9 bytes"}'))],
)
def test_a_cut_body_goes_on_only_where_the_application_reads_no_further(
    path: str, answer: tuple[int, bytes]
) -> None:
    request = scope([(b"content-length", b"15")], path=path)
    assert status_and_body(served(front(), request, arriving(piece(b"0123456789abcde", False)))) == answer


def test_a_whole_body_goes_on_to_any_path_and_start_response_may_come_with_the_first_piece() -> None:
    request = scope([(b"content-length", b"10")], path="/other")
    assert status_and_body(served(front(), request, arriving(piece(b"0123456789", False)))) == (
        200,
        b"0123456789",
    )


def test_a_client_waiting_to_send_a_body_too_large_elsewhere_gets_the_fronts_413_unread() -> None:
    request = scope([(b"expect", b"100-continue"), (b"content-length", b"11")], path="/other")
    sent = served(front(), request, never)  # reading anything would hang
    assert sent[0]["status"] == 413
    assert (b"connection", b"close") in sent[0]["headers"]


async def slow() -> Message:
    await asyncio.sleep(5)
    return piece(b"late", False)


@pytest.mark.parametrize(
    "receive",
    [
        arriving(piece(b"0123456789", False)),  # answered
        slow,  # too late: 408
        arriving(piece(b"01"), {"type": "http.disconnect"}),  # gone mid-body
    ],
    ids=["answered", "408", "gone"],
)
def test_a_bodys_reservation_is_given_back_however_the_request_ends(receive: Receive) -> None:
    app = front(dataclasses.replace(LIMITS, seconds=0.2))
    served(app, scope([(b"content-length", b"10")]), receive)
    assert app.budget == LIMITS.budget_bytes


def test_a_bodys_reservation_is_given_back_when_the_server_cancels_the_request() -> None:
    app = front()

    async def cancelled_while_reading() -> None:
        task = asyncio.create_task(app.http(scope([(b"content-length", b"10")]), never, never))
        await asyncio.sleep(0.05)
        assert app.budget == LIMITS.budget_bytes - 10
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(cancelled_while_reading())
    assert app.budget == LIMITS.budget_bytes
