"""POST /api/v1/events without a web framework: what both of its shells (the Django view, and the
web server's fast path in eventlog/wsgi.py) call, so the endpoint behaves the same through either."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings

from eventlog.api_keys import authenticate
from eventlog.errors import InvalidEvents, InvalidRequest
from eventlog.events import emit_events
from eventlog.metrics import INGEST_REQUESTS
from eventlog.validation import parse_body


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_events: int

    @classmethod
    def from_settings(cls) -> Limits:
        config = settings.EVENTLOG
        return cls(max_bytes=config.ingest_max_bytes, max_events=config.ingest_max_events)


def ingest(
    *, authorization: str | None, content_type: str, content_length: str | None, read: Callable[[int], bytes],
    limits: Limits,
) -> Answer:  # fmt: skip
    """Accept one event or an array of events: all are written, or none (400 naming every problem).

    `content_type` is the media type alone, lower-case; `read(n)` reads at most n bytes of the body.
    Counts the answer (eventlog_ingest_requests_total). Database errors are raised.
    """
    answer = _answer(authorization, content_type, content_length, read, limits)
    INGEST_REQUESTS.labels(status=str(answer.status)).inc()
    return answer


def _answer(
    authorization: str | None, content_type: str, content_length: str | None, read: Callable[[int], bytes],
    limits: Limits,
) -> Answer:  # fmt: skip
    if authenticate(authorization) is None:
        return Answer(
            401, {"error": "missing or invalid API key"}, {"WWW-Authenticate": 'Bearer realm="eventlog"'}
        )
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
        result = emit_events(parse_body(body, max_events=limits.max_events))
    except InvalidRequest as exc:
        return Answer(400, {"error": str(exc)})
    except InvalidEvents as exc:
        return Answer(400, {"error": "invalid events", "problems": [asdict(p) for p in exc.problems]})
    return Answer(202, {"accepted": result.accepted, "duplicates": result.duplicates})
