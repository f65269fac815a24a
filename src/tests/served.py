"""The application as production serves it: a web process started as `make web` starts it (granian,
core/processes.py) on the test database, and a client of the Django test client's shape that sends
each request over a real HTTP connection to it.

The web process reads the test database, the run's embedded ClickHouse (database `default`, as the
tests' `writer`) and the tests' own Redis database, so rows a test writes are what the server
answers from, and what the server writes is there for the test to read back.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from django.conf import settings

from core.processes import WEB_APPLICATION
from eventlog.runtime import event_log_writer
from tests.processes import process_env, running, start
from tests.settings import free_port

Params = Mapping[str, str | int | list[str]]


@dataclass(frozen=True)
class ServedResponse:
    status_code: int
    headers: Message
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)

    def __getitem__(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: str) -> bool:
        return name in self.headers


class ServedClient:
    """Requests to the served web process, one connection each, answered in full."""

    def __init__(self, port: int, timeout: float = 60.0) -> None:
        self.port = port
        self.timeout = timeout

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> ServedResponse:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            connection.request(method, path, body=body, headers=dict(headers or {}))
            response = connection.getresponse()
            return ServedResponse(response.status, response.headers, response.read())
        finally:
            connection.close()

    def get(
        self, path: str, params: Params | None = None, headers: Mapping[str, str] | None = None
    ) -> ServedResponse:
        query = f"?{urlencode(params, doseq=True)}" if params else ""
        return self.request("GET", path + query, headers=headers)

    def post(
        self,
        path: str,
        data: bytes | str = b"",
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> ServedResponse:
        body = data.encode() if isinstance(data, str) else data
        return self.request("POST", path, body, {"Content-Type": content_type, **(headers or {})})


@dataclass(frozen=True)
class ServedWeb:
    """A running web process: its port, and the file its output (JSON log lines) goes to."""

    port: int
    log: Path

    def client(self) -> ServedClient:
        return ServedClient(self.port)

    def log_lines(self, since: int = 0) -> list[dict[str, Any]]:
        """The JSON lines logged from byte `since` of the log on (`log_size()` before a request)."""
        with self.log.open("rb") as log:
            log.seek(since)
            return [json.loads(line) for line in log.read().splitlines() if line.startswith(b"{")]

    def log_size(self) -> int:
        return self.log.stat().st_size


@contextmanager
def serving(directory: Path, application: str = WEB_APPLICATION, **overrides: str) -> Iterator[ServedWeb]:
    """A web process serving `application` (core/processes.py) with the test's environment and
    `overrides` (variables of src/core/.env.example), once it answers, on the run's event_log (made
    first, as `make run` makes it); killed on leaving."""
    event_log_writer().client()
    directory.mkdir(parents=True, exist_ok=True)
    port, log = free_port(), directory / "web.log"
    defaults = {
        "REDIS_URL": settings.CONFIG.redis_url,  # the tests' own: they reset and read the rate counts
        "WEB_METRICS_DIR": str(directory / "metrics"),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
    }
    env = process_env("default", **{**defaults, **overrides})
    web_process = start("web", env, directory / "beat", log=log, web_bind=f"127.0.0.1:{port}",
                        web_application=application)  # fmt: skip
    with running(web_process) as process:
        web = ServedWeb(port, log)
        _wait_until_answering(web, process.poll)
        yield web


def _wait_until_answering(web: ServedWeb, exited: Any, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and exited() is None:
        try:
            web.client().get("/healthz")
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"the web process did not answer: {web.log.read_text()[-2000:]}")
