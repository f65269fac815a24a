"""What the server reads of a statement: an INSERT's rows, a query's format, one statement only."""

from __future__ import annotations

import pytest

from eventlog.embedded_clickhouse.errors import ServerError
from eventlog.embedded_clickhouse.statements import read_statement


def test_an_insert_with_format_leaves_its_rows_unread_after_one_line_break() -> None:
    text = b'INSERT INTO t (a, b) FORMAT CSV\n1,"FORMAT x; SELECT"\n\x00\xff'
    statement = read_statement(text)
    assert (statement.sql, statement.data_format) == (b"INSERT INTO t (a, b) FORMAT CSV", "CSV")
    assert text[statement.data_offset :] == b'1,"FORMAT x; SELECT"\n\x00\xff'


def test_from_infile_goes_before_the_inserts_settings_or_format_clause() -> None:
    plain = read_statement(b"insert into db.t format Native")
    assert plain.insert_from_file("/rows/a'b") == b"insert into db.t FROM INFILE '/rows/a\\'b' format Native"
    with_settings = read_statement(b"INSERT INTO t SETTINGS async_insert = 0 FORMAT RowBinary")
    assert with_settings.insert_from_file("/f") == (
        b"INSERT INTO t FROM INFILE '/f' SETTINGS async_insert = 0 FORMAT RowBinary"
    )


def test_format_inside_strings_names_comments_and_brackets_is_not_a_clause() -> None:
    statement = read_statement(
        b"SELECT 'FORMAT CSV', `FORMAT`, (SELECT 1 FORMAT JSON) -- FORMAT TSV\n/* FORMAT X */ FROM t"
    )
    assert (statement.output_format, statement.data_format) == (None, None)
    assert read_statement(b"SELECT 1 FORMAT JSONEachRow").output_format == "JSONEachRow"


def test_an_insert_with_values_or_select_is_an_ordinary_statement() -> None:
    statement = read_statement(b"INSERT INTO t VALUES (1, 'FORMAT CSV')")
    assert statement.data_format is None
    assert read_statement(b"INSERT INTO t SELECT * FROM u").data_format is None


@pytest.mark.parametrize("text", [b"SELECT 1; SELECT 2", b"SELECT 1;\nDROP TABLE t", b"SELECT ';'; x"])
def test_several_statements_are_refused_as_a_server_refuses_them(text: bytes) -> None:
    with pytest.raises(ServerError, match="Multi-statements are not allowed") as raised:
        read_statement(text)
    assert (raised.value.code, raised.value.http_status) == (62, 400)


def test_one_trailing_semicolon_ends_the_statement() -> None:
    assert read_statement(b"SELECT 1;  \n").sql == b"SELECT 1"


FORMATS = frozenset({"csv", "json", "native", "tabseparated"})  # lower case, as the engine gives them


def test_a_column_named_format_is_neither_an_inserts_rows_nor_a_result_format() -> None:
    select = read_statement(b"INSERT INTO t SELECT format, x FROM s FORMAT CSV", FORMATS)
    assert select.data_format is None
    ordered = read_statement(b"SELECT format FROM t ORDER BY format DESC", FORMATS)
    assert ordered.output_format is None
    assert read_statement(b"SELECT 1 FORMAT JSON", FORMATS).output_format == "JSON"


@pytest.mark.parametrize(
    "text",
    [
        b"SELECT * FROM file('/etc/passwd', 'CSV')",
        b"SELECT 1 INTO OUTFILE '/tmp/x'",
        b"INSERT INTO t FROM INFILE '/etc/passwd' FORMAT CSV",
        b"INSERT INTO FUNCTION file('/srv/x.csv', 'CSV') SELECT 1",
        b"CREATE TABLE t (x String) ENGINE = File(CSV, '/etc/passwd')",
        b"SELECT * FROM executable('sh -c id', 'TSV', 'x String')",
        b"SELECT * FROM numbers((SELECT count() FROM Python('os')))",
        b"SELECT * FROM `file`('/etc/hostname', 'LineAsString')",  # quoted names too
        b"SELECT * FROM \"File\"('/etc/hostname', 'LineAsString')",
        b"SELECT * FROM `fi\\x6ce`('/etc/hostname', 'LineAsString')",
        b"INSERT INTO FUNCTION `file`('/tmp/x', 'LineAsString') SELECT 'x'",
    ],
)
def test_statements_reaching_the_servers_files_or_programs_are_refused(text: bytes) -> None:
    with pytest.raises(ServerError) as raised:
        read_statement(text, FORMATS)
    assert (raised.value.name, raised.value.http_status) == ("ACCESS_DENIED", 403)


def test_a_statement_says_whether_it_answers_with_a_result() -> None:
    assert read_statement(b"SELECT 1").has_result
    assert not read_statement(b"CREATE TABLE t (x UInt8) ENGINE = Memory").has_result
    assert not read_statement(b"INSERT INTO t VALUES (1)").has_result


def test_format_names_match_in_any_case_and_a_table_named_settings_is_a_table() -> None:
    lower = read_statement(b"INSERT INTO t FORMAT tsv\n1\tlast  \n", frozenset({"tsv"}))
    assert lower.data_format == "tsv"
    named = read_statement(b"INSERT INTO db.settings FORMAT CSV\n1\n", FORMATS)
    assert named.insert_from_file("/f") == b"INSERT INTO db.settings FROM INFILE '/f' FORMAT CSV"
