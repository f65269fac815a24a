"""The HTTP endpoints (the producer API, metrics, health, the status page): thin shells that parse,
authenticate, call the core and map errors.

The API's endpoints, the metrics and the probes are CSRF-exempt: they take no cookie, only a key in
a header, so there is no session for a forged request to ride on, and a POST to a read endpoint
gets its 405 (not Django's CSRF page). The staff pages keep Django's CSRF protection."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.utils import timezone
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods
from prometheus_client import CONTENT_TYPE_LATEST

from eventlog.access.api_keys import authenticate
from eventlog.conf import app_settings
from eventlog.monitoring.health import readiness
from eventlog.monitoring.metrics_endpoints import web_metrics
from eventlog.monitoring.stats import outbox_stats
from eventlog.monitoring.status import status_snapshot
from eventlog.runtime import event_log_writer, rate_limiter, redis_client
from eventlog.web.ingest import Limits, ingest
from eventlog.web.openapi import document
from eventlog.web.read_api import list_view

View = Callable[[HttpRequest], HttpResponse]
API_PATHS = "/api/"
STATUS_REFRESH_SECONDS = 5


def error(status: int, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: on the API's paths the JSON error every other answer of the API is (and the fast
    path's 500, core/fastpath.py); Django's own page elsewhere."""
    if request.path.startswith(API_PATHS):
        return error(500, "internal error")
    return defaults.server_error(request)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: a JSON error on the API's paths, Django's own page elsewhere."""
    if request.path.startswith(API_PATHS):
        return error(404, f"no such endpoint: {request.path}")
    return defaults.page_not_found(request, exception)


def api_key_required(view: View) -> View:
    @wraps(view)
    def wrapper(request: HttpRequest) -> HttpResponse:
        if authenticate(request.headers.get("Authorization")) is None:
            response = error(401, "missing or invalid API key")
            response["WWW-Authenticate"] = 'Bearer realm="eventlog"'
            return response
        return view(request)

    return wrapper


@csrf_exempt
@require_http_methods(["GET", "POST"])
def events(request: HttpRequest) -> HttpResponseBase:
    """GET /api/v1/events lists events (eventlog/web/read_api.py). POST sends them, through Django
    (eventlog/web/ingest.py); the web server answers a POST on its fast path (core/fastpath.py)
    before Django, the same way."""
    if request.method == "GET":
        return list_view(request)
    answer = ingest(
        authorization=request.headers.get("Authorization"),
        content_type=request.content_type or "",
        content_length=request.headers.get("Content-Length"),
        read=request.read,
        limits=Limits.from_settings(),
        limiter=rate_limiter(),
    )
    response = JsonResponse(answer.body, status=answer.status)
    for name, value in answer.headers.items():
        response[name] = value
    return response


@csrf_exempt
@require_GET
@api_key_required
def stats(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"outbox": outbox_stats()})


@csrf_exempt
@require_GET
def openapi(request: HttpRequest) -> HttpResponse:
    """The HTTP API's OpenAPI document (eventlog/web/openapi.py); public, as the API's shape is no secret."""
    return JsonResponse(document())


@csrf_exempt
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition (eventlog.monitoring.metrics_endpoints); behind METRICS_TOKEN when set."""
    token = app_settings().metrics_token
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
        "lag_alert_seconds": app_settings().ready_max_lag_seconds,
    }
    return render(request, "eventlog/status.html", context)


@csrf_exempt
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """The process is up and serving; touches nothing else."""
    return JsonResponse({"status": "ok"})


@csrf_exempt
@require_GET
def readyz(request: HttpRequest) -> HttpResponse:
    """200 when PostgreSQL, Redis and ClickHouse answer and the relay's lag is under
    READY_MAX_LAG_SECONDS; otherwise 503 with the reasons."""
    result = readiness(redis_client(), event_log_writer(), app_settings().ready_max_lag_seconds)
    body = {"ready": result.ready, "reasons": result.reasons, "checks": result.checks}
    return JsonResponse(body, status=200 if result.ready else 503)
