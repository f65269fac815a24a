"""One HTTP load client, run in its own process (multiprocessing, spawn).

It imports nothing of Django: a spawned process starts clean, and the clients must cost the
machine as little as possible besides the requests themselves.
"""

from __future__ import annotations

import http.client
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
    headers = {"Authorization": f"Bearer {load.key}", "Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", load.port, timeout=60)
    window.ready.put(True)
    window.go.wait()
    start_at, end_at = window.times[0], window.times[1]
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    while (sent := time.monotonic()) < end_at:
        status = post(conn, load.body, headers)
        if status == 0:
            conn.close()  # reconnects on the next request
        if sent >= start_at:
            latencies.append(time.monotonic() - sent)
            statuses[status] += 1
    conn.close()
    results.put(ClientResult(latencies, dict(statuses)))


def post(conn: http.client.HTTPConnection, body: bytes, headers: dict[str, str]) -> int:
    """One request; its status, or 0 when the connection failed."""
    try:
        conn.request("POST", PATH, body=body, headers=headers)
        response = conn.getresponse()
        response.read()  # the whole answer, so the connection can be reused
    except (OSError, http.client.HTTPException):
        return 0
    return response.status
