"""The errors eventlog raises. Library errors are translated into these at one boundary each
(`clickhouse/event_log.py` for ClickHouse), always with `raise ... from exc`.

    EventlogError
    ├── InvalidRequest          a request that is not a list of events at all; nothing was written
    ├── InvalidEvents           events that can never be accepted; nothing was written
    ├── InvalidQuery            a read's parameters or cursor are unusable; nothing was read
    ├── RateLimited             a key asked more often than its limit allows
    ├── RateLimitUnavailable    Redis could not count a request, which is refused rather than let through
    └── ClickHouseError         ClickHouse did not take a batch (the outbox is unchanged) or answer a read
        ├── ClickHouseUnavailable   cannot reach it, or it refused for reasons outside the data
        │   └── RetryPending        ... and another relay run's retry is already scheduled
        ├── ClickHouseRejected      it refused the data itself (a poison event somewhere)
        └── ReadLimitExceeded       a read went over its time, memory or result limit
"""

from __future__ import annotations

from dataclasses import dataclass


class EventlogError(Exception):
    """Base of every error eventlog raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One reason an event was refused: `index` in the request, the field, and what is wrong."""

    index: int
    field: str
    message: str


class InvalidRequest(EventlogError):
    """The request as a whole is unusable (not JSON, wrong shape, too many events)."""


class InvalidEvents(EventlogError):
    """The input has at least one invalid event; `problems` lists every one found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in the events: {problems[0].message}")


class InvalidQuery(EventlogError):
    """A read's parameters are unusable (a bad filter, time, limit or cursor); the message says which."""


class RateLimited(EventlogError):
    """A key went over its requests per minute; it may ask again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class RateLimitUnavailable(EventlogError):
    """Redis could not count a request: it is refused rather than let through uncounted."""


class ClickHouseError(EventlogError):
    """ClickHouse did not acknowledge an operation. `code` is ClickHouse's error code when known;
    the relay adds the batch it was delivering (`batch_id`, `row_count`) for error reports."""

    def __init__(self, message: str, code: int | None = None) -> None:
        self.code = code
        self.batch_id: int | None = None
        self.row_count: int | None = None
        super().__init__(message)


class ClickHouseUnavailable(ClickHouseError):
    """ClickHouse is unreachable or failing for reasons unrelated to the rows sent: retry later."""


class ClickHouseRejected(ClickHouseError):
    """ClickHouse refused the rows themselves: resending them unchanged will fail again."""


class RetryPending(ClickHouseUnavailable):
    """ClickHouse was unavailable to a run started by beat while another run's failure had already
    closed the backoff gate: that run's retry is scheduled, so this one must not schedule its own."""


class ReadLimitExceeded(ClickHouseError):
    """ClickHouse stopped a read at one of its limits (time, memory, rows): nothing of it is used."""
