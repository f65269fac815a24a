"""The HTTP endpoints (the producer API, metrics, health, the status page): thin shells that parse,
authenticate, call the core and map errors."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import asdict
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from prometheus_client import CONTENT_TYPE_LATEST

from eventlog.api_keys import authenticate
from eventlog.errors import InvalidEvents, InvalidRequest
from eventlog.events import emit_events
from eventlog.health import readiness
from eventlog.metrics import INGEST_REQUESTS, web_metrics
from eventlog.runtime import redis_client
from eventlog.stats import outbox_stats
from eventlog.status import status_snapshot
from eventlog.validation import parse_body

View = Callable[[HttpRequest], HttpResponse]
STATUS_REFRESH_SECONDS = 5


def error(status: int, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def api_key_required(view: View) -> View:
    @wraps(view)
    def wrapper(request: HttpRequest) -> HttpResponse:
        if authenticate(request.headers.get("Authorization")) is None:
            response = error(401, "missing or invalid API key")
            response["WWW-Authenticate"] = 'Bearer realm="eventlog"'
            return response
        return view(request)

    return wrapper


def counted(view: View) -> View:
    """Count the view's answers by status (eventlog_ingest_requests_total)."""

    @wraps(view)
    def wrapper(request: HttpRequest) -> HttpResponse:
        response = view(request)
        INGEST_REQUESTS.labels(status=str(response.status_code)).inc()
        return response

    return wrapper


@csrf_exempt
@counted
@require_POST
@api_key_required
def events(request: HttpRequest) -> HttpResponse:
    """Accept one event or an array of events: all are written, or none (400 with every problem)."""
    config = settings.EVENTLOG
    if request.content_type != "application/json":
        return error(400, "Content-Type must be application/json")
    declared = request.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > config.ingest_max_bytes:
        return error(413, f"body larger than {config.ingest_max_bytes} bytes")
    body = request.read(config.ingest_max_bytes + 1)
    if len(body) > config.ingest_max_bytes:
        return error(413, f"body larger than {config.ingest_max_bytes} bytes")
    try:
        new_events = parse_body(body, max_events=config.ingest_max_events)
        # emit_events writes all or nothing by itself (each statement it sends is a whole write, or is
        # undone entirely): no BEGIN and COMMIT round trips around it.
        result = emit_events(new_events)
    except InvalidRequest as exc:
        return error(400, str(exc))
    except InvalidEvents as exc:
        return error(400, "invalid events", problems=[asdict(p) for p in exc.problems])
    return JsonResponse({"accepted": result.accepted, "duplicates": result.duplicates}, status=202)


@require_GET
@api_key_required
def stats(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"outbox": outbox_stats()})


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition (eventlog/metrics.py); behind METRICS_TOKEN when it is set."""
    token = settings.EVENTLOG.metrics_token
    given = request.headers.get("Authorization", "")
    if token and not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return error(401, "missing or invalid metrics token")
    return HttpResponse(web_metrics(), content_type=CONTENT_TYPE_LATEST)


@require_GET
@staff_member_required
def status_page(request: HttpRequest) -> HttpResponse:
    """The status page for a person (staff only: dead letters' errors can quote event data)."""
    context = {
        "status": status_snapshot(),
        "now": timezone.now(),
        "refresh_seconds": STATUS_REFRESH_SECONDS,
        "lag_alert_seconds": settings.EVENTLOG.ready_max_lag_seconds,
    }
    return render(request, "eventlog/status.html", context)


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """The process is up and serving; touches nothing else."""
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> HttpResponse:
    """200 when PostgreSQL and Redis answer, a worker reached ClickHouse lately and the relay's lag
    is under READY_MAX_LAG_SECONDS; otherwise 503 with the reasons."""
    result = readiness(redis_client(), settings.EVENTLOG.ready_max_lag_seconds)
    body = {"ready": result.ready, "reasons": result.reasons, "checks": result.checks}
    return JsonResponse(body, status=200 if result.ready else 503)
