"""eventlog's settings: the EVENTLOG dict over its defaults, and every problem a system check with
a stable id."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import current_app
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from eventlog.conf import DEFAULTS, EventlogSettings, app_settings, parse
from eventlog.scheduling.beat import beat_schedule

URL = "http://eventlog:secret@127.0.0.1:8123/default"
SRC = Path(__file__).resolve().parents[1]


def ids(raw: object) -> list[str]:
    return [problem.id for problem in parse(raw)[1]]


def test_a_dict_with_only_the_clickhouse_url_gets_every_documented_default() -> None:
    parsed, problems = parse({"CLICKHOUSE_URL": URL, "RELAY_BATCH_SIZE": 500, "OUTBOX_RETENTION_DAYS": 3})
    assert problems == []
    assert parsed == EventlogSettings(clickhouse_url=URL, relay_batch_size=500, outbox_retention_days=3.0)
    assert isinstance(parsed.outbox_retention_days, float)  # an int given for a float setting
    assert DEFAULTS["READ_RATE_LIMIT_PER_MINUTE"] == 600


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://host", ["eventlog.E001"]),
        ({"CLICKHOUSE_URL": URL, "RELAY_BATCH": 5}, ["eventlog.E001"]),
        ({"CLICKHOUSE_URL": URL, "RELAY_BATCH_SIZE": "500"}, ["eventlog.E002"]),
        ({"CLICKHOUSE_URL": URL, "RELAY_SLOTS": 0}, ["eventlog.E002"]),
        ({"CLICKHOUSE_URL": URL, "RELAY_SLOTS": True}, ["eventlog.E002"]),
        ({"CLICKHOUSE_URL": URL, "CLICKHOUSE_VERIFY": "yes"}, ["eventlog.E002"]),
        ({"CLICKHOUSE_URL": URL, "CLICKHOUSE_CLUSTER": "a; DROP"}, ["eventlog.E002"]),
        ({"CLICKHOUSE_URL": URL, "ENVIRONMENT": ""}, ["eventlog.E002"]),
        ({"CLICKHOUSE_URL": URL, "ENVIRONMENT": "x" * 256}, ["eventlog.E002"]),
        ({"CLICKHOUSE_URL": URL, "RELAY_INTERVAL_SECONDS": float("nan")}, ["eventlog.E002"]),
        ({}, ["eventlog.E003"]),
        ({"CLICKHOUSE_URL": "chdb:///var/clickhouse"}, ["eventlog.E003"]),
        ({"CLICKHOUSE_URL": "http://host:99999/default"}, ["eventlog.E003"]),
        ({"CLICKHOUSE_URL": "http://host:8123/no-such;db"}, ["eventlog.E003"]),
        ({"RELAY_SLOTS": -1}, ["eventlog.E002", "eventlog.E003"]),
        ({"CLICKHOUSE_URL": URL, "EMBEDDED_CLICKHOUSE_LISTEN": "8123"}, ["eventlog.E002"]),
        (
            {"CLICKHOUSE_URL": "http://eventlog@h:8123/default", "EMBEDDED_CLICKHOUSE_PATH": "/d"},
            ["eventlog.E003"],
        ),
    ],
)
def test_each_problem_has_its_check_id(raw: object, expected: list[str]) -> None:
    assert ids(raw) == expected
    assert parse(raw)[0] is None


def test_the_embedded_servers_address_is_an_ipv4_or_a_name_and_a_port() -> None:
    assert ids({"CLICKHOUSE_URL": URL, "EMBEDDED_CLICKHOUSE_LISTEN": "0.0.0.0:9123"}) == []
    for listen in ("[::1]:8123", "host:0", "host:65536", "host"):  # the server binds IPv4 only
        assert ids({"CLICKHOUSE_URL": URL, "EMBEDDED_CLICKHOUSE_LISTEN": listen}) == ["eventlog.E002"]


def test_a_server_url_may_have_no_password_only_the_embedded_one_needs_it() -> None:
    assert ids({"CLICKHOUSE_URL": "http://eventlog@h:8123/default"}) == []


def test_manage_py_check_reports_a_broken_eventlog_by_its_id(settings: Any) -> None:
    call_command("check")  # the test settings are clean
    settings.EVENTLOG = {**settings.EVENTLOG, "RELAY_SLOTS": "two"}
    with pytest.raises(SystemCheckError, match=r"eventlog\.E002.*RELAY_SLOTS|RELAY_SLOTS.*eventlog\.E002"):
        call_command("check")


def test_a_changed_eventlog_setting_is_read_again(settings: Any) -> None:
    settings.EVENTLOG = {**settings.EVENTLOG, "RELAY_BATCH_SIZE": 123}
    assert app_settings().relay_batch_size == 123


def test_an_outbox_database_that_is_not_postgresql_is_reported(tmp_path: Path) -> None:
    (tmp_path / "sqlite_settings.py").write_text(
        "from tests.settings import *  # noqa\n"
        "DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': ':memory:'}}\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "sqlite_settings", "PYTHONPATH": f"{tmp_path}:{SRC}"}
    check = subprocess.run(
        [sys.executable, str(SRC / "manage.py"), "check"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode != 0
    assert "eventlog.E004" in check.stderr
    assert "sqlite" in check.stderr


@pytest.fixture
def celery_conf() -> Iterator[Any]:
    """The project's Celery configuration, put back after the test."""
    conf = current_app.conf
    saved = {"beat_schedule": dict(conf.beat_schedule), "beat_scheduler": conf.beat_scheduler}
    yield conf
    conf.update(saved)


