"""The embedded server's HTTP interface, spoken to by raw HTTP requests, as curl would."""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import shutil
import subprocess
import threading
import time
import zlib
from typing import Any
from urllib.parse import urlencode, urlsplit

import lz4.frame
import pytest
from backports import zstd
from django.conf import settings

from eventlog.clickhouse import EventLogWriter


def server() -> tuple[str, int, str, str]:
    parts = urlsplit(settings.EVENTLOG.clickhouse_url)
    return parts.hostname or "", parts.port or 0, parts.username or "", parts.password or ""


def request(
    params: dict[str, str] | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    *,
    method: str | None = None,
    path: str = "/",
    auth: bool = True,
) -> tuple[int, dict[str, str], bytes]:
    host, port, user, password = server()
    connection = http.client.HTTPConnection(host, port, timeout=30)
    all_headers = dict(headers or {})
    if auth:
        all_headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    query = f"?{urlencode(params)}" if params else ""
    connection.request(method or ("POST" if body is not None else "GET"), path + query, body, all_headers)
    response = connection.getresponse()
    answer = (response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    connection.close()
    return answer


def sql(query: str, **params: str) -> bytes:
    status, _, body = request({"query": query, **params}, method="POST")
    assert status == 200, body
    return body


@pytest.fixture
def table() -> str:
    sql("CREATE DATABASE IF NOT EXISTS protocol")
    sql("DROP TABLE IF EXISTS protocol.t")
    sql("CREATE TABLE protocol.t (a UInt32, b String) ENGINE = MergeTree ORDER BY a "
        "SETTINGS non_replicated_deduplication_window = 100")  # fmt: skip
    return "protocol.t"


def test_ping_and_the_root_answer_ok_without_credentials() -> None:
    assert request(path="/ping", auth=False)[::2] == (200, b"Ok.\n")
    assert request(auth=False)[::2] == (200, b"Ok.\n")


def test_a_query_in_the_url_answers_tab_separated_with_a_servers_headers() -> None:
    status, headers, body = request({"query": "SELECT 1, 'a b' FORMAT TabSeparated", "query_id": "q-1"})
    assert (status, body) == (200, b"1\ta b\n")
    assert headers["x-clickhouse-query-id"] == "q-1"
    assert headers["x-clickhouse-format"] == "TabSeparated"
    assert headers["x-clickhouse-timezone"] in ("UTC", "Etc/UTC")
    summary = json.loads(headers["x-clickhouse-summary"])
    assert summary["read_rows"] == "1"
    assert set(summary) >= {"read_rows", "read_bytes", "written_rows", "written_bytes", "elapsed_ns"}


def test_the_query_may_be_in_the_body_or_split_between_url_and_body() -> None:
    assert request(body=b"SELECT 2")[2] == b"2\n"
    assert request({"query": "SELECT"}, b"3 AS x FORMAT JSONEachRow")[2] == b'{"x":3}\n'
    assert request({"query": "SELECT 1", "default_format": "CSV"})[2] == b"1\n"


def test_query_parameters_are_bound_by_the_engine() -> None:
    params = {"query": "SELECT {name:String}, {n:UInt8} + 1 FORMAT CSV", "param_name": "o'k", "param_n": "41"}
    assert request(params)[2] == b'"o\'k",42\n'


@pytest.mark.parametrize(
    ("credentials", "status"),
    [({}, 403), ({"X-ClickHouse-User": "eventlog", "X-ClickHouse-Key": "wrong"}, 403)],
)
def test_a_missing_or_wrong_password_is_refused_as_a_server_refuses_it(
    credentials: dict[str, str], status: int
) -> None:
    code, headers, body = request({"query": "SELECT 1"}, headers=credentials, auth=False)
    assert (code, headers["x-clickhouse-exception-code"]) == (status, "516")
    assert body.startswith(b"Code: 516. DB::Exception: ")
    assert b"Authentication failed" in body


def test_the_clickhouse_headers_and_url_credentials_are_accepted() -> None:
    _, _, user, password = server()
    assert request({"query": "SELECT 1"}, headers={"X-ClickHouse-User": user, "X-ClickHouse-Key": password},
                   auth=False)[::2] == (200, b"1\n")  # fmt: skip
    assert request({"query": "SELECT 1", "user": user, "password": password}, auth=False)[::2] == (
        200,
        b"1\n",
    )


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [("SELECT * FROM nowhere", 404, "60"), ("SELEKT 1", 400, "62"), ("SELECT 1", 404, "115")],
)
def test_an_engine_error_keeps_its_code_text_and_a_servers_status(query: str, status: int, code: str) -> None:
    params = {"query": query, **({"no_such_setting": "1"} if code == "115" else {})}
    answer, headers, body = request(params, method="POST")
    assert (answer, headers["x-clickhouse-exception-code"]) == (status, code)
    assert body.startswith(f"Code: {code}. DB::Exception: ".encode())


