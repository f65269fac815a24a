"""The read benchmark's HTTP client (one keep-alive connection, as a dashboard holds) and the
sampler of the web process's memory."""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from figures import percentile

Params = dict[str, list[str]]
ParamsFor = Callable[[int], Params]  # the parameters of the i-th request


class Api:
    """One keep-alive HTTP client of the read API."""

    def __init__(self, port: int, key: str) -> None:
        self.port, self.key = port, key
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def answers(self) -> bool:
        with contextlib.suppress(OSError, http.client.HTTPException):
            return self.get("/api/v1/events", {"limit": ["1"]})[0] == 200
        self.connection.close()
        return False

    def get(self, path: str, params: Params) -> tuple[int, bytes]:
        self.connection.request(
            "GET", f"{path}?{urllib.parse.urlencode(params, doseq=True)}", headers=self.headers
        )
        response = self.connection.getresponse()
        return response.status, response.read()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def timed(self, params: ParamsFor, requests: int, path: str = "/api/v1/events") -> dict[str, Any]:
        """p50 and p99 of `requests` GETs, the i-th with `params(i)`, after one not counted (it
        opens the web process's ClickHouse client for the thread that answers)."""
        self.get(path, params(requests))
        latencies, items = [], 0
        for index in range(requests):
            began = time.monotonic()
            status, body = self.get(path, params(index))
            latencies.append(time.monotonic() - began)
            if status != 200:
                raise RuntimeError(f"GET {path} answered {status}: {body[:300]!r}")
            answer = json.loads(body)
            items += len(answer.get("events", answer.get("buckets", [])))
        latencies.sort()
        return {
            "p50_ms": percentile(latencies, 50) * 1000,
            "p99_ms": percentile(latencies, 99) * 1000,
            "requests": requests,
            "items_per_answer": items / requests,
        }

    @contextlib.contextmanager
    def stream(self, params: Params) -> Iterator[http.client.HTTPResponse]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            query = urllib.parse.urlencode(params, doseq=True)
            connection.request("GET", f"/api/v1/events/export?{query}", headers=self.headers)
            yield connection.getresponse()
        finally:
            connection.close()


def read_export(api: Api, params: Params) -> tuple[int, bytes]:
    """The bytes received, and the last line (the export's tail)."""
    received, tail = 0, b""
    with api.stream(params) as response:
        if response.status != 200:
            raise RuntimeError(f"export answered {response.status}: {response.read()[:300]!r}")
        while chunk := response.read(1 << 20):
            received += len(chunk)
            tail = (tail + chunk)[-4096:]
    return received, tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]


class RssSampler:
    """The largest resident set (VmRSS) of any of the web's processes, every 20 ms while open."""

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self.pids = pids
        self.before = self.peak = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> RssSampler:
        self.before = self._largest()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, self.before, self._largest())

    def _sample(self) -> None:
        while not self._done.wait(0.02):
            self.peak = max(self.peak, self._largest())

    def _largest(self) -> float:
        largest = 0.0
        for pid in self.pids():
            with contextlib.suppress(OSError, ValueError):
                status = Path(f"/proc/{pid}/status").read_text()
                largest = max(largest, int(status.split("VmRSS:")[1].split()[0]) / 1024)
        return largest
