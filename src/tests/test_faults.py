"""Exactly once through real faults: killed relay processes, competing processes, restarted services.

Every test here runs real OS processes (Celery workers, relay commands) against the test database,
each test on a ClickHouse database of its own, and checks the result by reading ClickHouse back.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction
from prometheus_client.parser import text_string_to_metric_families

from eventlog.clickhouse.event_log import EventLogWriter
from eventlog.models import RelayBatch
from eventlog.monitoring.health import readiness
from eventlog.monitoring.stats import outbox_stats
from eventlog.outbox.events import NewEvent, emit_events
from eventlog.runtime import redis_client
from tests.conftest import wait_until
from tests.faults.crash_relay import CRASHED
from tests.processes import (
    SRC,
    clickhouse_event_ids,
    clickhouse_url,
    kill,
    manage,
    new_database,
    process_env,
    reset_broker,
    running,
    start_clickhouse,
    start_worker,
)
from tests.settings import free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]


def drained(total: int) -> Any:
    return lambda: outbox_stats()["processed"] == total


def emit(n: int, chunk: int = 5_000) -> int:
    for start in range(0, n, chunk):
        emit_events([NewEvent("order_paid", {"i": i}) for i in range(start, min(n, start + chunk))])
    return n


def assert_exactly_once(ids: list[str], acknowledged: int) -> None:
    repeats = sum(count - 1 for count in Counter(ids).values())
    assert (len(ids), len(set(ids)), repeats) == (acknowledged, acknowledged, 0)


@pytest.mark.parametrize("step", ["after_claim", "during_insert", "after_insert", "during_settle_commit"])
def test_a_relay_killed_at_each_step_and_restarted_delivers_every_event_once(
    step: str, tmp_path: Path
) -> None:
    database = new_database()
    env = process_env(database)
    total = emit(25_000)
    crashed = subprocess.run(
        [sys.executable, "-m", "tests.faults.crash_relay", step, "10000"],
        cwd=SRC,
        env=env,
        capture_output=True,
    )
    assert crashed.returncode == CRASHED, crashed.stderr.decode()[-2000:]
    assert list(RelayBatch.objects.values_list("state", flat=True)) == ["claimed"]
    landed = len(clickhouse_event_ids(database))
    expected = {"after_claim": {0}, "during_insert": {0, 10_000}, "after_insert": {10_000}}
    assert landed in expected.get(step, {10_000})

    manage(env, "relay_outbox", "--once", "--batch-size", "10000")
    assert_exactly_once(clickhouse_event_ids(database), total)
    assert outbox_stats()["processed"] == total


def test_kill_loop_while_producing_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """A producer keeps committing events while a real worker is SIGKILLed at random moments."""
    database = new_database()
    env = process_env(database, RELAY_BATCH_SIZE="2000")
    reset_broker()
    acknowledged = 0
    stop = threading.Event()

    def produce() -> None:
        nonlocal acknowledged
        try:
            while not stop.is_set():
                with transaction.atomic():
                    emit_events([NewEvent("order_paid") for _ in range(100)])
                acknowledged += 100  # counted only once committed
                time.sleep(0.02)
        finally:
            connection.close()

    producer = threading.Thread(target=produce)
    producer.start()
    rng, kills = random.Random(2026), 0
    try:
        for round_ in range(22):
            worker = start_worker(env, tmp_path / f"beat-{round_}")
            # From mid-start-up (about 1 s here) to mid-batch: a batch of 2,000 is claimed and
            # delivered within a second of the worker's first tick.
            time.sleep(rng.uniform(0.8, 3.0))
            kill(worker)
            kills += 1
    finally:
        stop.set()
        producer.join()
    with running(start_worker(env, tmp_path / "beat-final")):
        wait_until(drained(acknowledged))
    ids = clickhouse_event_ids(database)
    repeats = sum(count - 1 for count in Counter(ids).values())
    print(f"\nkill loop: {acknowledged} events acknowledged, {kills} kills, {len(ids)} in ClickHouse,"
          f" {repeats} duplicates, {acknowledged - len(set(ids))} missing")  # fmt: skip
    assert kills >= 20
    assert_exactly_once(ids, acknowledged)


def test_concurrent_relay_processes_deliver_each_event_to_exactly_one_of_them() -> None:
    databases = [new_database() for _ in range(3)]  # one each: who delivered what shows
    relays = [
        subprocess.Popen(
            [sys.executable, "manage.py", "relay_outbox", "--batch-size", "500"],
            cwd=SRC,
            env=process_env(database, RELAY_INTERVAL_SECONDS="0.05"),
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        for database in databases
    ]
    try:
        time.sleep(3)  # all three started and polling
        total = 0
        for _ in range(40):
            total += emit(500)
            time.sleep(0.05)
        wait_until(drained(total))
    finally:
        for relay in relays:
            kill(relay)
    per_process = [clickhouse_event_ids(database) for database in databases]
    assert_exactly_once([i for ids in per_process for i in ids], total)
    assert sum(1 for ids in per_process if ids) >= 2, [len(ids) for ids in per_process]


def test_the_clickhouse_server_killed_under_load_and_restarted_loses_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    """The embedded server SIGKILLed three times while the worker inserts, restarted on its data."""
    base = clickhouse_url("faults").rsplit(":", 1)[0] + f":{free_port()}/faults"
    metrics_port = free_port()
    env = process_env("faults", CLICKHOUSE_URL=base, RELAY_BATCH_SIZE="2000",
                      WORKER_METRICS_PORT=str(metrics_port))  # fmt: skip
    data = tmp_path / "clickhouse"
    server = start_clickhouse(env, data)
    reset_broker()
    total = emit(60_000)
    try:
        with running(start_worker(env, tmp_path / "beat")):
            for round_ in range(1, 4):
                wait_until(lambda: outbox_stats()["processed"] >= round_ * 10_000)  # noqa: B023
                kill(server)  # in the middle of the relay's inserts
                failed = outage_seen(f"http://127.0.0.1:{metrics_port}/metrics")
                wait_until(failed)  # an outage to the relay: batches stay claimed, retried with backoff
                assert outbox_stats()["pending"] > 0
                down = readiness(redis_client(), EventLogWriter(base), max_lag_seconds=3600)
                assert any(reason.startswith("ClickHouse: ") for reason in down.reasons), down.reasons
                server = start_clickhouse(env, data)
            wait_until(drained(total))
        assert_exactly_once(clickhouse_event_ids("faults", base), total)
    finally:
        kill(server)


def outage_seen(metrics_url: str) -> Any:
    """True once the worker has counted another batch that ClickHouse's outage left undelivered."""
    seen = unavailable_batches(metrics_url)
    return lambda: unavailable_batches(metrics_url) > seen


