"""The embedded server's HTTP interface, spoken to by raw HTTP requests, as curl would."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from django.conf import settings

from eventlog.clickhouse.event_log import EventLogWriter
from eventlog.embedded_clickhouse.protocol import Head, streamed_insert
from tests.embedded_clickhouse.raw_http import request, server, sql


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


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_curl_with_the_credentials_in_the_url_reads_event_log_as_from_a_server(
    writer: EventLogWriter,
) -> None:
    writer.client()  # event_log exists
    url = settings.EVENTLOG["CLICKHOUSE_URL"].rsplit("/", 1)[0] + "/?query=SELECT+count()+FROM+event_log"
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
        ({}, b"--x\r\n", {"Content-Type": "multipart/form-data; boundary=x"}, "27"),
        ({}, b"SELECT 1", {"Content-Type": "multipart/mixed; boundary=x"}, "36"),
        (
            {},
            b'--x\r\nContent-Disposition: form-data; name="t"; filename="t.csv"\r\n\r\n1\r\n--x--\r\n',
            {"Content-Type": "multipart/form-data; boundary=x"},
            "36",
        ),
    ],
)
def test_what_only_chdb_or_no_server_would_take_is_refused(
    params: dict[str, str], body: bytes | None, headers: dict[str, str], code: str
) -> None:
    answer = request(params, body, headers, method="POST")
    assert answer[1]["x-clickhouse-exception-code"] == code, answer[2]
    assert 400 <= answer[0] < 500


def head(params: dict[str, str]) -> Head:
    return Head("POST", "/", params, {}, has_body=True)


def test_an_inserts_rows_are_spooled_whether_its_statement_is_in_the_url_or_starts_the_body() -> None:
    formats = frozenset({"csv"})
    in_url = streamed_insert(head({"query": "INSERT INTO t FORMAT CSV"}), b"1,a\n", formats)
    assert in_url is not None
    assert bytes(in_url[1]) == b"1,a\n"
    in_body = streamed_insert(head({}), b"INSERT INTO t (a, b) FORMAT CSV\n1,a\n", formats)
    assert in_body is not None
    assert (in_body[0].data_format, bytes(in_body[1])) == ("CSV", b"1,a\n")
    assert streamed_insert(head({}), b"SELECT 1", formats) is None
    assert streamed_insert(head({"query": "INSERT INTO t FORMAT CSV\n1,a"}), b"2,b\n", formats) is None
