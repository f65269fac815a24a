"""ClickHouse's HTTP interface: from a request to a Query for the engine, and back to a response.

What a ClickHouse server reads from a request, this reads the same way: the query in the `query`
URL parameter, the body, or the start in one and the rest in the other (joined by a line break);
`database`, `default_format`, `query_id`, `session_id` (with `session_timeout`, `session_check`),
`param_<name>` query parameters, and every other URL parameter as a setting of the query; the
fields of a multipart/form-data body are read as URL parameters. The
credentials come from basic auth, `X-ClickHouse-User`/`X-ClickHouse-Key` or `user`/`password`.
A body may be compressed (`Content-Encoding`, bodies.py), and a response is, in the client's
preferred of gzip, deflate, zstd and lz4, when `enable_http_compression=1` asks for it.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hmac
import json
import logging
import uuid
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path

import lz4.frame
from backports import zstd

from eventlog.embedded_clickhouse.config import Credentials
from eventlog.embedded_clickhouse.engine import MAX_SESSION_TIMEOUT, Engine, Query, Result, SessionRequest
from eventlog.embedded_clickhouse.errors import ServerError
from eventlog.embedded_clickhouse.statements import Statement, read_statement

log = logging.getLogger("embedded_clickhouse")

DISPLAY_NAME = "eventlog-embedded"
# Parameters of the HTTP interface itself rather than settings of the query. The accepted ones a
# server acts on and this server need not: it always answers once the query has ended
# (wait_end_of_query), buffers whole (buffer_size), and sends Native without the protocol
# revision's block info (client_protocol_version: clients fall back to revision 0).
_ACCEPTED = frozenset({"wait_end_of_query", "buffer_size", "client_protocol_version", "stacktrace"})
_OWN = frozenset({"query", "database", "default_format", "query_id", "session_id", "session_timeout",
                  "session_check", "close_session", "user", "password"})  # fmt: skip
_UNSUPPORTED = {
    "compress": "ClickHouse's native compression of the response (compress=1): use Accept-Encoding",
    "decompress": "ClickHouse's native compression of the request (decompress=1): use Content-Encoding",
    "quota_key": "quotas",
    "role": "roles",
}


_ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": lambda body: gzip.compress(body, compresslevel=3),
    "deflate": lambda body: zlib.compress(body, 3),
    "zstd": zstd.compress,
    "lz4": lz4.frame.compress,
}
# Output formats chDB's Python layer turns into Python objects rather than bytes.
_CHDB_ONLY_FORMATS = frozenset({"dataframe", "arrowtable", "datastore"})
_CONTENT_TYPES = {
    "TabSeparated": "text/tab-separated-values; charset=UTF-8",
    "TSV": "text/tab-separated-values; charset=UTF-8",
    "CSV": "text/csv; charset=UTF-8; header=absent",
    "JSON": "application/json; charset=UTF-8",
    "JSONEachRow": "application/x-ndjson; charset=UTF-8",
}


@dataclass(frozen=True)
class Head:
    """What a request says before its body: enough to route it and check its credentials."""

    method: str
    path: str
    params: Mapping[str, str]
    headers: Mapping[str, str]  # names in lower case
    has_body: bool

    @property
    def query_id(self) -> str:
        return self.params.get("query_id") or ""


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def answer_before_body(head: Head, credentials: Credentials, timezone: str) -> Response | None:
    """The answer to a request that needs no body read (ping, an unknown path or method, wrong
    credentials), or None: read the body, then `serve`. Nobody's body is read unauthenticated."""
    if head.path == "/ping" or (head.path == "/" and "query" not in head.params and not head.has_body):
        return Response(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
    try:
        if head.path != "/":
            raise ServerError(
                "UNSUPPORTED_METHOD", f"There is no handle {head.path}: use / or /ping", status=404
            )
        if head.method not in ("GET", "POST"):
            raise ServerError("UNSUPPORTED_METHOD", f"HTTP method {head.method} is not allowed", status=405)
        content_type = head.headers.get("content-type", "")
        if content_type.startswith("multipart/") and not content_type.startswith("multipart/form-data"):
            raise ServerError("BAD_ARGUMENTS", f"The embedded server does not read {content_type} bodies")
        authenticate(head, credentials)
    except ServerError as error:
        return error_response(error, head.query_id, timezone)
    return None


def streamed_insert(head: Head, first: bytes, formats: frozenset[str]) -> tuple[Statement, memoryview] | None:
    """For an `INSERT ... FORMAT` whose rows are the rest of the body, the statement and the rows in
    `first` (the body's first decoded piece): such a body is read straight into a spool file.
    clickhouse-connect sends the INSERT in the `query` parameter, or, uncompressed, at the body's
    start. None for any other request (`serve` reads it whole)."""
    if head.method != "POST":
        return None
    query_param = head.params.get("query", "").encode()
    try:
        if query_param:
            statement = read_statement(query_param + b"\n", formats)
            whole_body = statement.data_format is not None and statement.data_offset >= len(query_param)
            return (statement, memoryview(first)) if whole_body else None
        statement = read_statement(first, formats)
    except ServerError:
        return None  # `serve` answers it
    line_break_seen = (
        statement.data_offset > 0 and first[statement.data_offset - 1 : statement.data_offset] == b"\n"
    )
    if statement.data_format is None or not line_break_seen:
        return None  # not an insert, or the first piece ends before its statement's line break
    return statement, memoryview(first)[statement.data_offset :]


@dataclass(frozen=True)
class SpooledRows:
    """A `streamed_insert`'s statement, and the file its rows were read into."""

    statement: Statement
    path: Path


def serve(head: Head, body: bytes | SpooledRows, engine: Engine) -> Response:
    """Answer an authenticated request whose body is `body`, decoded (or, for a `streamed_insert`,
    spooled). Every failure is a server's error response, never an exception."""
    query_id = head.query_id or str(uuid.uuid4())
    try:
        result = _execute(head, body, engine, query_id)
    except ServerError as error:
        return error_response(error, query_id, engine.timezone)
    except Exception as exc:  # a bug of ours or the engine's: an answer still, never a dropped connection
        log.exception("query %s failed", query_id)
        failure = ServerError("STD_EXCEPTION", f"{type(exc).__name__}: {exc}", code=1001)
        return error_response(failure, query_id, engine.timezone)
    return _result_response(head, result, query_id, engine.timezone)


def error_response(error: ServerError, query_id: str, timezone: str) -> Response:
    headers = {
        "Content-Type": "text/plain; charset=UTF-8",
        "X-ClickHouse-Exception-Code": str(error.code),
        "X-ClickHouse-Query-Id": query_id,
        "X-ClickHouse-Server-Display-Name": DISPLAY_NAME,
        "X-ClickHouse-Timezone": timezone,
    }
    return Response(error.http_status, (error.text + "\n").encode(), headers)


def authenticate(head: Head, credentials: Credentials) -> None:
    user, password = _presented(head)
    valid_user = hmac.compare_digest(user.encode(), credentials.user.encode())
    valid_password = hmac.compare_digest(password.encode(), credentials.password.encode())
    if not (valid_user and valid_password):
        raise ServerError(
            "AUTHENTICATION_FAILED",
            f"{user}: Authentication failed: password is incorrect, or there is no user with such name",
        )


def _presented(head: Head) -> tuple[str, str]:
    authorization = head.headers.get("authorization", "")
    if authorization.lower().startswith("basic "):
        try:
            user, _, password = base64.b64decode(authorization[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise ServerError("AUTHENTICATION_FAILED", "Malformed basic authorization header") from None
        return user, password
    if "x-clickhouse-user" in head.headers:
        return head.headers["x-clickhouse-user"], head.headers.get("x-clickhouse-key", "")
    return head.params.get("user", "default"), head.params.get("password", "")


def _execute(head: Head, body: bytes | SpooledRows, engine: Engine, query_id: str) -> Result:
    if isinstance(body, bytes) and head.headers.get("content-type", "").startswith("multipart/form-data"):
        head, body = _with_form_fields(head, body)
    params = head.params
    for name, feature in _UNSUPPORTED.items():
        if params.get(name, "0") not in ("", "0"):
            raise ServerError("BAD_ARGUMENTS", f"The embedded server does not support {feature}")
    settings = {key: value for key, value in params.items()
                if key not in _OWN and key not in _ACCEPTED and key not in _UNSUPPORTED
                and not key.startswith("param_")}  # fmt: skip
    if head.method == "GET" and settings.get("readonly", "0") == "0":
        settings["readonly"] = "2"  # as on a server: GET only reads (and may change settings)
    if isinstance(body, SpooledRows):
        query = _query(head, body.statement, body.path, query_id, settings)
    else:
        query = _query(head, *_statement(head, body, engine.formats), query_id, settings)
    session = None
    if params.get("session_id"):
        session = SessionRequest(
            session_id=params["session_id"],
            timeout=_session_timeout(params.get("session_timeout")),
            check=params.get("session_check", "0") == "1",
            close=params.get("close_session", "0") == "1",
        )
    return engine.execute(query, session)


def _with_form_fields(head: Head, body: bytes) -> tuple[Head, bytes]:
    """A form's fields are read as URL parameters, as a server reads them: clickhouse-connect
    sends the query and its `param_*` values as a form once they would make the URL too long.
    Its files are external data, which this server does not have."""
    form = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + head.headers["content-type"].encode("latin-1") + b"\r\n\r\n" + body
    )
    if not form.is_multipart() or form.defects:
        raise ServerError("CANNOT_PARSE_INPUT_ASSERTION_FAILED", "Malformed multipart/form-data body")
    fields: dict[str, str] = {}
    for part in form.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if part.get_filename() is not None:
            raise ServerError("BAD_ARGUMENTS", "The embedded server does not read external data (form files)")
        if not isinstance(name, str):
            raise ServerError("CANNOT_PARSE_INPUT_ASSERTION_FAILED", "A form field without a name")
        payload = part.get_payload(decode=True)
        try:
            fields[name] = payload.decode() if isinstance(payload, bytes) else ""
        except UnicodeDecodeError:
            raise ServerError("BAD_ARGUMENTS", f"Form field {name!r} is not valid UTF-8") from None
    return replace(head, params={**head.params, **fields}), b""


def _statement(head: Head, body: bytes, formats: frozenset[str]) -> tuple[Statement, memoryview | None]:
    """A server reads the `query` parameter and the body as one text, joined by a line break."""
    query_param = head.params.get("query", "").encode()
    text = query_param + b"\n" + body if query_param else body
    if not text.strip():
        raise ServerError("SYNTAX_ERROR", "Empty query")
    statement = read_statement(text, formats)
    return statement, memoryview(text)[statement.data_offset :] if statement.data_format else None


def _query(
    head: Head, statement: Statement, rows: memoryview | Path | None, query_id: str, settings: dict[str, str]
) -> Query:
    output_format = head.params.get("default_format") or "TabSeparated"
    if {output_format.lower(), (statement.output_format or "").lower()} & _CHDB_ONLY_FORMATS:
        raise ServerError("UNKNOWN_FORMAT", "Unknown format: DataFrame, ArrowTable and DataStore are chDB's")
    return Query(
        statement=statement,
        rows=rows,
        output_format=output_format,
        database=head.params.get("database") or head.headers.get("x-clickhouse-database") or None,
        settings=settings,
        parameters={key[6:]: value for key, value in head.params.items() if key.startswith("param_")},
        query_id=query_id,
    )


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


def _result_response(head: Head, result: Result, query_id: str, timezone: str) -> Response:
    headers = {
        "Content-Type": "text/plain; charset=UTF-8",
        "X-ClickHouse-Query-Id": query_id,
        "X-ClickHouse-Timezone": timezone,
        "X-ClickHouse-Server-Display-Name": DISPLAY_NAME,
        "X-ClickHouse-Summary": json.dumps(result.summary, separators=(",", ":")),
    }
    if result.has_output:  # as a server: only a statement with a result names its format
        headers["Content-Type"] = _CONTENT_TYPES.get(result.output_format, "application/octet-stream")
        headers["X-ClickHouse-Format"] = result.output_format
    body = result.body
    encoding = _response_encoding(head)
    if encoding and body:
        body = _ENCODERS[encoding](body)
        headers["Content-Encoding"] = encoding
    return Response(200, body, headers)


def _response_encoding(head: Head) -> str | None:
    if head.params.get("enable_http_compression", "0") not in ("1", "true"):
        return None
    for part in head.headers.get("accept-encoding", "").split(","):
        name = part.split(";")[0].strip().lower()
        if name in _ENCODERS:
            return name
    return None
