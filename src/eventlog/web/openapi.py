"""The OpenAPI 3.1 document of the HTTP API, served at GET /api/v1/openapi.json.

Written by hand beside the endpoints it describes; tests/web/test_openapi.py validates it against the
OpenAPI specification and checks its paths against the URLs the app serves.
"""

from __future__ import annotations

from typing import Any

from eventlog.clickhouse.event_log import COLUMNS
from eventlog.outbox.events import MAX_EVENT_TYPE_LENGTH, MAX_METADATA_VERSION
from eventlog.reading.events import MAX_PAGE
from eventlog.reading.filters import MAX_CONTEXT_CHARS, MAX_CONTEXT_MATCHES, MAX_VALUE_CHARS, MAX_VALUES

Schema = dict[str, Any]

# Everything a request's values must be that a schema can say is said here, exactly: the fuzz suite
# (tests/web/test_fuzz.py) sends what the document allows and what it forbids, and holds the
# answers to it. The rules it cannot say (a range in UTC, from before to, buckets, cursors) are in
# the descriptions.
_NO_NUL = "^[^\\u0000]*$"  # PostgreSQL's text and jsonb hold no NUL character
_TIME = {
    "type": "string",
    "format": "date-time",
    # ClickHouse's DateTime64 range, in UTC; six digits of a second at most
    "pattern": r"^(19\d\d|2[0-2]\d\d)-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d{1,6})?([Zz]|[+-]\d\d:\d\d)$",
    "description": "RFC 3339 with an offset (Z or +hh:mm), from 1900-01-01 to 2299-12-31 in UTC",
}
_CONTEXT: Schema = {
    "type": "object",
    "propertyNames": {"pattern": _NO_NUL},
    "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
}
_JSON_VALUE: Schema = {
    "anyOf": [
        {"type": "string", "pattern": _NO_NUL},
        {"type": ["number", "boolean", "null"]},
        {"type": "array", "items": {"$ref": "#/components/schemas/JsonValue"}},
        {"$ref": "#/components/schemas/Context"},
    ]
}
_NAME = {"type": "string", "minLength": 1, "maxLength": MAX_VALUE_CHARS}
_EVENT: Schema = {
    "type": "object",
    "required": list(COLUMNS),
    "properties": {
        "event_id": {"type": "string", "format": "uuid"},
        "event_type": {"type": "string"},
        "event_date_time": {**_TIME, "description": "UTC, with microseconds and Z"},
        "environment": {"type": "string"},
        "event_context": {"type": "object"},
        "metadata_version": {"type": "integer", "minimum": 0},
    },
}
# An optional field that is null takes its default, as one left out does.
_NEW_EVENT: Schema = {
    "type": "object",
    "required": ["event_type"],
    "additionalProperties": False,
    "properties": {
        "event_type": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_EVENT_TYPE_LENGTH,
            "pattern": _NO_NUL,
        },
        "event_id": {"type": ["string", "null"], "format": "uuid"},
        "event_date_time": {**_TIME, "type": ["string", "null"]},
        "environment": {"type": ["string", "null"], "maxLength": MAX_EVENT_TYPE_LENGTH, "pattern": _NO_NUL},
        "event_context": {"anyOf": [{"$ref": "#/components/schemas/Context"}, {"type": "null"}]},
        "metadata_version": {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_METADATA_VERSION},
    },
}
_ERROR: Schema = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "problems": {"type": "array", "items": {"type": "object"}}},
}


def _query(name: str, schema: Schema, description: str, required: bool = False, **extra: Any) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema,
        "description": description,
        **extra,
    }


_FILTERS = [
    _query("from", _TIME, "inclusive; default: 24 hours before `to`"),
    _query("to", _TIME, "exclusive; default: now"),
    _query(
        "event_type",
        {"type": "array", "items": _NAME, "maxItems": MAX_VALUES},
        "any of",
        explode=True,
    ),
    _query(
        "environment",
        {"type": "array", "items": _NAME, "maxItems": MAX_VALUES},
        "any of",
        explode=True,
    ),
    {
        "name": "context",
        "in": "query",
        "style": "form",
        "explode": True,
        # Exploded as a form, each property is a parameter of its own name: `context.<path>`.
        "schema": {
            "type": "object",
            "propertyNames": {
                "pattern": r"^context\.[^.]+(\.[^.]+)*$",
                "maxLength": len("context.") + MAX_CONTEXT_CHARS,
            },
            "additionalProperties": {"type": "string", "maxLength": MAX_CONTEXT_CHARS},
            "maxProperties": MAX_CONTEXT_MATCHES,
        },
        "description": "`context.<path>=<value>`, up to 5: event_context at the dot-separated path is a JSON "
        "string equal to the value, or a number or boolean written as it; a missing key never matches",
    },
]
_ORDER = _query(
    "order", {"type": "string", "enum": ["desc", "asc"], "default": "desc"}, "newest first, or oldest"
)
_CURSOR = _query(
    "cursor",
    {"type": "string", "minLength": 1},
    "from the previous page (or an export's resume_cursor), sent with the same filters",
)


def _error(description: str, **headers: str) -> Schema:
    answer: Schema = {"description": description, "content": {"application/json": {"schema": _ERROR}}}
    if headers:
        answer["headers"] = {
            name: {"schema": {"type": "string"}, "description": text} for name, text in headers.items()
        }
    return answer


