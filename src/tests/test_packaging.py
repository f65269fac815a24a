"""The wheel, installed as another team installs it: built from this checkout, into a fresh
virtualenv outside the repository, inside a Django project that is not this one (tests/host_project:
its own settings, model and Celery app). Its embedded ClickHouse server and its own worker run from
that virtualenv, on a PostgreSQL database and a Redis database of their own."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import clickhouse_connect
import psycopg
import pytest
from django.conf import settings
from redis import Redis

from core.processes import clickhouse_answers
from tests.processes import kill
from tests.settings import redis_database
from tests.test_processes import free_port

ROOT = Path(__file__).resolve().parents[2]
HOST_PROJECT = Path(__file__).resolve().parent / "host_project"
HOST_REDIS_DB = 12  # tests use 14 and 15, the benchmark 13
HOST_DATABASE = "eventlog_host_project"  # dropped first, so an interrupted run leaves no other

# A fresh virtualenv, two installs (the second brings chDB) and a relay: minutes on a cold cache.
pytestmark = pytest.mark.timeout(1800)


@dataclass(frozen=True)
class Host:
    directory: Path
    python: Path
    env: dict[str, str]
    clickhouse_url: str
    wheel: Path

    def run(self, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.python), *args], cwd=self.directory, env={**self.env, **env},
            capture_output=True, text=True, check=check, timeout=300,
        )  # fmt: skip

    def start(self, *args: str, log: str) -> subprocess.Popen[bytes]:
        with (self.directory / log).open("wb") as output:
            return subprocess.Popen(
                [str(self.python), *args], cwd=self.directory, env=self.env,
                stdout=output, stderr=output, start_new_session=True,
            )  # fmt: skip


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dist), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (built,) = dist.glob("eventlog-*.whl")
    return built


@pytest.fixture(scope="module")
def host(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    """The host project in a directory of its own, with eventlog installed from the wheel (at the
    versions this repository locks, without extras) into a new virtualenv; a new PostgreSQL database."""
    base = tmp_path_factory.mktemp("host")
    directory = base / "project"
    shutil.copytree(HOST_PROJECT, directory)
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    _pip_install(python, str(wheel))
    db = settings.DATABASES["default"]
    credentials = f"{quote(db['USER'], safe='')}:{quote(db['PASSWORD'], safe='')}"
    server = f"postgresql://{credentials}@{db['HOST']}:{db['PORT']}"
    redis_url = redis_database(settings.CONFIG.redis_url, HOST_REDIS_DB)
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(base),
        "SHOP_SECRET_KEY": secrets.token_urlsafe(50),
        "SHOP_DATABASE_URL": f"{server}/{HOST_DATABASE}",
        "SHOP_CLICKHOUSE_URL": f"http://shop:{secrets.token_urlsafe(12)}@127.0.0.1:{free_port()}/default",
        "SHOP_CLICKHOUSE_DATA": str(base / "clickhouse"),
        "SHOP_REDIS_URL": redis_url,
    }
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{HOST_DATABASE}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{HOST_DATABASE}"')
    Redis.from_url(redis_url).flushdb()
    try:
        yield Host(directory, python, env, env["SHOP_CLICKHOUSE_URL"], wheel)
    finally:
        Redis.from_url(redis_url).flushdb()
        with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{HOST_DATABASE}" WITH (FORCE)')


def _pip_install(python: Path, requirement: str) -> None:
    subprocess.run(
        # --no-compile: the host's processes compile what they import; compiling every module of
        # every package first took a third of the install.
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
         "--constraint", str(ROOT / "requirements" / "embedded.txt"), requirement],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip


def test_the_wheel_holds_the_app_alone_with_its_migrations_templates_and_commands(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"eventlog", "eventlog-0.1.0.dist-info"}
    for expected in (
        "eventlog/py.typed",
        "eventlog/migrations/0001_initial.py",
        "eventlog/templates/eventlog/events.html",
        "eventlog/management/commands/embedded_clickhouse.py",
        "eventlog/embedded_clickhouse/server.py",
    ):
        assert expected in names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    metadata = zipfile.ZipFile(wheel).read("eventlog-0.1.0.dist-info/METADATA").decode()
    assert "Requires-Dist: django<6,>=5.2" in metadata
    assert "Provides-Extra: embedded" in metadata
    assert "Provides-Extra: sentry" in metadata


def test_a_host_project_checks_migrates_emits_in_its_transactions_and_its_worker_relays_once(
    host: Host,
) -> None:
    where = host.run("-c", "import eventlog; print(eventlog.__file__)").stdout
    assert where.startswith(str(host.python.parents[1]))  # the installed wheel, not this checkout

    # The shop's settings name an embedded server's data path, which needs the `embedded` extra.
    without_engine = host.run("manage.py", "check", check=False)
    assert without_engine.returncode == 1
    assert "eventlog.E007" in without_engine.stderr
    _pip_install(host.python, f"{host.wheel}[embedded]")

    assert "no issues" in host.run("manage.py", "check").stdout
    broken = host.run("manage.py", "check", check=False, SHOP_BROKEN_EVENTLOG="1")
    assert broken.returncode == 1
    assert "eventlog.E001" in broken.stderr
    assert "'RELAY_BATCH_SIZ'" in broken.stderr

    host.run("manage.py", "makemigrations", "orders")
    host.run("manage.py", "migrate", "--no-input")
    place = "from orders.services import place_order; place_order('{item}'{more})"
    host.run("manage.py", "shell", "--no-imports", "-c", place.format(item="teapot", more=""))
    declined = place.format(item="kettle", more=", fail_after_emit=True")
    rolled_back = host.run("manage.py", "shell", "--no-imports", "-c", declined, check=False)
    assert "payment declined" in rolled_back.stderr
    count = "from orders.models import Order; print(list(Order.objects.values_list('item', flat=True)))"
    assert host.run("manage.py", "shell", "--no-imports", "-c", count).stdout.strip() == "['teapot']"

    server = host.start("manage.py", "embedded_clickhouse", log="clickhouse.log")
    try:
        assert clickhouse_answers(host.clickhouse_url, server), (
            host.directory / "clickhouse.log"
        ).read_text()
        worker = host.start("-m", "celery", "-A", "shop", "worker", "--beat", "--concurrency=2",
                            "--loglevel=WARNING", "--schedule=beat-schedule", log="worker.log")  # fmt: skip
        try:
            rows = _relayed(host, worker)
            time.sleep(1.0)  # five more relay ticks: none of them may deliver the event again
            assert _relayed(host, worker) == rows
        finally:
            kill(worker)
    finally:
        kill(server)
    ((context, environment),) = rows
    assert '"item":"teapot"' in context.replace(" ", "")
    assert environment == "shop"


def _relayed(host: Host, worker: subprocess.Popen[bytes]) -> list[tuple[str, str]]:
    """The order events in the host's event_log, once the worker has relayed at least one."""
    client = clickhouse_connect.get_client(dsn=host.clickhouse_url, autogenerate_session_id=False)
    deadline = time.monotonic() + 120
    query = "SELECT toString(event_context), environment FROM event_log WHERE event_type = 'order.placed'"
    try:
        while time.monotonic() < deadline and worker.poll() is None:
            if client.command("EXISTS TABLE event_log") and (rows := client.query(query).result_rows):
                return [tuple(row) for row in rows]
            time.sleep(0.2)
    finally:
        client.close()
    raise AssertionError(f"nothing relayed: {(host.directory / 'worker.log').read_text()[-3000:]}")


def test_the_host_project_is_outside_the_repository(host: Host) -> None:
    assert not host.directory.is_relative_to(ROOT)
    assert "PYTHONPATH" not in host.env
    assert os.fspath(ROOT / "src") not in host.env["PATH"]
