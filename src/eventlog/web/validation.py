"""Parsing the HTTP API's JSON body into checked events, reporting every problem with its index."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from eventlog.errors import InvalidEvents, InvalidRequest, Problem
from eventlog.outbox.events import CheckedEvent, NewEvent, check, new_event_ids

FIELDS = frozenset(
    {"event_type", "event_id", "event_date_time", "environment", "event_context", "metadata_version"}
)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_body(body: bytes, max_events: int) -> list[CheckedEvent]:
    """Parse one event object or an array of them.

    Raises InvalidRequest when the body is not JSON, not an object or array, or holds more than
    `max_events` events; raises InvalidEvents listing every problem when any event is invalid.
    """
    payload, exact_with_orjson = load_json(body)
    if isinstance(payload, dict):
        payload = [payload]
    if not isinstance(payload, list):
        raise InvalidRequest("body must be an event object or an array of event objects")
    if len(payload) > max_events:
        raise InvalidRequest(f"at most {max_events} events per request, got {len(payload)}")
    events: list[CheckedEvent] = []
    problems: list[Problem] = []
    for index, (item, new_id) in enumerate(zip(payload, new_event_ids(len(payload)), strict=True)):
        event, item_problems = parse_event(item, index, new_id, exact_with_orjson)
        problems += item_problems
        if event is not None:
            events.append(event)
    if problems:
        raise InvalidEvents(problems)
    return events


# orjson reads an integer outside [-2**63, 2**64) as a float, silently. Such a number has at least 19
# digits, so a body with a run of 19 digits anywhere is read by the standard library, which keeps every
# integer exact (a long number inside a string costs that body the slower parser, nothing else).
# Found by mapping every digit to 0 and searching for nineteen 0s: ten times faster than a regex.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGIT_RUN = b"0" * 19


def load_json(body: bytes) -> tuple[Any, bool]:
    """The body's JSON value, and whether orjson read it (then every value in it is one orjson also
    writes back exactly). Raises InvalidRequest when the body is not JSON (NaN and Infinity are not)."""
    try:
        if _LONG_DIGIT_RUN not in body.translate(_DIGITS_TO_ZERO):
            return orjson.loads(body), True
        return json.loads(body, parse_constant=_reject_constant), False
    except (ValueError, RecursionError) as exc:  # orjson.JSONDecodeError is a ValueError
        raise InvalidRequest(f"body is not valid JSON: {exc}") from exc


def parse_event(
    item: Any, index: int, new_id: uuid.UUID, exact_with_orjson: bool = False
) -> tuple[CheckedEvent | None, list[Problem]]:
    """One JSON value as a checked event (None if it has problems) and its problems.

    Optional fields may be omitted or null; both mean the default (`new_id` for event_id).
    `exact_with_orjson`: the value came from orjson.loads, so orjson writes its context's JSON.
    """
    if not isinstance(item, dict):
        return None, [Problem(index, "", "must be a JSON object")]
    problems = [] if item.keys() <= FIELDS else [
        Problem(index, name, "is not a known field") for name in sorted(item.keys() - FIELDS)
    ]  # fmt: skip
    values: dict[str, Any] = {"event_type": "", "event_id": new_id}
    for name, raw in item.items():
        parse = _PARSERS.get(name)
        if parse is not None and raw is not None:
            try:
                values[name] = parse(raw)
            except (TypeError, ValueError, OverflowError) as exc:
                problems.append(Problem(index, name, str(exc)))
    if item.get("event_type") is None:
        problems.append(Problem(index, "event_type", "is required"))
    event = NewEvent(**values)
    text = _context_with_orjson(event) if exact_with_orjson and "event_context" in values else None
    # Check the fields that did parse too, so the caller hears of every problem at once.
    checked, check_problems = check(event, index, context_json=text)
    reported = {problem.field for problem in problems}
    problems += [problem for problem in check_problems if problem.field not in reported]
    return (None if problems else checked), problems


def _context_with_orjson(event: NewEvent) -> str | None:
    """The context's JSON from orjson: several times faster than the standard encoder, the same
    JSON value. None for a context nested deeper than orjson writes (254 levels): `check` then
    encodes it with the standard one."""
    try:
        return orjson.dumps(event.event_context).decode()
    except TypeError:  # orjson.JSONEncodeError: for values orjson.loads made, only the depth limit
        return None


def _string(raw: Any) -> str:
    if not isinstance(raw, str):
        raise TypeError("must be a string")
    return raw


def _uuid(raw: Any) -> uuid.UUID:
    try:
        return uuid.UUID(_string(raw))
    except ValueError:
        raise ValueError("must be a UUID such as 7c1e4f7e-3b9a-4c1e-9d53-2f1f0a6b8e21") from None


def _timestamp(raw: Any) -> datetime:
    try:
        value = datetime.fromisoformat(_string(raw).upper())  # RFC 3339 allows a lower-case t and z
    except ValueError:
        raise ValueError("must be an ISO 8601 timestamp such as 2026-11-25T10:00:00.123456+00:00") from None
    if value.utcoffset() is None:
        raise ValueError("must include a UTC offset (such as +00:00 or Z)")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("must be between 1900-01-01 and 2299-12-31 (UTC)") from None


def _object(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise TypeError("must be a JSON object")
    return raw


def _version(raw: Any) -> int:
    if isinstance(raw, float) and raw.is_integer():  # an integer to JSON (Schema): 2.0 and 2e3 are
        return int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise TypeError("must be an integer")
    return raw


_PARSERS = {
    "event_type": _string,
    "event_id": _uuid,
    "event_date_time": _timestamp,
    "environment": _string,
    "event_context": _object,
    "metadata_version": _version,
}
