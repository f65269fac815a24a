"""Flower, started as `make run` starts it: behind basic auth, showing the relay's runs."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.processes import new_database, process_env, reset_broker, running, start, start_worker
from tests.test_processes import free_port

pytestmark = pytest.mark.django_db(transaction=True)


def get(url: str, credentials: str | None = None) -> tuple[int, Any]:
    """Status and JSON body of a GET; status 0 while nothing listens yet."""
    headers = {}
    if credentials:
        headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except OSError:  # URLError: nothing listens yet
        return 0, None


def test_flower_asks_for_its_password_and_shows_the_relay_task(tmp_path: Path) -> None:
    port = free_port()
    env = process_env(new_database(), FLOWER_PORT=str(port), FLOWER_BASIC_AUTH="ops:s3cret")
    reset_broker()
    schedule = tmp_path / "beat-schedule"
    tasks_url = f"http://127.0.0.1:{port}/api/tasks"
    with running(start("flower", env, schedule)), running(start_worker(env, schedule)):
        deadline, names = time.monotonic() + 60, set()
        while "eventlog.relay_outbox" not in names:
            assert time.monotonic() < deadline, f"Flower showed no relay task, only {names}"
            time.sleep(0.5)
            status, tasks = get(tasks_url, "ops:s3cret")
            names = {task["name"] for task in (tasks or {}).values()} if status == 200 else set()
        assert get(tasks_url)[0] == 401
        assert get(tasks_url, "ops:wrong")[0] == 401
