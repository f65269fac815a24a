"""The cursor of a page: where the next page starts, and which filters it belongs to.

Pages follow ClickHouse's sorting key, (event_date_time, event_type), with event_id last, so every
event has one place in the order however many share a time and type. A cursor names the last event
of a page; the next page is the events strictly after it (keyset paging, never OFFSET), so new
events arriving between pages cannot shift what the next page holds, and a deep page costs what the
first does. The cursor carries the filters with their window resolved (a default `to` of "now"
stays the first page's now) and is signed with the project's secret key: altered, or sent with
other filters or another order, it is refused.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from django.core.signing import BadSignature, Signer

from eventlog.errors import InvalidQuery
from eventlog.reading.filters import ContextMatch, Filters, Params, from_micros, parse_filters, single

Order = Literal["asc", "desc"]
_SALT = "eventlog.reading.cursor"
_VERSION = 1


@dataclass(frozen=True)
class Position:
    """An event's place in the order: its time (microseconds since the epoch), type and id."""

    micros: int
    event_type: str
    event_id: str


@dataclass(frozen=True)
class Cursor:
    filters: Filters
    order: Order
    after: Position


def encode_cursor(cursor: Cursor, secret: str) -> str:
    position = cursor.after
    payload = {
        "v": _VERSION,
        "o": cursor.order,
        "f": cursor.filters.canonical(),
        "p": [position.micros, position.event_type, position.event_id],
    }
    return Signer(key=secret, salt=_SALT, fallback_keys=[]).sign_object(payload, compress=True)


def decode_cursor(token: str, secret: str) -> Cursor:
    """The cursor `token` stands for; InvalidQuery when it was not made here, unchanged."""
    try:
        payload = Signer(key=secret, salt=_SALT, fallback_keys=[]).unsign_object(token)
        return _cursor(payload)
    except (BadSignature, ValueError, TypeError, KeyError, IndexError):
        raise InvalidQuery("cursor is not one this server gave, or was altered") from None


def _cursor(payload: Any) -> Cursor:
    if payload["v"] != _VERSION or payload["o"] not in ("asc", "desc"):
        raise ValueError("unknown cursor version or order")
    canonical = payload["f"]
    filters = Filters(
        start=from_micros(int(canonical["from"])),
        end=from_micros(int(canonical["to"])),
        event_types=tuple(str(value) for value in canonical["event_type"]),
        environments=tuple(str(value) for value in canonical["environment"]),
        context=tuple(
            ContextMatch(tuple(str(key) for key in path), str(value)) for path, value in canonical["context"]
        ),
    )
    micros, event_type, event_id = payload["p"]
    return Cursor(filters, payload["o"], Position(int(micros), str(event_type), str(uuid.UUID(event_id))))


def resume(params: Params, order: Order | None, secret: str, now: datetime) -> tuple[Filters, Cursor | None]:
    """The filters a request selects, and its cursor if it sent one. A cursor continues the
    request that made it: the same filters (a default window resolves as on its first page) and
    the same `order` (None: whichever order the cursor goes in); anything else is InvalidQuery."""
    token = single(params, "cursor")
    if token is None:
        return parse_filters(params, now), None
    cursor = decode_cursor(token, secret)
    filters = parse_filters(params, now=cursor.filters.end)
    if filters != cursor.filters or order not in (None, cursor.order):
        raise InvalidQuery(
            "cursor belongs to other filters or another order: repeat the first page's parameters "
            "with it, or start again without a cursor"
        )
    return cursor.filters, cursor