def test_get_only_reads_as_on_a_server(table: str) -> None:
    status, headers, _ = request({"query": f"INSERT INTO {table} VALUES (1, 'x')"}, method="GET")
    assert (status, headers["x-clickhouse-exception-code"]) == (500, "164")  # READONLY
    assert sql(f"SELECT count() FROM {table}") == b"0\n"


def test_readonly_and_result_limits_apply_to_that_request_only(table: str) -> None:
    _, headers, _ = request({"query": f"INSERT INTO {table} VALUES (1, 'x')", "readonly": "1"}, method="POST")
    assert headers["x-clickhouse-exception-code"] == "164"
    limited = request({"query": "SELECT number FROM numbers(10)", "max_result_rows": "5",
                       "result_overflow_mode": "throw"}, method="POST")  # fmt: skip
    assert limited[1]["x-clickhouse-exception-code"] == "396"  # TOO_MANY_ROWS_OR_BYTES
    assert sql(f"INSERT INTO {table} VALUES (1, 'x')") == b""


def test_max_execution_time_stops_a_long_query() -> None:
    _, headers, body = request(
        {"query": "SELECT sleepEachRow(0.5) FROM numbers(10)", "max_execution_time": "1",
         "max_block_size": "1"}, method="POST"
    )  # fmt: skip
    assert headers["x-clickhouse-exception-code"] == "159", body  # TIMEOUT_EXCEEDED


@pytest.mark.parametrize(
    ("fmt", "rows"),
    [
        ("CSV", b'1,"a"\n2,"b"\n'),
        ("TabSeparated", b"1\ta\n2\tb\n"),
        ("JSONEachRow", b'{"a":1,"b":"a"}\n{"a":2,"b":"b"}\n'),
        ("RowBinary", b"\x01\x00\x00\x00\x01a\x02\x00\x00\x00\x01b"),
    ],
)
def test_insert_data_in_the_body_in_the_formats_the_engine_reads(table: str, fmt: str, rows: bytes) -> None:
    sql("SELECT 1")
    status, headers, body = request({"query": f"INSERT INTO {table} FORMAT {fmt}"}, rows)
    assert status == 200, body
    assert json.loads(headers["x-clickhouse-summary"])["written_rows"] == "2"
    assert sql(f"SELECT a, b FROM {table} ORDER BY a FORMAT CSV") == b'1,"a"\n2,"b"\n'


def test_an_insert_statement_and_its_rows_may_share_the_body(table: str) -> None:
    assert request(body=f'INSERT INTO {table} FORMAT CSV\n7,"x"\n'.encode())[0] == 200
    assert sql(f"SELECT a, b FROM {table} FORMAT CSV") == b'7,"x"\n'


def test_insert_deduplication_token_drops_a_repeated_insert(table: str) -> None:
    for _ in range(2):
        request({"query": f"INSERT INTO {table} FORMAT CSV", "insert_deduplication_token": "t-1",
                 "async_insert": "0"}, b"1,a\n")  # fmt: skip
    assert sql(f"SELECT count() FROM {table}") == b"1\n"


def test_a_bad_row_fails_the_whole_insert_and_stores_nothing(table: str) -> None:
    status, headers, _ = request({"query": f"INSERT INTO {table} FORMAT CSV"}, b"1,a\nnot-a-number,b\n")
    assert (status, headers["x-clickhouse-exception-code"]) == (400, "27")
    assert sql(f"SELECT count() FROM {table}") == b"0\n"


ENCODERS: dict[str, Any] = {"gzip": gzip.compress, "deflate": zlib.compress, "zstd": zstd.compress,
                            "lz4": lz4.frame.compress}  # fmt: skip
