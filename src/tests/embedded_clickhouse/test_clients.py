"""The embedded server as clickhouse-connect sees it: the same client, errors and guarantees as with
a ClickHouse server, for many clients at once, and across a SIGKILL of the server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from eventlog.clickhouse.event_log import translated_errors
from eventlog.embedded_clickhouse import ALLOCATOR, ENGINE_OPTIONS
from eventlog.embedded_clickhouse.errors import CODES
from eventlog.errors import ClickHouseRejected, ClickHouseUnavailable
from tests.processes import SRC, clickhouse_url, kill, process_env, start_clickhouse
from tests.settings import free_port


def client(database: str = "default", **options: object) -> Client:
    return clickhouse_connect.get_client(dsn=clickhouse_url(database), **options)


@pytest.fixture
def table() -> str:
    admin = client()
    admin.command("CREATE DATABASE IF NOT EXISTS clients")
    admin.command("DROP TABLE IF EXISTS clients.t")
    admin.command("CREATE TABLE clients.t (id UUID, at DateTime64(6, 'UTC'), note String) "
                  f"ENGINE = MergeTree ORDER BY id {DEDUPLICATED}")  # fmt: skip
    return "clients.t"


DEDUPLICATED = "SETTINGS non_replicated_deduplication_window = 100"


def rows(n: int) -> list[list[object]]:
    return [[uuid.uuid4(), datetime(2026, 12, 1, 8, 0, 0, 123456, tzinfo=UTC), f"n{i}"] for i in range(n)]


def test_clickhouse_connect_sees_a_server_with_its_version_and_timezone() -> None:
    connected = client()
    assert connected.server_version.startswith("26.")
    assert str(connected.server_tz) == "UTC"
    assert connected.command("SELECT version()") == connected.server_version


def test_query_parameters_over_4_kib_reach_the_engine_as_a_form() -> None:
    """clickhouse-connect moves the query and its parameters into a multipart form past 4 KiB."""
    values = [f"value-{i}-" + "é" * 40 for i in range(100)]
    query = "SELECT length({values:Array(String)}), {values:Array(String)}[100], {one:String}"
    assert client().query(query, parameters={"values": values, "one": "x"}).result_rows == [
        (100, values[-1], "x")
    ]
    assert client(form_encode_query_params=True).query(
        "SELECT {n:UInt8} + 1", parameters={"n": 1}
    ).result_rows == [(2,)]


@pytest.mark.parametrize("compress", [True, "lz4", "zstd", "gzip", False])
def test_native_inserts_and_reads_round_trip_with_each_compression(table: str, compress: object) -> None:
    connected = client(compress=compress)
    written = rows(1_000)
    connected.insert(table, written, column_names=["id", "at", "note"])
    read = connected.query(f"SELECT id, at, note FROM {table} ORDER BY note").result_rows
    assert sorted((r[0], r[2]) for r in read) == sorted((r[0], r[2]) for r in written)
    assert {r[1] for r in read} == {datetime(2026, 12, 1, 8, 0, 0, 123456)}


@pytest.mark.parametrize("compress", [True, "zstd", "gzip", False])
def test_an_insert_of_many_blocks_lands_whole(table: str, compress: object) -> None:
    """clickhouse-connect sends a large insert as several Native blocks, each compressed alone."""
    connected = client(compress=compress)
    written = rows(150_000)
    connected.insert(table, written, column_names=["id", "at", "note"])
    assert connected.command(f"SELECT count(), uniqExact(id) FROM {table}") == ["150000", "150000"]


def test_a_repeated_insert_with_its_token_lands_once(table: str) -> None:
    connected = client()
    batch = rows(10)
    for _ in range(3):
        connected.insert(table, batch, column_names=["id", "at", "note"],
                         settings={"async_insert": 0, "insert_deduplication_token": "batch-1"})  # fmt: skip
    assert connected.command(f"SELECT count() FROM {table}") == 10


def test_engine_errors_reach_the_client_with_their_codes_and_are_classified(table: str) -> None:
    connected = client()
    with pytest.raises(DatabaseError) as missing:
        connected.query("SELECT * FROM clients.nowhere")
    assert missing.value.code == 60
    with pytest.raises(ClickHouseUnavailable), translated_errors():
        connected.query("SELECT * FROM clients.nowhere")
    with pytest.raises(ClickHouseRejected) as bad_rows, translated_errors():
        connected.raw_insert(
            table, ["id", "at", "note"], b'"not-a-uuid","2026-12-01 00:00:00","x"\n', fmt="CSV"
        )
    assert bad_rows.value.code in (6, 27, 376)
    assert connected.command(f"SELECT count() FROM {table}") == 0


def test_a_wrong_password_is_an_authentication_failure_for_the_client() -> None:
    url = clickhouse_url("default").replace("eventlog:", "eventlog:x", 1)
    with pytest.raises(ClickHouseUnavailable) as refused, translated_errors():
        clickhouse_connect.get_client(dsn=url)
    assert refused.value.code == 516


def test_a_clients_session_keeps_its_settings_and_temporary_tables_apart_from_another() -> None:
    first, second = client(), client()
    first.command("SET max_threads = 1")
    first.command("CREATE TEMPORARY TABLE scratch (x UInt8)")
    first.command("INSERT INTO scratch VALUES (9)")
    assert first.query("SELECT getSetting('max_threads'), (SELECT x FROM scratch)").result_rows == [(1, 9)]
    assert second.command("SELECT getSetting('max_threads') = 1") == 0
    with pytest.raises(DatabaseError):
        second.query("SELECT x FROM scratch")


def test_many_clients_insert_and_read_at_once_each_seeing_its_own_result(table: str) -> None:
    failures: list[BaseException] = []

    def work(n: int) -> None:
        try:
            connected = client()
            for round_ in range(5):
                connected.insert(table, rows(200), column_names=["id", "at", "note"],
                                 settings={"insert_deduplication_token": f"c{n}-{round_}"})  # fmt: skip
                assert connected.command("SELECT {n:UInt32}", parameters={"n": n}) == n
        except BaseException as exc:  # reported by the test thread
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert client().command(f"SELECT count() FROM {table}") == 8 * 5 * 200


def test_the_engine_runs_one_merge_at_a_time_and_returns_freed_memory_at_once() -> None:
    """The server process's memory (docs/benchmarks.md): a server's pool of merges and jemalloc's 5 s
    of kept pages are a server's defaults, not the embedded engine's."""
    names = "('background_pool_size', 'background_merges_mutations_concurrency_ratio')"
    query = f"SELECT name, value FROM system.server_settings WHERE name IN {names}"
    server_settings = dict(client().query(query).result_rows)
    assert server_settings == {name: str(value) for name, value in ENGINE_OPTIONS.items()}
    # The allocator reads its setting when chDB is loaded: the engine's module sets it before that.
    loaded = subprocess.run(
        [sys.executable, "-c", "import os, sys, eventlog.embedded_clickhouse.engine;"
         "print(os.environ['JE_MALLOC_CONF'], 'chdb' in sys.modules)"],
        env={key: value for key, value in os.environ.items() if key != "JE_MALLOC_CONF"},
        cwd=SRC, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert loaded.stdout.split() == [ALLOCATOR, "True"]


def test_data_and_the_deduplication_window_survive_a_sigkill_of_the_server(tmp_path: Path) -> None:
    base = clickhouse_url("default").rsplit(":", 1)[0] + f":{free_port()}/default"
    env = {**process_env("default"), "CLICKHOUSE_URL": base}
    batch = rows(100)

    def insert() -> None:
        connected = clickhouse_connect.get_client(dsn=base)
        connected.command("CREATE TABLE IF NOT EXISTS t (id UUID, at DateTime64(6, 'UTC'), note String) "
                          f"ENGINE = MergeTree ORDER BY id {DEDUPLICATED}")  # fmt: skip
        connected.insert("t", batch, column_names=["id", "at", "note"],
                         settings={"async_insert": 0, "insert_deduplication_token": "killed"})  # fmt: skip

    server = start_clickhouse(env, tmp_path / "clickhouse")
    insert()
    kill(server)  # SIGKILL: no shutdown of the engine
    server = start_clickhouse(env, tmp_path / "clickhouse")
    try:
        insert()  # the batch acknowledged before the kill, sent again
        assert clickhouse_connect.get_client(dsn=base).command("SELECT count() FROM t") == 100
    finally:
        kill(server)


def test_sigterm_lets_the_query_in_flight_finish_then_stops_the_server(tmp_path: Path) -> None:
    base = clickhouse_url("default").rsplit(":", 1)[0] + f":{free_port()}/default"
    server = start_clickhouse({**process_env("default"), "CLICKHOUSE_URL": base}, tmp_path / "clickhouse")
    answers: list[object] = []
    slow = threading.Thread(target=lambda: answers.append(clickhouse_connect.get_client(dsn=base).command(
        "SELECT sleep(1.5)")))  # fmt: skip
    try:
        slow.start()
        time.sleep(0.8)  # connected and sleeping
        server.send_signal(signal.SIGTERM)
        slow.join()
        assert answers == [0]
        assert server.wait(timeout=30) == 0
    finally:
        kill(server)


def test_the_servers_own_error_codes_are_the_engines() -> None:
    names = (
        client()
        .query(
            "SELECT number, errorCodeToName(number) FROM numbers(2000) WHERE number IN {codes:Array(UInt32)}",
            parameters={"codes": sorted(CODES.values())},
        )
        .result_rows
    )
    assert {name: code for code, name in names} == CODES


REUSED = (
    "CREATE TABLE reused (at DateTime64(6, 'UTC'), kind String, id UUID) ENGINE = MergeTree "
    "PARTITION BY toYYYYMM(at) ORDER BY (at, kind)"
)
REUSED_ROWS = (
    "INSERT INTO reused SELECT toDateTime64('2026-11-20', 6, 'UTC') + number / 10, 'a', "
    "generateUUIDv4(number) FROM numbers({rows})"
)
# A page's query, as the read side asks it (eventlog/reading/events.py): a window and a keyset cursor.
REUSED_PAGE = (
    "SELECT toString(id), kind, at FROM reused WHERE at >= toDateTime64('2026-11-19', 6, 'UTC')"
    " AND at < toDateTime64('2026-11-21', 6, 'UTC') AND (at, kind, id) < (toDateTime64('2026-11-20 05:00:00',"
    " 6, 'UTC'), 'a', toUUID('00000000-0000-0000-0000-000000000000')) ORDER BY at DESC, kind DESC, id DESC"
    " LIMIT 1001"
)


def test_a_part_name_used_again_after_a_table_is_emptied_and_attached_does_not_abort_the_engine(
    tmp_path: Path,
) -> None:
    """The engine's query condition cache once aborted the server mid-suite (engine.py's
    SERVER_DEFAULTS says why); on a server of its own, since the abort takes the server with it."""
    base = clickhouse_url("default").rsplit(":", 1)[0] + f":{free_port()}/default"
    server = start_clickhouse({**process_env("default"), "CLICKHOUSE_URL": base}, tmp_path / "clickhouse")
    connected = clickhouse_connect.get_client(dsn=base, send_receive_timeout=10)
    connected.command(REUSED)
    try:
        for round_ in range(12):  # parts of 25 marks and of 3, their names used again after an ATTACH
            connected.command(REUSED_ROWS.format(rows=200_000 if round_ % 2 == 0 else 20_000))
            assert len(connected.query(REUSED_PAGE).result_rows) == 1001
            connected.command("TRUNCATE TABLE reused")
            if round_ % 3 == 0:
                connected.command("DETACH TABLE reused")
                connected.command("ATTACH TABLE reused")  # empty: its parts are numbered from 1 again
    finally:
        kill(server)
