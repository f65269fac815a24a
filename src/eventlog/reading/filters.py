"""A read's parameters, parsed and checked before anything reaches ClickHouse.

Every read (a page, counts, an export) selects events with the same filters: a time window
(`from` inclusive, `to` exclusive), any of some event types, any of some environments, and up to
five `context.<path>=<value>` matches, all of which must hold. Parsing raises InvalidQuery naming
the parameter; the values themselves only ever reach SQL as bound parameters (`where`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, overload

from eventlog.errors import InvalidQuery

DEFAULT_WINDOW = timedelta(hours=24)
MAX_CONTEXT_MATCHES = 5
MAX_VALUES = 50  # of event_type, of environment
MAX_VALUE_CHARS = 255  # as long as the outbox lets an event type or environment be
MAX_CONTEXT_CHARS = 1000  # a context path, or the value it must equal
# DateTime64(6)'s range, which every stored event is inside.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2300, 1, 1, tzinfo=UTC)
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})")
FILTER_NAMES = ("from", "to", "event_type", "environment")
CONTEXT_PREFIX = "context."

Params = Mapping[str, Sequence[str]]


@dataclass(frozen=True)
class ContextMatch:
    """`event_context` at `path` (keys from the top) is a JSON string equal to `value`, or a
    number or boolean whose JSON text is `value`."""

    path: tuple[str, ...]
    value: str


@dataclass(frozen=True)
class Filters:
    """Which events a read selects. Types, environments and matches are sorted, so equal filters
    compare equal however the request ordered them; an empty tuple means any."""

    start: datetime  # inclusive, UTC
    end: datetime  # exclusive, UTC
    event_types: tuple[str, ...] = ()
    environments: tuple[str, ...] = ()
    context: tuple[ContextMatch, ...] = ()

    def canonical(self) -> dict[str, Any]:
        """The filters as plain JSON values, for a cursor to carry and compare."""
        return {
            "from": micros(self.start),
            "to": micros(self.end),
            "event_type": list(self.event_types),
            "environment": list(self.environments),
            "context": [[list(match.path), match.value] for match in self.context],
        }


@dataclass(frozen=True)
class Access:
    """What a reader may see: every environment (None) or only these."""

    environments: frozenset[str] | None = None

    def restrict(self, filters: Filters) -> Filters | None:
        """The filters narrowed to what this reader may see; None when that is nothing at all."""
        if self.environments is None:
            return filters
        allowed = set(self.environments)
        wanted = set(filters.environments) & allowed if filters.environments else allowed
        if not wanted:
            return None
        return replace(filters, environments=tuple(sorted(wanted)))


EVERYTHING = Access()


def micros(moment: datetime) -> int:
    """Microseconds since the epoch, exactly (no float on the way)."""
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value)


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds and Z, as every answer gives a time."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(name: str, raw: str) -> datetime:
    """An RFC 3339 time with an explicit offset (Z or +hh:mm), as UTC; InvalidQuery otherwise."""
    if not _RFC3339.fullmatch(raw):
        hint = " (a + in a query string must be sent as %2B)" if " " in raw.strip() else ""
        raise InvalidQuery(
            f"{name} must be an RFC 3339 time with an offset, such as 2026-11-25T10:00:00Z or "
            f"2026-11-25T11:00:00.5+01:00; got {raw!r}{hint}"
        )
    try:
        moment = datetime.fromisoformat(raw.upper().replace("Z", "+00:00")).astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidQuery(f"{name} is not a valid time: {raw!r}") from None
    if not EARLIEST <= moment < LATEST:
        raise InvalidQuery(f"{name} must be between 1900-01-01 and 2299-12-31 (UTC), got {raw!r}")
    return moment


@overload
def single(params: Params, name: str) -> str | None: ...
@overload
def single(params: Params, name: str, default: str) -> str: ...
def single(params: Params, name: str, default: str | None = None) -> str | None:
    """The parameter's one value, or `default` when it is not given (given empty, it is "": a
    value each parser refuses as it refuses any other it does not know)."""
    values = params.get(name, ())
    if len(values) > 1:
        raise InvalidQuery(f"{name} may be given once, got it {len(values)} times")
    return values[0] if values else default


def check_names(params: Params, allowed: Iterable[str]) -> None:
    """Refuse any parameter the endpoint does not take, so a misspelled filter is never ignored."""
    known = set(allowed)
    unknown = sorted(name for name in params if name not in known and not name.startswith(CONTEXT_PREFIX))
    if unknown:
        raise InvalidQuery(
            f"unknown parameter(s): {', '.join(unknown)}; this endpoint takes {', '.join(sorted(known))}"
        )


def parse_order(params: Params) -> Literal["asc", "desc"]:
    order = single(params, "order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidQuery(f"order must be asc or desc, got {order!r}")
    return "asc" if order == "asc" else "desc"


def parse_limit(params: Params, default: int, maximum: int) -> int:
    raw = single(params, "limit")
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= maximum:
        raise InvalidQuery(f"limit must be an integer from 1 to {maximum}, got {raw!r}")
    return int(raw)


def parse_filters(params: Params, now: datetime) -> Filters:
    """The filters of a request's parameters (the list, counts and export share them)."""
    raw_end, raw_start = single(params, "to"), single(params, "from")
    end = parse_time("to", raw_end) if raw_end is not None else now
    start = parse_time("from", raw_start) if raw_start is not None else end - DEFAULT_WINDOW
    if start >= end:
        raise InvalidQuery("from must be earlier than to")
    return Filters(
        start=start,
        end=end,
        event_types=_values(params, "event_type"),
        environments=_values(params, "environment"),
        context=_context_matches(params),
    )


