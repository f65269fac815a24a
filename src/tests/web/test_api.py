"""The ingest API as served (tests/served.py): what a producer sends, what it gets back, what is
written."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from eventlog.access.api_keys import KeyCache, authenticate, create_api_key, hash_key
from eventlog.models import ApiKey, OutboxEvent
from eventlog.outbox.events import COPY_FROM_EVENTS
from tests.served import ServedClient, serving

pytestmark = pytest.mark.django_db(transaction=True)  # the web process reads what a test commits

URL = "/api/v1/events"


@pytest.fixture
def api_key() -> str:
    return create_api_key("tests")[1]


@pytest.fixture
def http(served: ServedClient) -> ServedClient:
    return served


def post(http: ServedClient, key: str | None, body: Any, content_type: str = "application/json") -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return http.post(URL, data=data, content_type=content_type, headers=headers)


def test_a_single_event_is_accepted_with_defaults(http: ServedClient, api_key: str) -> None:
    response = post(http, api_key, {"event_type": "user_created", "event_context": {"email": "a@b.c"}})
    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "duplicates": 0}
    row = OutboxEvent.objects.get()
    assert (row.event_type, row.environment, row.metadata_version, row.event_context) == (
        "user_created", "test", 1, {"email": "a@b.c"},
    )  # fmt: skip


def test_an_array_keeps_given_ids_timestamps_and_microseconds(http: ServedClient, api_key: str) -> None:
    event_id = str(uuid.uuid4())
    body = [
        {"event_type": "a", "event_id": event_id, "event_date_time": "2026-11-25T10:00:00.123456+02:00",
         "environment": "eu", "metadata_version": 0},
        {"event_type": "b", "event_date_time": "2026-11-25T08:00:00Z"},
        {"event_type": "c", "event_date_time": "2026-11-25t08:00:00z"},  # RFC 3339's lower case (fuzzing)
    ]  # fmt: skip
    assert post(http, api_key, body).json() == {"accepted": 3, "duplicates": 0}
    row = OutboxEvent.objects.get(event_id=event_id)
    assert row.event_date_time.isoformat() == "2026-11-25T08:00:00.123456+00:00"
    assert (row.environment, row.metadata_version) == ("eu", 0)


def test_a_metadata_version_written_as_a_whole_float_is_that_integer(
    http: ServedClient, api_key: str
) -> None:
    """JSON Schema's integer, which the OpenAPI document promises: 2.0 and 3e3 are integers."""
    body = b'[{"event_type": "a", "metadata_version": 2.0}, {"event_type": "b", "metadata_version": 3e3}]'
    assert post(http, api_key, body).status_code == 202
    assert sorted(OutboxEvent.objects.values_list("metadata_version", flat=True)) == [2, 3000]


# Without a run of 19 digits the body is read (and each context written back) by orjson; with one, by
# the standard library, as orjson would turn an integer beyond 64 bits into a float. One event is
# written by the INSERT statement, COPY_FROM_EVENTS of them by (binary) COPY.
@pytest.mark.parametrize("events", [1, COPY_FROM_EVENTS])
@pytest.mark.parametrize("big", [None, 123456789012345678901234567890, -(2**63) - 1, 2**64])
def test_a_context_is_stored_as_exactly_the_json_value_sent(
    http: ServedClient, api_key: str, big: int | None, events: int
) -> None:
    context = {
        "text": 'é " \\ \n \u2028 😀', "int": 123456789012345678, "float": 0.1, "tiny": 5e-324,
        "flags": [True, False, None], "nested": {"list": [1, "x", {"empty": {}}]},
        "big": big,
    }  # fmt: skip
    assert post(http, api_key, [{"event_type": "a", "event_context": context}] * events).status_code == 202
    assert [row.event_context for row in OutboxEvent.objects.all()] == [context] * events


def test_a_context_nested_deeper_than_orjson_writes_is_stored_too(http: ServedClient, api_key: str) -> None:
    body = b'{"event_type": "a", "event_context": ' + b'{"a": ' * 300 + b"1" + b"}" * 301
    assert post(http, api_key, body).status_code == 202
    context = OutboxEvent.objects.get().event_context
    for _ in range(300):
        context = context["a"]
    assert context == 1


