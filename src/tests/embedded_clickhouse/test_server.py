from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from eventlog.embedded_clickhouse.config import HANDOFF, serving

SRC = Path(__file__).resolve().parents[2]
URL = "http://eventlog:s%40cret@127.0.0.1:8123/default"


def test_the_server_listens_where_the_url_points_and_accepts_its_credentials() -> None:
    config = serving(URL, Path("var/ch"))
    assert (config.host, config.port, config.credentials.user, config.credentials.password) == (
        "127.0.0.1", 8123, "eventlog", "s@cret"
    )  # fmt: skip
    assert config.data_path == Path("var/ch").resolve()
    elsewhere = serving(URL, Path("/srv/ch"), "[::1]:9123")
    assert (elsewhere.host, elsewhere.port) == ("::1", 9123)


def test_a_url_without_a_password_is_refused() -> None:
    with pytest.raises(ValueError, match="password"):
        serving("http://eventlog@127.0.0.1:8123/default", Path("var/ch"))


def test_the_command_says_what_to_set_when_no_data_path_is_given(settings: object) -> None:
    with override_settings(EVENTLOG={"CLICKHOUSE_URL": URL}), pytest.raises(CommandError, match="EMBEDDED"):
        call_command("embedded_clickhouse")


def test_the_server_program_started_by_hand_says_to_use_the_command() -> None:
    started = subprocess.run(
        [sys.executable, "-m", "eventlog.embedded_clickhouse"], cwd=SRC,
        env={key: value for key, value in os.environ.items() if key not in HANDOFF},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert started.returncode == 2
    assert "manage.py embedded_clickhouse" in started.stderr
    assert "chdb" not in started.stderr  # refused before the engine is loaded