def _values(params: Params, name: str) -> tuple[str, ...]:
    values = params.get(name, ())
    if len(values) > MAX_VALUES:
        raise InvalidQuery(f"{name} may be given at most {MAX_VALUES} times")
    for value in values:
        if not value or len(value) > MAX_VALUE_CHARS:
            raise InvalidQuery(f"each {name} must be 1 to {MAX_VALUE_CHARS} characters")
    return tuple(sorted(set(values)))


def _context_matches(params: Params) -> tuple[ContextMatch, ...]:
    matches = []
    for name, values in params.items():
        if not name.startswith(CONTEXT_PREFIX):
            continue
        path = name[len(CONTEXT_PREFIX) :]
        keys = tuple(path.split("."))
        if not path or len(path) > MAX_CONTEXT_CHARS or not all(keys):
            raise InvalidQuery(f"{name}: a context path is keys joined by dots, such as context.order.id")
        for value in values:
            if len(value) > MAX_CONTEXT_CHARS:
                raise InvalidQuery(f"{name}: a value may be at most {MAX_CONTEXT_CHARS} characters")
            matches.append(ContextMatch(keys, value))
    if len(matches) > MAX_CONTEXT_MATCHES:
        raise InvalidQuery(
            f"at most {MAX_CONTEXT_MATCHES} context.<path>=<value> filters, got {len(matches)}"
        )
    return tuple(sorted(set(matches), key=lambda match: (match.path, match.value)))


# A context value matches a JSON string equal to it, or a number or boolean written as it.
_CONTEXT_MATCH = (
    "multiIf(JSONType(event_context{keys}) = 'String', "
    "JSONExtractString(event_context{keys}) = {{{value}:String}}, "
    "JSONType(event_context{keys}) IN ('Int64', 'UInt64', 'Double', 'Bool'), "
    "JSONExtractRaw(event_context{keys}) = {{{value}:String}}, false)"
)


def where(filters: Filters) -> tuple[list[str], dict[str, Any]]:
    """SQL conditions selecting `filters`' events, and their bound parameters: no value of a
    request is ever written into the SQL itself."""
    conditions = [
        "event_date_time >= fromUnixTimestamp64Micro({start:Int64}, 'UTC')",
        "event_date_time < fromUnixTimestamp64Micro({end:Int64}, 'UTC')",
    ]
    parameters: dict[str, Any] = {"start": micros(filters.start), "end": micros(filters.end)}
    if filters.event_types:
        conditions.append("event_type IN {event_types:Array(String)}")
        parameters["event_types"] = list(filters.event_types)
    if filters.environments:
        conditions.append("environment IN {environments:Array(String)}")
        parameters["environments"] = list(filters.environments)
    for index, match in enumerate(filters.context):
        keys = ""
        for depth, key in enumerate(match.path):
            parameters[f"c{index}_{depth}"] = key
            keys += f", {{c{index}_{depth}:String}}"
        parameters[f"c{index}"] = match.value
        conditions.append(_CONTEXT_MATCH.format(keys=keys, value=f"c{index}"))
    return conditions, parameters
