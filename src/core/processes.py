"""The command line of each process of the system, in one place: `make run`, `make clickhouse|web|
worker|beat|flower`, the tests and the benchmark start processes from here, so they run with the
same configuration. Commands run from `src/`.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

BIN = Path(sys.executable).parent
# granian, a web server with its HTTP side in Rust (docs/benchmarks.md has its figures), serving
# core/asgi.py: bodies read by its event loop, the WSGI application run in threads.
# Two processes of four threads each: a request mostly waits on PostgreSQL, so threads overlap it.
WEB_WORKERS = 2
WEB_THREADS = 4
WEB_APPLICATION = "core.asgi:application"
WORKER_PROCESSES = 3


def process_argv(
    name: str,
    beat_schedule: Path,
    *,
    embedded_beat: bool = False,
    web_bind: str = "127.0.0.1:8000",
    web_application: str = WEB_APPLICATION,
) -> list[str]:
    """argv for "clickhouse" (the embedded server), "web", "worker" (with beat inside it if
    `embedded_beat`), "beat" or "flower". `web_application` is the web's entry point, in
    core/asgi.py or core/wsgi.py (the benchmark compares the ways to serve ingest).

    The worker runs the prefork pool: its processes overlap their work without sharing one GIL, and
    each reaches ClickHouse over HTTP like any other client.
    """
    celery = [sys.executable, "-m", "celery", "-A", "core"]
    if name == "clickhouse":
        return [sys.executable, "manage.py", "embedded_clickhouse"]
    if name == "web":
        host, _, port = web_bind.rpartition(":")
        # Ctrl-C (SIGINT to every process) followed by a SIGTERM sometimes left a granian worker
        # waiting forever for a shutdown it had missed, and granian waiting for it: killed after 10 s.
        stop_stuck_workers = ["--workers-kill-timeout", "10"]
        # HTTP/1.1 only: the front (core/front.py) reserves room for a body from its Content-Length
        # or Transfer-Encoding, and an HTTP/2 body may come with neither.
        # Under WSGI granian's threads run the application; under ASGI its event loop (asyncio's
        # own: uvloop saved 4% of the web's CPU, not worth a dependency) reads the requests and
        # core/asgi.py's threads run the application.
        interface = ["--interface", "wsgi", "--blocking-threads", str(WEB_THREADS)]
        if web_application.startswith("core.asgi:"):
            interface = ["--interface", "asgi", "--loop", "asyncio", "--no-ws"]
        return [str(BIN / "granian"), *interface, web_application, "--host", host, "--port", port,
                "--workers", str(WEB_WORKERS), "--http", "1", "--respawn-failed-workers",
                *stop_stuck_workers]  # fmt: skip
    if name == "worker":
        beat = ["--beat", f"--schedule={beat_schedule}"] if embedded_beat else []
        # --task-events: Flower shows the relay's runs from the events the worker sends.
        # Three pool processes: the relay's slots (RELAY_SLOTS, 2 by default) and the purge.
        return [sys.executable, "-m", "core.worker", "-A", "core", "worker", "--pool=prefork",
                f"--concurrency={WORKER_PROCESSES}", "--without-gossip", "--task-events", *beat]  # fmt: skip
    if name == "beat":
        return [*celery, "beat", f"--schedule={beat_schedule}"]
    if name == "flower":
        return [*celery, "flower", "--conf=core/flowerconfig.py"]
    raise ValueError(f"unknown process {name!r}: clickhouse, web, worker, beat or flower")


def clickhouse_answers(url: str, process: subprocess.Popen[bytes], seconds: float = 60.0) -> bool:
    """True once the ClickHouse at `url` answers GET /ping; False if `process` (the embedded server
    started for it) exits first, or after `seconds`."""
    parts = urlsplit(url)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"http://{parts.hostname}:{parts.port}/ping", timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False
