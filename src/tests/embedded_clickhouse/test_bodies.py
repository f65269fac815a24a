"""Request bodies as the embedded server reads them: lengths, chunks, compression, limits."""

from __future__ import annotations

import base64
import gzip
import http.client
import zlib
from typing import Any
from urllib.parse import urlencode

import lz4.frame
import pytest
from backports import zstd

from tests.embedded_clickhouse.raw_http import request, server, sql

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
