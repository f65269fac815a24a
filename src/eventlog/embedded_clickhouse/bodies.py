"""Request bodies, read as a server reads them (Content-Length or chunked transfer) and decoded as
it decodes them (Content-Encoding: gzip, deflate, zstd, lz4), in pieces: an insert's rows can go
to disk as they arrive, never held whole. Every failure is a ServerError; nothing is half-read
silently (a truncated transfer or frame, or bytes after the last frame, are errors)."""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from io import BufferedIOBase
from typing import Any

import lz4.frame
from backports import zstd

from eventlog.embedded_clickhouse.errors import ServerError

PIECE = 1 << 20  # read and decompress this much at a time
_DIGITS = re.compile(r"[0-9]{1,19}")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
# One frame each (a gzip member, zlib stream, zstd or lz4 frame); a body may hold several:
# clickhouse-connect compresses an insert block by block, one lz4 frame each.
_DECOMPRESSORS: dict[str, Callable[[], Any]] = {
    "gzip": lambda: zlib.decompressobj(wbits=31),
    "deflate": zlib.decompressobj,
    "zstd": zstd.ZstdDecompressor,
    "lz4": lz4.frame.LZ4FrameDecompressor,
}


def has_body(headers: dict[str, str]) -> bool:
    return "chunked" in headers.get("transfer-encoding", "").lower() or headers.get(
        "content-length", "0"
    ) not in ("", "0")


def joined(first: bytes, rest: Iterable[bytes], limit: int) -> bytes:
    """A body's pieces as one, of at most `limit` bytes."""
    parts, total = [first], len(first)
    for piece in rest:
        total += len(piece)
        if total > limit:
            raise ServerError("QUERY_IS_TOO_LARGE", f"A query's body is larger than {limit} bytes")
        parts.append(piece)
    return b"".join(parts)


def transferred(stream: BufferedIOBase, headers: dict[str, str], limit: int) -> Iterator[bytes]:
    """The body as sent (by its Content-Length, or chunked), in pieces; none without either."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        yield from _chunked(stream, limit)
        return
    raw = headers.get("content-length")
    if raw is None:
        return
    if not _DIGITS.fullmatch(raw):
        raise ServerError("BAD_ARGUMENTS", f"Invalid Content-Length {raw!r}")
    left = int(raw)
    if left > limit:
        raise ServerError("QUERY_IS_TOO_LARGE", f"Request body of {left} bytes is larger than {limit} bytes")
    yield from _exactly(stream, left, "The request body ended before its Content-Length")


def _chunked(stream: BufferedIOBase, limit: int) -> Iterator[bytes]:
    total = 0
    while True:
        line = stream.readline(1024)
        size_field = line.split(b";")[0].strip()
        if not _HEX.fullmatch(size_field):
            raise ServerError("BAD_ARGUMENTS", f"Malformed chunk size line {line[:40]!r}")
        size = int(size_field, 16)
        if size == 0:
            while stream.readline(1024).strip():  # trailers, then the empty line
                pass
            return
        total += size
        if total > limit:
            raise ServerError("QUERY_IS_TOO_LARGE", f"Request body is larger than {limit} bytes")
        yield from _exactly(stream, size, "Malformed chunked request body")
        if stream.read(2) != b"\r\n":
            raise ServerError("BAD_ARGUMENTS", "Malformed chunked request body")


def _exactly(stream: BufferedIOBase, size: int, short: str) -> Iterator[bytes]:
    """The next `size` bytes of `stream`, in pieces; ServerError(`short`) if it ends first."""
    while size:
        piece = stream.read(min(size, PIECE))
        if not piece:
            raise ServerError("BAD_ARGUMENTS", short)
        size -= len(piece)
        yield piece


def decoded(pieces: Iterable[bytes], headers: dict[str, str], limit: int) -> Iterator[bytes]:
    """The pieces decoded by the body's Content-Encoding, at most `limit` bytes in all."""
    encoding = headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        yield from pieces
        return
    decompressor = _DECOMPRESSORS.get(encoding)
    if decompressor is None:
        raise ServerError("BAD_ARGUMENTS", f"Content-Encoding {encoding!r}: only gzip, deflate, zstd or lz4")
    try:
        yield from _frames(pieces, decompressor, limit)
    except (ServerError, OSError):  # the body's transfer, not its compression
        raise
    except Exception as exc:  # each decompressor has its own error type; all mean an unreadable body
        # A server answers 500; but the body is the client's, and nothing was run.
        raise ServerError(
            "CANNOT_DECOMPRESS", f"Cannot decompress the {encoding} request body: {exc}", status=400
        ) from exc


def _frames(pieces: Iterable[bytes], decompressor: Callable[[], Any], limit: int) -> Iterator[bytes]:
    """Every frame, one after another, to the body's end; the one-shot functions of lz4.frame and
    zlib would stop after the first and drop the rest of the rows without an error."""
    frame: Any = None
    total = 0
    for piece in pieces:
        data = piece
        while data:
            frame = frame or decompressor()
            for output in _outputs(frame, data):
                total += len(output)
                if total > limit:
                    raise ServerError(
                        "QUERY_IS_TOO_LARGE", f"The decompressed body is larger than {limit} bytes"
                    )
                yield output
            data = frame.unused_data if frame.eof else b""
            frame = None if frame.eof else frame
    if frame is not None:
        raise ValueError("the body ends inside a compressed frame")


def _outputs(frame: Any, data: bytes) -> Iterator[bytes]:
    """What `frame` gives for `data`, PIECE bytes at a time (a small body may hold gigabytes)."""
    while True:
        output = frame.decompress(data, PIECE)
        data = getattr(frame, "unconsumed_tail", b"")  # zlib's; the others keep the rest inside
        if output:
            yield output
        if frame.eof or (not data and getattr(frame, "needs_input", True)):
            return