DECODERS: dict[str, Any] = {"gzip": gzip.decompress, "deflate": zlib.decompress, "zstd": zstd.decompress,
                            "lz4": lz4.frame.decompress}  # fmt: skip


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
def test_compressed_request_bodies_are_read_and_responses_compressed_on_request(
    table: str, encoding: str
) -> None:
    rows = ENCODERS[encoding](b"1,a\n2,b\n")
    status, _, body = request(
        {"query": f"INSERT INTO {table} FORMAT CSV"}, rows, {"Content-Encoding": encoding}
    )
    assert status == 200, body
    status, headers, body = request({"query": f"SELECT count() FROM {table}", "enable_http_compression": "1"},
                                    headers={"Accept-Encoding": f"{encoding}, identity"})  # fmt: skip
    assert headers["content-encoding"] == encoding
    assert DECODERS[encoding](body) == b"2\n"
    plain = request({"query": "SELECT 1"}, headers={"Accept-Encoding": encoding})[1]
    assert "content-encoding" not in plain  # a server compresses only with enable_http_compression=1


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
def test_a_body_of_many_compressed_frames_is_read_to_its_last_frame(table: str, encoding: str) -> None:
    """clickhouse-connect compresses an insert block by block: one frame (or stream) each."""
    frames = b"".join(ENCODERS[encoding](f"{i},x\n".encode() * 1000) for i in range(5))
    status, _, body = request(
        {"query": f"INSERT INTO {table} FORMAT CSV"}, frames, {"Content-Encoding": encoding}
    )
    assert status == 200, body
    assert sql(f"SELECT count() FROM {table}") == b"5000\n"


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
@pytest.mark.parametrize("damage", ["truncated", "padded"])
def test_a_truncated_or_padded_compressed_body_is_refused_and_stores_nothing(
    table: str, encoding: str, damage: str
) -> None:
    whole = ENCODERS[encoding](b"1,a\n" * 1000)
    body = whole[:-5] if damage == "truncated" else whole + b"junk"
    status, headers, _ = request(
        {"query": f"INSERT INTO {table} FORMAT CSV"}, body, {"Content-Encoding": encoding}
    )
    assert (status, headers["x-clickhouse-exception-code"]) == (400, "271")  # CANNOT_DECOMPRESS
    assert sql(f"SELECT count() FROM {table}") == b"0\n"


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


@pytest.mark.parametrize(
    ("params", "body", "headers", "status"),
    [
        ({"query": "SELECT 1", "compress": "1"}, None, {}, 400),
        ({"query": "SELECT 1", "decompress": "1"}, None, {}, 400),
        ({"query": "INSERT INTO protocol.t FORMAT CSV"}, b"\x00garbage", {"Content-Encoding": "zstd"}, 400),
        ({"query": "INSERT INTO protocol.t FORMAT CSV"}, b"1,a\n", {"Content-Encoding": "br"}, 400),
        ({"query": "SELECT 1", "bad name": "1"}, None, {}, 400),
        ({"query": "SELECT 1", "session_id": "s-r", "readonly": "1"}, None, {}, 400),
        ({"query": "SELECT 1", "session_timeout": "forever", "session_id": "s-t"}, None, {}, 400),
        ({}, b"", {}, 200),
        ({"query": " "}, None, {}, 400),
    ],
)
def test_a_request_the_server_cannot_serve_is_a_clear_4xx_and_changes_nothing(
    table: str, params: dict[str, str], body: bytes | None, headers: dict[str, str], status: int
) -> None:
    answer, answer_headers, text = request(params, body, headers, method="POST")
    assert answer == status, text
    if status != 200:
        assert text.startswith(b"Code: ")
        assert "x-clickhouse-exception-code" in answer_headers
    assert sql(f"SELECT count() FROM {table}") == b"0\n"


def test_unknown_paths_and_methods_are_refused() -> None:
    assert request(path="/play")[0] == 404
    assert request({"query": "SELECT 1"}, method="PUT")[0] == 405


def test_malformed_http_bodies_are_refused_and_the_server_keeps_serving() -> None:
    host, port, user, password = server()
    auth = b"Authorization: Basic " + base64.b64encode(f"{user}:{password}".encode()) + b"\r\n"
    start = b"POST /?query=INSERT+INTO+protocol.t+FORMAT+CSV HTTP/1.1\r\nHost: x\r\n" + auth
    for raw in (
        start + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
        start + b"Transfer-Encoding: chunked\r\n\r\n-1\r\n",
        start + b"Content-Length: ten\r\n\r\n",
        start + b"Content-Length: 99999999999999\r\n\r\n",
        b"\x16\x03\x01garbage that is not HTTP\r\n\r\n",
    ):
        connection = http.client.HTTPConnection(host, port, timeout=10)
        connection.connect()
        assert connection.sock is not None
        connection.sock.sendall(raw)
        reply = connection.sock.recv(65536)
        assert reply.startswith(b"HTTP/1."), reply
        assert int(reply.split()[1]) in (400, 413), reply
        connection.close()
    assert request({"query": "SELECT 1"})[::2] == (200, b"1\n")