def unavailable_batches(metrics_url: str) -> float:
    with urllib.request.urlopen(metrics_url, timeout=10) as response:  # noqa: S310 (loopback)
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "eventlog_relay_batches_total"
                and sample.labels.get("outcome") == "unavailable"
            ):
                return float(sample.value)
    return 0.0


def restart_postgres() -> None:
    version = subprocess.run(
        ["ls", "/etc/postgresql"], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"], check=True)
    connection.close()  # ours was cut too


def restart_redis() -> None:
    subprocess.run(["redis-cli", "-p", "6379", "shutdown", "nosave"], check=False, capture_output=True)
    subprocess.run(
        ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379", "--save", "",
         "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log"],
        check=True,
    )  # fmt: skip
    for _ in range(50):
        if subprocess.run(["redis-cli", "-p", "6379", "ping"], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)


def emit_when_up(n: int) -> int:
    for _ in range(100):
        try:
            return emit(n)
        except Exception:  # PostgreSQL still starting
            connection.close()
            time.sleep(0.2)
    raise AssertionError("PostgreSQL did not come back")


@pytest.mark.skipif(
    shutil.which("pg_ctlcluster") is None or shutil.which("redis-server") is None,
    reason="restarts the machine's own PostgreSQL and Redis (not possible from inside a container)",
)
def test_the_worker_recovers_by_itself_from_postgres_and_redis_restarts(tmp_path: Path) -> None:
    database = new_database()
    reset_broker()
    with running(start_worker(process_env(database), tmp_path / "beat")):
        total = emit(1_000)
        wait_until(drained(total))
        restart_postgres()
        total += emit_when_up(1_000)
        wait_until(drained(total))
        restart_redis()
        total += emit(1_000)
        wait_until(drained(total))
    assert_exactly_once(clickhouse_event_ids(database), total)