def test_a_beat_schedule_without_the_relay_is_reported(celery_conf: Any) -> None:
    assert "eventlog.E005" not in check_ids()
    celery_conf.beat_schedule = {"other": {"task": "other.task", "schedule": 5.0}}
    assert "eventlog.E005" in check_ids()


def test_a_scheduler_that_rounds_the_relays_schedule_away_is_reported(celery_conf: Any) -> None:
    assert "eventlog.E006" not in check_ids()
    celery_conf.beat_scheduler = "redbeat.RedBeatScheduler"  # keeps float intervals and options
    assert "eventlog.E006" not in check_ids()
    celery_conf.beat_scheduler = "django_celery_beat.schedulers:DatabaseScheduler"
    assert "eventlog.E006" in check_ids()


def test_the_beat_entries_follow_the_eventlog_setting() -> None:
    entries = beat_schedule({"RELAY_INTERVAL_SECONDS": 0.25, "OUTBOX_PURGE_INTERVAL_SECONDS": 30.0})
    assert entries["relay-outbox"] == {
        "task": "eventlog.relay_outbox",
        "schedule": 0.25,
        "options": {"expires": 1.0},
    }
    assert entries["purge-outbox"]["schedule"] == 30.0
    assert beat_schedule({})["relay-outbox"]["schedule"] == 0.5  # the default; the checks judge the rest


def check_ids() -> list[str]:
    from django.core.checks import run_checks

    return [message.id for message in run_checks() if message.id]


def test_an_outbox_database_missing_from_databases_is_reported(settings: Any) -> None:
    settings.EVENTLOG = {**settings.EVENTLOG, "OUTBOX_DATABASE": "orders"}
    assert "eventlog.E004" in check_ids()


def test_an_outbox_database_elsewhere_than_eventlogs_models_go_is_reported(settings: Any) -> None:
    settings.EVENTLOG = {**settings.EVENTLOG, "OUTBOX_DATABASE": "mirror"}
    assert "eventlog.E004" in check_ids()  # the models still go to 'default'
    settings.DATABASE_ROUTERS = ["eventlog.routers.OutboxRouter"]
    assert "eventlog.E004" not in check_ids()


def test_with_the_router_installed_a_broken_eventlog_is_still_reported_by_its_id(settings: Any) -> None:
    settings.DATABASE_ROUTERS = ["eventlog.routers.OutboxRouter"]
    settings.EVENTLOG = {**settings.EVENTLOG, "RELAY_BATCH": 5}
    assert "eventlog.E001" in check_ids()
