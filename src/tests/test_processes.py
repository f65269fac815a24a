"""`make web`, `make worker` and `make beat` are separate processes an operator stops and starts alone."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from eventlog.access.api_keys import create_api_key
from eventlog.monitoring.stats import outbox_stats
from tests.conftest import wait_until
from tests.processes import (
    clickhouse_event_ids,
    kill,
    manage,
    new_database,
    process_env,
    reset_broker,
    running,
    start,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def post_events(
    port: int, key: str, count: int, events: list[dict[str, Any]] | None = None
) -> dict[str, int]:
    """POST `count` order_paid events (or `events`) to the web process on `port`."""
    body = json.dumps([{"event_type": "order_paid"}] * count if events is None else events).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/events",
        data=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    for _ in range(100):  # the web process may still be starting
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (loopback)
                return dict(json.loads(response.read()))
        except (ConnectionError, urllib.error.URLError):
            time.sleep(0.1)
    raise AssertionError("the web process did not answer")


def test_web_worker_and_beat_run_alone_each_can_be_restarted_and_commands_run_beside_them(
    tmp_path: Path,
) -> None:
    database = new_database()
    env = process_env(database)
    reset_broker()
    key = create_api_key("processes")[1]
    port = free_port()
    schedule = tmp_path / "beat-schedule"
    with (
        running(start("web", env, schedule, web_bind=f"127.0.0.1:{port}")),
        running(start("worker", env, schedule)),
    ):
        beat = start("beat", env, schedule)
        assert post_events(port, key, 100) == {"accepted": 100, "duplicates": 0}
        wait_until(lambda: outbox_stats()["processed"] == 100)

        kill(beat)  # without beat nothing starts a relay run ...
        time.sleep(1.5)  # (the ticks it sent last expire after one second)
        assert post_events(port, key, 50)["accepted"] == 50
        time.sleep(2)
        assert outbox_stats()["pending"] == 50

        # While the web app and the worker run, the commands and this process reach ClickHouse too.
        manage(env, "migrate_clickhouse")
        manage(env, "relay_outbox", "--once")
        manage(env, "dead_letters", "--replay")
        assert outbox_stats()["processed"] == 150
        assert len(set(clickhouse_event_ids(database))) == 150

        assert post_events(port, key, 50)["accepted"] == 50
        with running(start("beat", env, schedule)):  # ... and beat, back, starts runs again
            wait_until(lambda: outbox_stats()["processed"] == 200)
    assert len(set(clickhouse_event_ids(database))) == 200


def test_the_web_server_serves_the_collected_static_files(tmp_path: Path) -> None:
    env = process_env(new_database())
    manage(env, "collectstatic", "--no-input", "--verbosity", "0")  # into STATIC_ROOT, as `make run` does
    port = free_port()
    with running(start("web", env, tmp_path / "beat-schedule", web_bind=f"127.0.0.1:{port}")):
        url = f"http://127.0.0.1:{port}/static/admin/css/base.css"
        for _ in range(100):  # the web process may still be starting
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    assert response.status == 200
                    assert b"body" in response.read()
                    return
            except (ConnectionError, urllib.error.URLError):
                time.sleep(0.1)
    raise AssertionError("the web server did not serve /static/")


def test_ctrl_c_stops_every_web_server_process(tmp_path: Path) -> None:
    """Ctrl-C in `make run` reaches the whole process group, and scripts/run.py then sends SIGTERM to
    the web server too; granian sometimes left a worker process waiting forever for a shutdown."""
    env = process_env(new_database())
    key = create_api_key("processes")[1]
    for _ in range(2):  # the hang did not come every time
        port = free_port()
        web = start("web", env, tmp_path / "beat-schedule", web_bind=f"127.0.0.1:{port}")
        with running(web):
            post_events(port, key, 1)
            os.killpg(web.pid, signal.SIGINT)
            web.send_signal(signal.SIGTERM)
            web.wait(timeout=30)
            wait_until(lambda pgid=web.pid: not group_members(pgid), timeout=30)


def group_members(pgid: int) -> list[int]:
    """The processes still in the process group (/proc/PID/stat's fifth field is its group)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[2]) == pgid:
                members.append(int(stat.parent.name))
    return members
