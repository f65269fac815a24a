"""The OpenAPI document as served: valid OpenAPI 3.1, and the same paths and methods as the URLs the
app serves."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from django.urls import URLResolver, get_resolver
from openapi_spec_validator import validate

from tests.served import ServedClient

pytestmark = pytest.mark.django_db(transaction=True)  # the web process reads what a test commits


def served_api_paths() -> set[str]:
    """The app's /api/ URL patterns, written as OpenAPI paths (`<str:event_id>` as `{event_id}`)."""
    return {
        "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
        for route in routes(get_resolver())
        if route.startswith("api/")
    }


def routes(resolver: URLResolver, prefix: str = "") -> Iterator[str]:
    """Every route the resolver serves, included ones with their prefix."""
    for pattern in resolver.url_patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from routes(pattern, route)
        else:
            yield route


def test_the_document_is_valid_openapi_and_describes_every_served_api_path(served: ServedClient) -> None:
    response = served.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    validate(document)
    assert set(document["paths"]) == served_api_paths()


def test_each_documented_method_is_served_and_others_are_not(served: ServedClient) -> None:
    document = served.get("/api/v1/openapi.json").json()
    for path, operations in document["paths"].items():
        url = path.replace("{event_id}", "6f1c1f4e-3b9a-4c1e-9d53-2f1f0a6b8e21")
        for method in ("get", "post", "put", "delete"):
            status = served.request(method.upper(), url).status_code
            if method in operations:
                assert status != 405, (method, path)
            else:
                assert status == 405, (method, path, status)
