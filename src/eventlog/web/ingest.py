"""POST /api/v1/events without a web framework: what both of its shells (the Django view, and the
web server's fast path in core/fastpath.py) call, so the endpoint behaves the same through either."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from eventlog.access.api_keys import authenticate
from eventlog.access.rate_limits import RateLimiter
from eventlog.conf import app_settings
from eventlog.errors import InvalidEvents, InvalidRequest, RateLimited, RateLimitUnavailable
from eventlog.metrics import INGEST_REQUESTS
from eventlog.models import ApiKey
from eventlog.outbox.events import CheckedEvent, emit_events
from eventlog.web.validation import parse_body


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_events: int
    requests_per_minute: int = 0  # per key; 0: no limit

    @classmethod
    def from_settings(cls) -> Limits:
        config = app_settings()
        return cls(
            max_bytes=config.ingest_max_bytes,
            max_events=config.ingest_max_events,
            requests_per_minute=config.ingest_rate_limit_per_minute,
        )


def ingest(
    *, authorization: str | None, content_type: str, content_length: str | None, read: Callable[[int], bytes],
    limits: Limits, limiter: RateLimiter,
) -> Answer:  # fmt: skip
    """Accept one event or an array of events: all are written, or none (400 naming every problem).

    `content_type` is the media type alone, lower-case; `read(n)` reads at most n bytes of the body.
    The key must have the `ingest` scope (403), stay under its requests a minute (429), and, if it
    is bound to environments, send only those (403). Counts the answer
    (eventlog_ingest_requests_total). Database errors are raised.
    """
    answer = _answer(authorization, content_type, content_length, read, limits, limiter)
    _discard_rest(read)
    INGEST_REQUESTS.labels(status=str(answer.status)).inc()
    return answer


# What the answer did not need of a body is read and dropped before answering, up to this many bytes:
# a client that sends its whole body before it reads (Python's http.client, and so urllib and
# requests) got a broken pipe instead of a 401 or 413. Past the bound the server closes the
# connection, as production servers do.
DISCARD_BYTES = 64 << 20
_DISCARD_CHUNK = 1 << 16


def _discard_rest(read: Callable[[int], bytes]) -> None:
    left = DISCARD_BYTES
    while left > 0 and (chunk := read(min(_DISCARD_CHUNK, left))):
        left -= len(chunk)


def _refused(api_key: ApiKey, limits: Limits, limiter: RateLimiter) -> Answer | None:
    if not api_key.allows(ApiKey.Scope.INGEST):
        return Answer(403, {"error": "this API key may not send events (it lacks the ingest scope)"})
    try:
        limiter.check(ApiKey.Scope.INGEST, api_key.pk, limits.requests_per_minute)
    except RateLimited as exc:
        return Answer(429, {"error": str(exc)}, {"Retry-After": str(exc.retry_after)})
    except RateLimitUnavailable as exc:
        return Answer(503, {"error": str(exc)}, {"Retry-After": "1"})
    return None


def _outside_environments(api_key: ApiKey, events: list[CheckedEvent]) -> Answer | None:
    if not api_key.environments:
        return None
    default = app_settings().environment
    foreign = sorted({event.environment or default for event in events} - set(api_key.environments))
    if not foreign:
        return None
    return Answer(403, {"error": f"this API key may not send events of environment(s) {', '.join(foreign)}"})


def _answer(
    authorization: str | None, content_type: str, content_length: str | None, read: Callable[[int], bytes],
    limits: Limits, limiter: RateLimiter,
) -> Answer:  # fmt: skip
    api_key = authenticate(authorization)
    if api_key is None:
        return Answer(
            401, {"error": "missing or invalid API key"}, {"WWW-Authenticate": 'Bearer realm="eventlog"'}
        )
    refused = _refused(api_key, limits, limiter)
    if refused is not None:
        return refused
    if content_type != "application/json":
        return Answer(400, {"error": "Content-Type must be application/json"})
    too_large = Answer(413, {"error": f"body larger than {limits.max_bytes} bytes"})
    if content_length and content_length.isdigit() and int(content_length) > limits.max_bytes:
        return too_large
    body = read(limits.max_bytes + 1)
    if len(body) > limits.max_bytes:
        return too_large
    try:
        # emit_events writes all or nothing by itself (each statement it sends is a whole write, or is
        # undone entirely): no BEGIN and COMMIT round trips around it.
        events = parse_body(body, max_events=limits.max_events)
        foreign = _outside_environments(api_key, events)
        if foreign is not None:
            return foreign
        result = emit_events(events)
    except InvalidRequest as exc:
        return Answer(400, {"error": str(exc)})
    except InvalidEvents as exc:
        return Answer(400, {"error": "invalid events", "problems": [asdict(p) for p in exc.problems]})
    return Answer(202, {"accepted": result.accepted, "duplicates": result.duplicates})
