"""Raw HTTP requests to the run's embedded ClickHouse server, as curl would send them."""

from __future__ import annotations

import base64
import http.client
from urllib.parse import urlencode, urlsplit

from django.conf import settings


def server() -> tuple[str, int, str, str]:
    parts = urlsplit(settings.EVENTLOG["CLICKHOUSE_URL"])
    return parts.hostname or "", parts.port or 0, parts.username or "", parts.password or ""


def request(
    params: dict[str, str] | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    *,
    method: str | None = None,
    path: str = "/",
    auth: bool = True,
) -> tuple[int, dict[str, str], bytes]:
    host, port, user, password = server()
    connection = http.client.HTTPConnection(host, port, timeout=30)
    all_headers = dict(headers or {})
    if auth:
        all_headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    query = f"?{urlencode(params)}" if params else ""
    connection.request(method or ("POST" if body is not None else "GET"), path + query, body, all_headers)
    response = connection.getresponse()
    answer = (response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    connection.close()
    return answer


def sql(query: str, **params: str) -> bytes:
    status, _, body = request({"query": query, **params}, method="POST")
    assert status == 200, body
    return body