def test_a_chunked_insert_body_is_read_whole(table: str) -> None:
    host, port, user, password = server()
    connection = http.client.HTTPConnection(host, port, timeout=30)
    rows = (f"{i},x\n".encode() for i in range(10_000))
    auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    connection.request("POST", "/?" + urlencode({"query": f"INSERT INTO {table} FORMAT CSV"}), rows,
                       {"Authorization": auth}, encode_chunked=True)  # fmt: skip
    assert connection.getresponse().status == 200
    assert sql(f"SELECT count() FROM {table}") == b"10000\n"


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_curl_with_the_credentials_in_the_url_reads_event_log_as_from_a_server(
    writer: EventLogWriter,
) -> None:
    writer.client()  # event_log exists
    url = settings.EVENTLOG.clickhouse_url.rsplit("/", 1)[0] + "/?query=SELECT+count()+FROM+event_log"
    answer = subprocess.run(
        ["curl", "-sS", "--fail-with-body", url], capture_output=True, text=True, check=True
    )
    assert answer.stdout.strip().isdigit()


def test_rows_in_the_query_parameter_are_joined_to_the_body_as_on_a_server(table: str) -> None:
    assert request({"query": f"INSERT INTO {table} FORMAT CSV\n3,c"}, b"4,d\n")[0] == 200  # joined by \\n
    assert request({"query": f"INSERT INTO {table} FORMAT Values (5, 'e')"}, method="POST")[0] == 200
    assert sql(f"SELECT a FROM {table} ORDER BY a FORMAT CSV") == b"3\n4\n5\n"


@pytest.mark.parametrize(
    "query",
    ["SELECT * FROM file('/etc/passwd', 'LineAsString')", "SELECT 1 INTO OUTFILE '/tmp/eventlog-x'"],
)
def test_the_servers_own_files_are_out_of_reach(query: str) -> None:
    status, headers, body = request({"query": query}, method="POST")
    assert (status, headers["x-clickhouse-exception-code"]) == (403, "497"), body


def test_an_unauthenticated_body_is_never_read() -> None:
    host, port, _, _ = server()
    connection = http.client.HTTPConnection(host, port, timeout=10)
    connection.putrequest("POST", "/?query=INSERT+INTO+t+FORMAT+CSV")
    connection.putheader("Content-Length", str(1 << 30))  # a gigabyte announced, none sent
    connection.endheaders()
    response = connection.getresponse()  # answered at once, without waiting for the body
    assert (response.status, response.getheader("X-ClickHouse-Exception-Code")) == (403, "516")
    assert response.getheader("Connection") == "close"
    connection.close()


def test_a_query_body_that_decompresses_beyond_the_limit_is_refused() -> None:
    """A body read into memory (not an insert's rows, which go to disk) is held to 256 MiB decoded."""
    bomb = zstd.compress(b"SELECT 1 --" + b" " * (300 << 20))  # 300 MiB in about 10 KiB
    status, headers, _ = request({}, bomb, {"Content-Encoding": "zstd"})
    assert (status, headers["x-clickhouse-exception-code"]) == (413, "229")


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


def test_only_a_statement_with_a_result_names_its_format(table: str) -> None:
    assert (
        "x-clickhouse-format"
        not in request({"query": f"INSERT INTO {table} VALUES (1, 'a')"}, method="POST")[1]
    )
    assert request({"query": "SELECT 1"}, method="POST")[1]["x-clickhouse-format"] == "TabSeparated"


@pytest.mark.parametrize(
    ("params", "body", "headers", "code"),
    [
        ({"query": "SELECT 1 FORMAT DataFrame"}, None, {}, "73"),
        ({}, b"SELECT '\xff'", {}, "36"),
        ({}, b"--x\r\n", {"Content-Type": "multipart/form-data; boundary=x"}, "36"),
    ],
)
def test_what_only_chdb_or_no_server_would_take_is_refused(
    params: dict[str, str], body: bytes | None, headers: dict[str, str], code: str
) -> None:
    answer = request(params, body, headers, method="POST")
    assert answer[1]["x-clickhouse-exception-code"] == code, answer[2]
    assert 400 <= answer[0] < 500


def test_a_session_whose_settings_cannot_be_put_back_keeps_its_answer_and_ends() -> None:
    sql("CREATE DATABASE IF NOT EXISTS vanishing")
    assert session("s-vanish", "USE vanishing")[0] == 200
    sql("DROP DATABASE vanishing")  # from another session: this one's database is gone
    answer = session("s-vanish", "SELECT 7", database="default", max_threads="1")
    assert answer[::2] == (200, b"7\n")  # the statement's own outcome stands
    assert session("s-vanish", "SELECT 1", session_check="1")[1]["x-clickhouse-exception-code"] == "372"
