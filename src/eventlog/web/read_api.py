"""The read API (GET /api/v1/events, /events/{id}, /events/counts, /events/export): thin shells
that authenticate a read key, count it against its rate limit, parse the parameters and call the
read side (eventlog/reading). Every error is a JSON answer: 400 bad parameters or cursor, 401 no
key, 403 a key without the read scope, 404 no such event, 422 or 504 over a read limit, 429 over the
rate limit (with Retry-After), 503 ClickHouse or Redis unavailable."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any, cast

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from eventlog.access.api_keys import authenticate
from eventlog.conf import app_settings
from eventlog.errors import (
    ClickHouseError,
    InvalidQuery,
    RateLimited,
    RateLimitUnavailable,
    ReadLimitExceeded,
)
from eventlog.metrics import READ_REQUESTS
from eventlog.models import ApiKey
from eventlog.reading.counts import INTERVALS, GroupBy, count_events, time_zone
from eventlog.reading.cursor import resume
from eventlog.reading.events import DEFAULT_PAGE, MAX_PAGE, ExportFormat, export, get_event, list_events
from eventlog.reading.filters import (
    FILTER_NAMES,
    Access,
    Params,
    check_names,
    parse_limit,
    parse_order,
    single,
)
from eventlog.runtime import event_log_reader, rate_limiter

ReadView = Callable[..., HttpResponseBase]
LIST_PARAMS = (*FILTER_NAMES, "order", "limit", "cursor")
COUNT_PARAMS = (*FILTER_NAMES, "interval", "tz", "group_by")
EXPORT_PARAMS = (*FILTER_NAMES, "order", "cursor", "format")


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def read_endpoint(name: str) -> Callable[[ReadView], Callable[..., HttpResponseBase]]:
    """A GET endpoint for keys with the read scope; the view gets the key's Access and the
    request's parameters, and its errors become JSON answers here."""

    def decorate(view: ReadView) -> Callable[..., HttpResponseBase]:
        @wraps(view)
        def wrapper(request: HttpRequest, **kwargs: Any) -> HttpResponseBase:
            response = _answer(view, request, kwargs)
            response["Cache-Control"] = "private, no-store"
            READ_REQUESTS.labels(endpoint=name, status=str(response.status_code)).inc()
            return response

        return csrf_exempt(wrapper)  # a key in a header, no cookie: eventlog/web/views.py says why

    return decorate


def _answer(view: ReadView, request: HttpRequest, kwargs: dict[str, Any]) -> HttpResponseBase:
    if request.method != "GET":
        response = error(405, f"{request.method} is not allowed here")
        response["Allow"] = "GET"
        return response
    api_key = authenticate(request.headers.get("Authorization"))
    if api_key is None:
        return error(401, "missing or invalid API key", {"WWW-Authenticate": 'Bearer realm="eventlog"'})
    if not api_key.allows(ApiKey.Scope.READ):
        return error(403, "this API key may not read events (it lacks the read scope)")
    try:
        rate_limiter().check(ApiKey.Scope.READ, api_key.pk, app_settings().read_rate_limit_per_minute)
        access = Access(frozenset(api_key.environments) if api_key.environments else None)
        return view(request, access, dict(request.GET.lists()), **kwargs)
    except RateLimited as exc:
        return error(429, str(exc), {"Retry-After": str(exc.retry_after)})
    except RateLimitUnavailable as exc:
        return error(503, str(exc), {"Retry-After": "1"})
    except InvalidQuery as exc:
        return error(400, str(exc))
    except ReadLimitExceeded as exc:
        return error(504 if exc.code == 159 else 422, str(exc))
    except ClickHouseError as exc:
        return error(503, f"ClickHouse could not answer: {exc}", {"Retry-After": "1"})


@read_endpoint("list")
def list_view(request: HttpRequest, access: Access, params: Params) -> HttpResponse:
    check_names(params, LIST_PARAMS)
    order = parse_order(params)
    limit = parse_limit(params, DEFAULT_PAGE, MAX_PAGE)
    secret = settings.SECRET_KEY
    filters, cursor = resume(params, order, secret, timezone.now())
    page = list_events(
        event_log_reader(), filters, access, order=order, limit=limit, cursor=cursor, secret=secret
    )
    return JsonResponse({"events": page.events, "next_cursor": page.next_cursor})


@read_endpoint("event")
def event_view(request: HttpRequest, access: Access, params: Params, event_id: str) -> HttpResponse:
    check_names(params, ())
    event = get_event(event_log_reader(), event_id, access)
    if event is None:
        return error(404, f"no event {event_id}")
    return JsonResponse(event)


@read_endpoint("counts")
def counts_view(request: HttpRequest, access: Access, params: Params) -> HttpResponse:
    check_names(params, COUNT_PARAMS)
    interval = single(params, "interval", "hour")
    if interval not in INTERVALS:
        raise InvalidQuery(f"interval must be one of {', '.join(INTERVALS)}, got {interval!r}")
    group_by = single(params, "group_by")
    if group_by not in (None, "event_type", "environment"):
        raise InvalidQuery(f"group_by must be event_type or environment, got {group_by!r}")
    tz = time_zone(single(params, "tz", "UTC"))
    filters, _ = resume(params, "desc", settings.SECRET_KEY, timezone.now())
    buckets = count_events(
        event_log_reader(), filters, access,
        interval=interval, tz=tz, group_by=cast(GroupBy | None, group_by),
    )  # fmt: skip
    answered = []
    for bucket in buckets:
        item: dict[str, Any] = {"start": _local_time(bucket.start), "count": bucket.count}
        if group_by:
            item["by"] = bucket.by
        answered.append(item)
    return JsonResponse({"interval": interval, "tz": tz.key, "buckets": answered})


def _local_time(moment: datetime) -> str:
    text = moment.isoformat(timespec="seconds")
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


@read_endpoint("export")
def export_view(request: HttpRequest, access: Access, params: Params) -> StreamingHttpResponse:
    check_names(params, EXPORT_PARAMS)
    requested = single(params, "format")
    if requested not in ("ndjson", "csv"):
        raise InvalidQuery("format is required: ndjson or csv")
    fmt: ExportFormat = "ndjson" if requested == "ndjson" else "csv"
    order = parse_order(params)
    secret = settings.SECRET_KEY
    filters, cursor = resume(params, order, secret, timezone.now())
    stream = export(event_log_reader(), filters, access, order=order, fmt=fmt, cursor=cursor, secret=secret)
    content_type = "application/x-ndjson" if fmt == "ndjson" else "text/csv; charset=utf-8"
    response = StreamingHttpResponse(stream, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="events.{fmt}"'
    return response