def test_repeated_event_ids_are_counted_as_duplicates(http: ServedClient, api_key: str) -> None:
    event_id = str(uuid.uuid4())
    assert post(http, api_key, {"event_type": "a", "event_id": event_id}).json()["accepted"] == 1
    body = [{"event_type": "a", "event_id": event_id}, {"event_type": "b"}]
    assert post(http, api_key, body).json() == {"accepted": 1, "duplicates": 1}
    assert OutboxEvent.objects.count() == 2


@pytest.mark.parametrize("header", [None, "Bearer wrong-key", "Basic dXNlcjpwYXNz", "Bearer "])
def test_a_missing_or_wrong_key_is_401_and_writes_nothing(http: ServedClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = http.post(URL, data='{"event_type": "a"}', content_type="application/json", headers=headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert OutboxEvent.objects.count() == 0


def test_keys_are_stored_only_as_hashes(api_key: str) -> None:
    stored = ApiKey.objects.get(name="tests")
    assert api_key not in (stored.key_hash, stored.prefix)
    assert len(stored.key_hash) == 64


def test_events_sent_without_ids_get_distinct_time_ordered_ids(http: ServedClient, api_key: str) -> None:
    assert post(http, api_key, [{"event_type": "a"}] * 100).json() == {"accepted": 100, "duplicates": 0}
    ids = set(OutboxEvent.objects.values_list("event_id", flat=True))
    assert len(ids) == 100
    assert {event_id.version for event_id in ids} == {7}


def test_a_deleted_key_is_refused_once_its_cache_entry_expires(api_key: str) -> None:
    now = [0.0]
    cache = KeyCache(ttl_seconds=30.0, clock=lambda: now[0])
    header = f"Bearer {api_key}"
    assert authenticate(header, cache) is not None
    ApiKey.objects.all().delete()
    now[0] = 29.0
    assert authenticate(header, cache) is not None  # still trusted from the cache
    now[0] = 30.0
    assert authenticate(header, cache) is None


def test_an_unknown_key_is_not_cached() -> None:
    cache = KeyCache(ttl_seconds=30.0, clock=lambda: 0.0)
    assert authenticate("Bearer evl_not-yet", cache) is None
    ApiKey.objects.create(name="late", prefix="evl_not-yet", key_hash=hash_key("evl_not-yet"))
    assert authenticate("Bearer evl_not-yet", cache) is not None


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({}, "event_type"),
        ({"event_type": ""}, "event_type"),
        ({"event_type": 5}, "event_type"),
        ({"event_type": "x" * 256}, "event_type"),
        ({"event_type": "a", "event_id": "not-a-uuid"}, "event_id"),
        ({"event_type": "a", "event_date_time": "2026-11-25T10:00:00"}, "event_date_time"),
        ({"event_type": "a", "event_date_time": "yesterday"}, "event_date_time"),
        ({"event_type": "a", "event_date_time": "1066-10-14T09:00:00Z"}, "event_date_time"),
        ({"event_type": "a", "environment": 3}, "environment"),
        ({"event_type": "a", "event_context": [1, 2]}, "event_context"),
        ({"event_type": "a", "event_context": {"k": "\u0000"}}, "event_context"),
        ({"event_type": "a", "metadata_version": -1}, "metadata_version"),
        ({"event_type": "a", "metadata_version": 1.5}, "metadata_version"),
        ({"event_type": "a", "metadata_version": True}, "metadata_version"),
        ({"event_type": "a", "metadata_version": 2**64}, "metadata_version"),
        ({"event_type": "a", "colour": "red"}, "colour"),
    ],
)
def test_each_invalid_field_is_a_400_naming_index_and_field(
    http: ServedClient, api_key: str, event: dict[str, Any], field: str
) -> None:
    response = post(http, api_key, [{"event_type": "fine"}, event])
    assert response.status_code == 400
    problems = response.json()["problems"]
    assert {(p["index"], p["field"]) for p in problems} == {(1, field)}
    assert OutboxEvent.objects.count() == 0


