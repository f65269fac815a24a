"""One HTTP load client, run in its own process (multiprocessing, spawn).

It imports nothing of Django: a spawned process starts clean, and the clients must cost the
machine as little as possible besides the requests themselves. So it speaks HTTP/1.1 on a plain
socket: the request is built once, and an answer is read by its Content-Length (http.client did
much more per request in Python, on the cores the server needs; `cpu_us_per_request.clients`
in the results shows what the clients cost now).
"""

from __future__ import annotations

import socket
import time
from collections import Counter
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import SynchronizedArray
from multiprocessing.synchronize import Event
from typing import Any

PATH = "/api/v1/events"


@dataclass(frozen=True)
class Load:
    port: int
    key: str
    body: bytes


@dataclass(frozen=True)
class Window:
    """Shared with the driver: it sets `go` once every client is ready and has written the window
    into `times` as (start, end) in time.monotonic(), one clock for every process of the machine."""

    ready: Queue[Any]
    go: Event
    times: SynchronizedArray[float]


@dataclass(frozen=True)
class ClientResult:
    latencies_s: list[float]  # of the requests sent inside [start_at, end_at)
    statuses: dict[int, int]  # status -> count, inside the window; 0 = connection error


def run_client(load: Load, window: Window, results: Queue[Any]) -> None:
    """POST `load.body` over one keep-alive connection, back to back, until the window ends.
    Requests sent before it starts are the warm-up and are not recorded."""
    request = http_request(load)
    connection = Connection(load.port)
    window.ready.put(True)
    window.go.wait()
    start_at, end_at = window.times[0], window.times[1]
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    while (sent := time.monotonic()) < end_at:
        status = connection.exchange(request)
        if sent >= start_at:
            latencies.append(time.monotonic() - sent)
            statuses[status] += 1
    connection.close()
    results.put(ClientResult(latencies, dict(statuses)))


def run_requests(load: Load, requests: int, results: Queue[Any]) -> None:
    """POST `load.body` exactly `requests` times over one keep-alive connection, back to back;
    put the statuses counted (0 = connection error)."""
    request = http_request(load)
    connection = Connection(load.port)
    statuses: Counter[int] = Counter(connection.exchange(request) for _ in range(requests))
    connection.close()
    results.put(dict(statuses))


def http_request(load: Load) -> bytes:
    return (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{load.port}\r\nAuthorization: Bearer {load.key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(load.body)}\r\n\r\n"
    ).encode() + load.body


class Connection:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1:port, reopened after a failure."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.pending = b""  # bytes received past the end of the last answer

    def exchange(self, request: bytes) -> int:
        """Send one request and read its whole answer; its status, or 0 when the connection failed."""
        try:
            if self.sock is None:
                self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
                self.pending = b""
            self.sock.sendall(request)
            return self._read_answer(self.sock)
        except OSError:
            self.close()
            return 0

    def _read_answer(self, sock: socket.socket) -> int:
        data = self.pending
        while (head_end := data.find(b"\r\n\r\n")) < 0:
            data += receive(sock)
        status_line, *lines = data[:head_end].split(b"\r\n")
        fields = {name.strip().lower(): value for name, _, value in (line.partition(b":") for line in lines)}
        if b"content-length" not in fields:  # every answer of the API carries one
            raise ValueError(f"answer without Content-Length: {status_line!r}")
        end = head_end + 4 + int(fields[b"content-length"])
        while len(data) < end:
            data += receive(sock)
        self.pending = data[end:]
        return int(status_line.split()[1])

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def receive(sock: socket.socket) -> bytes:
    chunk = sock.recv(65536)
    if not chunk:
        raise ConnectionResetError("the server closed the connection")
    return chunk
