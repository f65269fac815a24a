"""Errors as a ClickHouse server reports them: a code, its name, `Code: N. DB::Exception: ...`, and
the HTTP status the server gives that code."""

from __future__ import annotations

import re

# Codes of the errors this server raises itself, checked against the engine's own errorCodeToName()
# in tests/embedded_clickhouse/test_clients.py.
CODES = {
    "UNSUPPORTED_METHOD": 1,
    "SYNTAX_ERROR": 62,
    "BAD_ARGUMENTS": 36,
    "UNKNOWN_SETTING": 115,
    "CANNOT_DECOMPRESS": 271,
    "QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING": 216,
    "SESSION_NOT_FOUND": 372,
    "SESSION_IS_LOCKED": 373,
    "QUERY_IS_TOO_LARGE": 229,
    "ACCESS_DENIED": 497,
    "ABORTED": 236,
    "AUTHENTICATION_FAILED": 516,
    "UNKNOWN_FORMAT": 73,
    "CANNOT_PARSE_INPUT_ASSERTION_FAILED": 27,
}

# The HTTP status a ClickHouse server answers for an error, by the error's name (its
# exceptionCodeToHTTPStatus); any other error is a 500.
_STATUS_NAMES = {
    401: "REQUIRED_PASSWORD",
    403: "UNKNOWN_USER WRONG_PASSWORD AUTHENTICATION_FAILED SET_NON_GRANTED_ROLE ACCESS_DENIED",
    400: "BAD_ARGUMENTS CANNOT_COMPILE_REGEXP CANNOT_PARSE_TEXT CANNOT_PARSE_ESCAPE_SEQUENCE "
    "CANNOT_PARSE_QUOTED_STRING CANNOT_PARSE_DATE CANNOT_PARSE_DATETIME CANNOT_PARSE_NUMBER "
    "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING CANNOT_PARSE_IPV4 CANNOT_PARSE_IPV6 "
    "CANNOT_PARSE_INPUT_ASSERTION_FAILED CANNOT_PARSE_UUID DUPLICATE_COLUMN ILLEGAL_COLUMN "
    "UNKNOWN_ELEMENT_IN_AST UNKNOWN_TYPE_OF_AST_NODE THERE_IS_NO_COLUMN TOO_DEEP_AST TOO_BIG_AST "
    "UNEXPECTED_AST_STRUCTURE SYNTAX_ERROR INCORRECT_DATA TYPE_MISMATCH VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
    404: "UNKNOWN_TABLE UNKNOWN_FUNCTION UNKNOWN_IDENTIFIER UNKNOWN_TYPE UNKNOWN_STORAGE UNKNOWN_DATABASE "
    "UNKNOWN_SETTING UNKNOWN_DIRECTION_OF_SORTING UNKNOWN_AGGREGATE_FUNCTION UNKNOWN_FORMAT "
    "UNKNOWN_DATABASE_ENGINE UNKNOWN_TYPE_OF_QUERY UNKNOWN_ROLE",
    413: "QUERY_IS_TOO_LARGE",
    501: "NOT_IMPLEMENTED",
    503: "SOCKET_TIMEOUT CANNOT_OPEN_FILE CANNOT_SCHEDULE_TASK",
    411: "HTTP_LENGTH_REQUIRED",
    408: "TIMEOUT_EXCEEDED",
    415: "UNSUPPORTED_MEDIA_TYPE",
}
_STATUS = {name: status for status, names in _STATUS_NAMES.items() for name in names.split()}
_ENGINE_ERROR = re.compile(r"Code: (\d+)\. .*?(?:\(([A-Z0-9_]+)\))?\s*$", re.DOTALL)


class ServerError(Exception):
    """An error answered to the client as a ClickHouse server answers it."""

    def __init__(self, name: str, message: str, code: int | None = None, status: int | None = None) -> None:
        self.name = name
        self.code = CODES[name] if code is None else code
        self._status = status
        self.text = (
            message
            if message.startswith("Code: ")
            else f"Code: {self.code}. DB::Exception: {message}. ({name})"
        )
        super().__init__(self.text)

    @property
    def http_status(self) -> int:
        return self._status or _STATUS.get(self.name, 500)

    @classmethod
    def from_engine(cls, exc: Exception) -> ServerError:
        """The engine's own error (its text is already a server's `Code: N. DB::Exception: ...`)."""
        text = str(exc).strip()
        start = text.find("Code: ")
        text = text[start:] if start >= 0 else text
        match = _ENGINE_ERROR.match(text)
        if match is None:
            return cls("STD_EXCEPTION", f"Code: 1001. DB::Exception: {text}. (STD_EXCEPTION)", code=1001)
        return cls(match.group(2) or "UNKNOWN_EXCEPTION", text, code=int(match.group(1)))