_UNAUTHORIZED = _error("no key, or an unknown one", **{"WWW-Authenticate": "Bearer"})
_TOO_MANY = _error("the key is over its requests a minute", **{"Retry-After": "seconds"})
_UNAVAILABLE = _error("ClickHouse or Redis unavailable", **{"Retry-After": "seconds"})


def _read_errors() -> dict[str, Schema]:
    return {
        "400": _error("bad parameters or cursor"),
        "401": _UNAUTHORIZED,
        "403": _error("the key lacks the read scope"),
        "422": _error("the query went over ClickHouse's memory or result limit"),
        "429": _TOO_MANY,
        "503": _UNAVAILABLE,
        "504": _error("the query ran longer than READ_MAX_EXECUTION_SECONDS"),
    }


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _read(summary: str, parameters: list[Schema], ok: Schema) -> Schema:
    return {
        "summary": summary,
        "security": [{"apiKey": []}],
        "parameters": parameters,
        "responses": {"200": ok, **_read_errors()},
    }


def document() -> Schema:
    page = {
        "type": "object",
        "required": ["events", "next_cursor"],
        "properties": {
            "events": {"type": "array", "items": _EVENT},
            "next_cursor": {"type": ["string", "null"]},
        },
    }
    bucket = {
        "type": "object",
        "required": ["start", "count"],
        "properties": {
            "start": _TIME,
            "count": {"type": "integer"},
            "by": {"type": "object", "additionalProperties": {"type": "integer"}},
        },
    }
    counts = {
        "type": "object",
        "required": ["interval", "tz", "buckets"],
        "properties": {
            "interval": {"type": "string"},
            "tz": {"type": "string"},
            "buckets": {"type": "array", "items": bucket},
        },
    }
    limit = _query(
        "limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 100}, "events per page"
    )
    return {
        "openapi": "3.1.0",
        "info": {"title": "eventlog", "version": "1", "description": "Send events; read them back."},
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Context": _CONTEXT, "JsonValue": _JSON_VALUE},
        },
        "paths": {
            "/api/v1/events": {
                "get": _read(
                    "A page of events, newest first",
                    [*_FILTERS, _ORDER, limit, _CURSOR],
                    _json(page, "the page"),
                ),
                "post": {
                    "summary": "Send one event or an array of them: all are written, or none",
                    "security": [{"apiKey": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"oneOf": [_NEW_EVENT, {"type": "array", "items": _NEW_EVENT}]}
                            }
                        },
                    },
                    "responses": {
                        "202": _json(
                            {
                                "type": "object",
                                "required": ["accepted", "duplicates"],
                                "properties": {
                                    "accepted": {"type": "integer", "minimum": 0},
                                    "duplicates": {"type": "integer", "minimum": 0},
                                },
                            },
                            "written",
                        ),
                        "400": _error("not JSON, or invalid events (each problem listed)"),
                        "401": _UNAUTHORIZED,
                        "403": _error(
                            "the key lacks the ingest scope, or an event's environment is not the key's"
                        ),
                        "413": _error("the body is over INGEST_MAX_BYTES"),
                        "429": _TOO_MANY,
                        "503": _UNAVAILABLE,
                    },
                },
            },
            "/api/v1/events/{event_id}": {
                "get": {
                    **_read(
                        "One event",
                        [{"name": "event_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                        _json(_EVENT, "the event"),
                    ),
                    "responses": {
                        "200": _json(_EVENT, "the event"),
                        "404": _error("no such event the key may see"),
                        **_read_errors(),
                    },
                },
            },
            "/api/v1/events/counts": {
                "get": _read(
                    "Events counted per time bucket",
                    [
                        *_FILTERS,
                        _query(
                            "interval",
                            {
                                "type": "string",
                                "enum": ["minute", "hour", "day", "week", "month"],
                                "default": "hour",
                            },
                            "bucket size",
                        ),
                        _query(
                            "tz",
                            {"type": "string", "default": "UTC"},
                            "an IANA time zone: buckets start at its local times",
                        ),
                        _query(
                            "group_by",
                            {"type": "string", "enum": ["event_type", "environment"]},
                            "counts per group in `by`",
                        ),
                    ],
                    _json(counts, "every bucket of the range, empty ones as 0; at most 1000"),
                ),
            },
            "/api/v1/events/export": {
                "get": _read(
                    "Every matching event, streamed",
                    [
                        *_FILTERS,
                        _ORDER,
                        _CURSOR,
                        _query(
                            "format",
                            {"type": "string", "enum": ["ndjson", "csv"]},
                            "the body's format",
                            required=True,
                        ),
                    ],
                    {
                        "description": (
                            'NDJSON: events, then {"complete": true|false, "events": N[, "resume_cursor"]}; '
                            "or CSV with a header"
                        ),
                        "content": {
                            "application/x-ndjson": {"schema": {"type": "string"}},
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    },
                ),
            },
            "/api/v1/stats": {
                "get": {
                    "summary": "The outbox's figures",
                    "security": [{"apiKey": []}],
                    "responses": {
                        "200": _json(
                            {"type": "object", "properties": {"outbox": {"type": "object"}}}, "the figures"
                        ),
                        "401": _UNAUTHORIZED,
                    },
                },
            },
            "/api/v1/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")},
                },
            },
        },
    }