def test_every_problem_of_every_event_is_listed(http: ServedClient, api_key: str) -> None:
    body = [{"event_type": ""}, {"event_type": "ok"}, {"metadata_version": -1, "extra": 1}, "text"]
    response = post(http, api_key, body)
    assert response.status_code == 400
    found = {(p["index"], p["field"]) for p in response.json()["problems"]}
    assert found == {(0, "event_type"), (2, "event_type"), (2, "extra"), (2, "metadata_version"), (3, "")}


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"NaN", "application/json"),
        (b'{"event_type": "a", "event_context": {"x": NaN}}', "application/json"),
        (b"\xff\xfe\x00", "application/json"),
        (b"[" * 100_000, "application/json"),
        (b'"just a string"', "application/json"),
        (b'{"event_type": "a"}', "text/plain"),
        (b"event_type=a", "application/x-www-form-urlencoded"),
    ],
)
def test_malformed_bodies_and_wrong_content_types_are_400(
    http: ServedClient, api_key: str, body: bytes, content_type: str
) -> None:
    response = post(http, api_key, body, content_type=content_type)
    assert response.status_code == 400
    assert "error" in response.json()
    assert OutboxEvent.objects.count() == 0


def test_more_events_than_the_limit_is_400(http: ServedClient, api_key: str) -> None:
    response = post(http, api_key, [{"event_type": "a"}] * 1001)
    assert response.status_code == 400
    assert "1000" in response.json()["error"]
    assert post(http, api_key, [{"event_type": "a"}] * 1000).status_code == 202


def test_a_body_over_the_byte_limit_is_413(http: ServedClient, api_key: str) -> None:
    big = {"event_type": "a", "event_context": {"blob": "x" * (5 * 1024 * 1024)}}
    assert post(http, api_key, big).status_code == 413
    assert OutboxEvent.objects.count() == 0


def test_limits_come_from_settings(api_key: str, tmp_path: Path) -> None:
    with serving(tmp_path, INGEST_MAX_EVENTS="2", INGEST_MAX_BYTES="100") as web:
        http = web.client()
        assert post(http, api_key, [{"event_type": "a"}] * 2).status_code == 202
        assert post(http, api_key, [{"event_type": "a"}] * 3).status_code == 400
        assert post(http, api_key, {"event_type": "a", "event_context": {"k": "v" * 100}}).status_code == 413


@pytest.mark.parametrize("method", ["put", "delete", "patch"])
def test_other_methods_are_405(http: ServedClient, api_key: str, method: str) -> None:
    response = http.request(method.upper(), URL, headers={"Authorization": f"Bearer {api_key}"})
    assert response.status_code == 405
    assert response["Allow"] == "GET, POST"  # GET reads events back (tests/web/test_read_api.py)


def test_stats_requires_a_key_and_counts_the_outbox(http: ServedClient, api_key: str) -> None:
    assert http.get("/api/v1/stats").status_code == 401
    empty = http.get("/api/v1/stats", headers={"Authorization": f"Bearer {api_key}"}).json()
    assert empty == {
        "outbox": {
            "pending": 0,
            "pending_is_estimate": False,
            "processed": 0,
            "failed": 0,
            "oldest_pending_age_seconds": None,
        }
    }
    post(http, api_key, [{"event_type": "a"}] * 3)
    outbox = http.get("/api/v1/stats", headers={"Authorization": f"Bearer {api_key}"}).json()["outbox"]
    assert (outbox["pending"], outbox["processed"], outbox["failed"]) == (3, 0, 0)
    assert 0 <= outbox["oldest_pending_age_seconds"] < 60


def test_an_unknown_api_path_is_a_json_404_and_any_other_django_s_page(http: ServedClient) -> None:
    api = http.get("/api/v1/nothing")
    assert (api.status_code, api.json()) == (404, {"error": "no such endpoint: /api/v1/nothing"})
    page = http.get("/nothing")
    assert page.status_code == 404
    assert page["Content-Type"].startswith("text/html")
