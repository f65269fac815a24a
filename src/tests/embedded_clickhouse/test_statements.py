"""What the server reads of a statement: an INSERT's rows, a query's format, one statement only."""

from __future__ import annotations

import pytest

from embedded_clickhouse.errors import ServerError
from embedded_clickhouse.statements import read_statement


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
