"""A request as the web server hands it to the WSGI application (PEP 3333's environ)."""

from __future__ import annotations

import io
from typing import Any


def wsgi_request(
    body: bytes = b"", method: str = "POST", path: str = "/api/v1/events", **environ: str
) -> dict[str, Any]:
    """A request from 127.0.0.1:8000 over plain HTTP, with a JSON body; `environ` adds or replaces
    variables, and an empty value removes one (CONTENT_LENGTH="" for a body without a length)."""
    request: dict[str, Any] = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000",
        "HTTP_HOST": "127.0.0.1:8000", "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http",
        "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": "application/json", **environ,
    }  # fmt: skip
    return {name: value for name, value in request.items() if value != ""}
