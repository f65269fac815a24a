"""The engine's sessions and queries as the embedded server keeps them, over raw HTTP."""

from __future__ import annotations

import threading
import time

import pytest

from tests.embedded_clickhouse.raw_http import request, sql


def session(session_id: str, query: str, **params: str) -> tuple[int, dict[str, str], bytes]:
    return request({"query": query, "session_id": session_id, **params}, method="POST")


def test_set_and_temporary_tables_live_in_their_session_only() -> None:
    assert session("s-a", "SET max_threads = 1")[0] == 200
    assert session("s-a", "CREATE TEMPORARY TABLE scratch (x UInt8)")[0] == 200
    assert session("s-a", "INSERT INTO scratch VALUES (5)")[0] == 200
    assert session("s-a", "SELECT getSetting('max_threads'), (SELECT x FROM scratch)")[2] == b"1\t5\n"
    assert session("s-a", "SELECT getSetting('max_threads')", max_threads="3")[2] == b"3\n"
    assert (
        session("s-a", "SELECT getSetting('max_threads')")[2] == b"1\n"
    )  # the URL's setting was for one query
    other = session("s-b", "SELECT x FROM scratch")
    assert other[1]["x-clickhouse-exception-code"] == "60"
    assert sql("SELECT getSetting('max_threads') = 1") == b"0\n"


def test_an_unknown_session_with_session_check_is_not_found() -> None:
    status, headers, _ = session("never-opened", "SELECT 1", session_check="1")
    assert (status, headers["x-clickhouse-exception-code"]) == (500, "372")


def test_a_session_serves_one_request_at_a_time() -> None:
    slow = threading.Thread(target=session, args=("s-busy", "SELECT sleep(2)"))
    slow.start()
    time.sleep(0.3)  # the slow query has the session
    try:
        for _ in range(20):
            _, headers, _ = session("s-busy", "SELECT 1")
            if headers.get("x-clickhouse-exception-code") == "373":  # SESSION_IS_LOCKED
                break
        else:
            pytest.fail("a second request of a busy session was served")
    finally:
        slow.join()


def test_a_query_id_already_running_is_refused() -> None:
    slow = threading.Thread(target=request, args=({"query": "SELECT sleep(2)", "query_id": "same"},),
                            kwargs={"method": "POST"})  # fmt: skip
    slow.start()
    time.sleep(0.3)  # the slow query is running
    try:
        codes = {request({"query": "SELECT 1", "query_id": "same"})[1].get("x-clickhouse-exception-code")
                 for _ in range(20)}  # fmt: skip
        assert "216" in codes  # QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING
    finally:
        slow.join()


def test_inserts_are_synchronous_by_default_with_or_without_a_session() -> None:
    assert sql("SELECT getSetting('async_insert')") == b"false\n"
    assert session("s-async", "SELECT getSetting('async_insert')")[2] == b"false\n"


def test_a_failed_statement_in_a_session_leaves_its_settings_behind_it() -> None:
    failed = session("s-leak", "SELECT 1", database="no_such_database", insert_deduplication_token="t")
    assert failed[1]["x-clickhouse-exception-code"] == "81"
    after = session("s-leak", "SELECT getSetting('insert_deduplication_token'), currentDatabase()")
    assert after[2] == b"\tdefault\n"


def test_close_session_ends_the_session_after_the_request() -> None:
    assert session("s-close", "CREATE TEMPORARY TABLE gone (x UInt8)", close_session="1")[0] == 200
    assert session("s-close", "SELECT 1", session_check="1")[1]["x-clickhouse-exception-code"] == "372"


def test_a_session_whose_settings_cannot_be_put_back_keeps_its_answer_and_ends() -> None:
    sql("CREATE DATABASE IF NOT EXISTS vanishing")
    assert session("s-vanish", "USE vanishing")[0] == 200
    sql("DROP DATABASE vanishing")  # from another session: this one's database is gone
    answer = session("s-vanish", "SELECT 7", database="default", max_threads="1")
    assert answer[::2] == (200, b"7\n")  # the statement's own outcome stands
    assert session("s-vanish", "SELECT 1", session_check="1")[1]["x-clickhouse-exception-code"] == "372"
