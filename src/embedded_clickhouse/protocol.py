"""ClickHouse's HTTP interface: from a request to a Query for the engine, and back to a response.

What a ClickHouse server reads from a request, this reads the same way: the query in the `query`
URL parameter, the body, or the start in one and the rest in the other (joined by a line break);
`database`, `default_format`, `query_id`, `session_id` (with `session_timeout`, `session_check`),
`param_<name>` query parameters, and every other URL parameter as a setting of the query. The
credentials come from basic auth, `X-ClickHouse-User`/`X-ClickHouse-Key` or `user`/`password`.
A body may be compressed (`Content-Encoding`: gzip, deflate, zstd, lz4), and a response is, in the
client's preferred of those, when `enable_http_compression=1` asks for it.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hmac
import json
import uuid
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import lz4.frame
from backports import zstd

from embedded_clickhouse.engine import MAX_SESSION_TIMEOUT, Engine, Query, Result
from embedded_clickhouse.errors import ServerError
from embedded_clickhouse.statements import read_statement

DISPLAY_NAME = "eventlog-embedded"
# Parameters of the HTTP interface itself rather than settings of the query. The accepted ones a
# server acts on and this server need not: it always answers once the query has ended
# (wait_end_of_query), buffers whole (buffer_size), and sends Native without the protocol
# revision's block info (client_protocol_version: clients fall back to revision 0).
_ACCEPTED = frozenset({"wait_end_of_query", "buffer_size", "client_protocol_version"})
_OWN = frozenset({"query", "database", "default_format", "query_id", "session_id", "session_timeout",
                  "session_check", "user", "password"})  # fmt: skip
_UNSUPPORTED = {
    "compress": "ClickHouse's native compression of the response (compress=1): use Accept-Encoding",
    "decompress": "ClickHouse's native compression of the request (decompress=1): use Content-Encoding",
    "quota_key": "quotas",
    "role": "roles",
}
_DECODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.decompress,
    "deflate": zlib.decompress,
    "zstd": zstd.decompress,
    "lz4": lz4.frame.decompress,
}
_ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": lambda body: gzip.compress(body, compresslevel=3),
    "deflate": lambda body: zlib.compress(body, 3),
    "zstd": zstd.compress,
    "lz4": lz4.frame.compress,
}
_CONTENT_TYPES = {
    "TabSeparated": "text/tab-separated-values; charset=UTF-8",
    "TSV": "text/tab-separated-values; charset=UTF-8",
    "CSV": "text/csv; charset=UTF-8; header=absent",
    "JSON": "application/json; charset=UTF-8",
    "JSONEachRow": "application/x-ndjson; charset=UTF-8",
}


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: Mapping[str, str]
    headers: Mapping[str, str]  # names in lower case
    body: bytes


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def serve(request: Request, engine: Engine, credentials: Credentials) -> Response:
    """Answer one request; every failure becomes a server's error response, never an exception."""
    query_id = request.params.get("query_id") or str(uuid.uuid4())
    try:
        if request.path == "/ping" or (request.path == "/" and not _has_query(request)):
            return Response(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
        if request.path != "/":
            raise ServerError(
                "UNSUPPORTED_METHOD", f"There is no handle {request.path}: use / or /ping", status=404
            )
        if request.method not in ("GET", "POST"):
            raise ServerError(
                "UNSUPPORTED_METHOD", f"HTTP method {request.method} is not allowed", status=405
            )
        authenticate(request, credentials)
        result = _execute(request, engine, query_id)
    except ServerError as error:
        return error_response(error, query_id, engine.timezone)
    return _result_response(request, result, query_id, engine.timezone)


def error_response(error: ServerError, query_id: str, timezone: str) -> Response:
    headers = {
        "Content-Type": "text/plain; charset=UTF-8",
        "X-ClickHouse-Exception-Code": str(error.code),
        "X-ClickHouse-Query-Id": query_id,
        "X-ClickHouse-Server-Display-Name": DISPLAY_NAME,
        "X-ClickHouse-Timezone": timezone,
    }
    return Response(error.http_status, (error.text + "\n").encode(), headers)


def authenticate(request: Request, credentials: Credentials) -> None:
    user, password = _presented(request)
    valid_user = hmac.compare_digest(user.encode(), credentials.user.encode())
    valid_password = hmac.compare_digest(password.encode(), credentials.password.encode())
    if not (valid_user and valid_password):
        raise ServerError(
            "AUTHENTICATION_FAILED",
            f"{user}: Authentication failed: password is incorrect, or there is no user with such name",
        )


def _presented(request: Request) -> tuple[str, str]:
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("basic "):
        try:
            user, _, password = base64.b64decode(authorization[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise ServerError("AUTHENTICATION_FAILED", "Malformed basic authorization header") from None
        return user, password
    if "x-clickhouse-user" in request.headers:
        return request.headers["x-clickhouse-user"], request.headers.get("x-clickhouse-key", "")
    return request.params.get("user", "default"), request.params.get("password", "")


def _has_query(request: Request) -> bool:
    return "query" in request.params or bool(request.body)


def _execute(request: Request, engine: Engine, query_id: str) -> Result:
    params = request.params
    for name, feature in _UNSUPPORTED.items():
        if params.get(name, "0") not in ("", "0"):
            raise ServerError("BAD_ARGUMENTS", f"The embedded server does not support {feature}")
    settings = {key: value for key, value in params.items()
                if key not in _OWN and key not in _ACCEPTED and key not in _UNSUPPORTED
                and not key.startswith("param_")}  # fmt: skip
    if request.method == "GET" and settings.get("readonly", "0") == "0":
        settings["readonly"] = "2"  # as on a server: GET only reads (and may change settings)
    query = _query(request, query_id, settings)
    session_id = params.get("session_id") or None
    timeout = _session_timeout(params.get("session_timeout"))
    return engine.execute(query, session_id, timeout, params.get("session_check", "0") == "1")


def _query(request: Request, query_id: str, settings: dict[str, str]) -> Query:
    body = _decoded_body(request)
    head = request.params.get("query", "").encode()
    text = head + b"\n" + body if head else body
    if not text.strip():
        raise ServerError("SYNTAX_ERROR", "Empty query")
    if head:  # an INSERT in the URL reads the whole body as its rows, without joining them
        statement = read_statement(head)
        data = body if statement.data_format else None
        if statement.data_format is None and body:
            statement = read_statement(text)
            data = text[statement.data_offset :] if statement.data_format else None
    else:
        statement = read_statement(text)
        data = text[statement.data_offset :] if statement.data_format else None
    return Query(
        statement=statement,
        data=data,
        output_format=request.params.get("default_format") or "TabSeparated",
        database=request.params.get("database") or request.headers.get("x-clickhouse-database") or None,
        settings=settings,
        parameters={key[6:]: value for key, value in request.params.items() if key.startswith("param_")},
        query_id=query_id,
    )


def _decoded_body(request: Request) -> bytes:
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return request.body
    decoder = _DECODERS.get(encoding)
    if decoder is None:
        raise ServerError(
            "BAD_ARGUMENTS", f"Unsupported Content-Encoding {encoding!r}: gzip, deflate, zstd or lz4"
        )
    try:
        return decoder(request.body)
    except Exception as exc:  # each decoder has its own error type; all mean an unreadable body
        # A server answers 500; but the body is the client's, and nothing was run.
        raise ServerError(
            "CANNOT_DECOMPRESS", f"Cannot decompress the {encoding} request body: {exc}", status=400
        ) from exc


def _session_timeout(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        timeout = float(raw)
    except ValueError:
        raise ServerError("BAD_ARGUMENTS", f"Invalid session timeout: {raw!r}") from None
    if not 0 < timeout <= MAX_SESSION_TIMEOUT:
        raise ServerError("BAD_ARGUMENTS", f"Session timeout must be in (0, {MAX_SESSION_TIMEOUT:g}] seconds")
    return timeout


def _result_response(request: Request, result: Result, query_id: str, timezone: str) -> Response:
    headers = {
        "Content-Type": _CONTENT_TYPES.get(result.output_format, "application/octet-stream"),
        "X-ClickHouse-Query-Id": query_id,
        "X-ClickHouse-Format": result.output_format,
        "X-ClickHouse-Timezone": timezone,
        "X-ClickHouse-Server-Display-Name": DISPLAY_NAME,
        "X-ClickHouse-Summary": json.dumps(result.summary, separators=(",", ":")),
    }
    body = result.body
    encoding = _response_encoding(request)
    if encoding and body:
        body = _ENCODERS[encoding](body)
        headers["Content-Encoding"] = encoding
    return Response(200, body, headers)


def _response_encoding(request: Request) -> str | None:
    if request.params.get("enable_http_compression", "0") not in ("1", "true"):
        return None
    for part in request.headers.get("accept-encoding", "").split(","):
        name = part.split(";")[0].strip().lower()
        if name in _ENCODERS:
            return name
    return None
