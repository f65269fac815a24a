"""The read API as served (tests/served.py): keys and scopes, parameters, cursors, counts, exports,
limits and the errors of each, on the run's ClickHouse."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from clickhouse_connect.driver.client import Client

from eventlog.access.api_keys import create_api_key
from eventlog.clickhouse.event_log import EventLogWriter
from eventlog.runtime import rate_limiter
from tests.reading.conftest import DAY, Stored, spread, store
from tests.served import ServedClient, ServedResponse, serving

pytestmark = pytest.mark.django_db(transaction=True)  # the web process reads what a test commits

WINDOW = {"from": "2026-11-19T00:00:00Z", "to": "2026-11-21T00:00:00Z"}


@pytest.fixture(autouse=True)
def empty_event_log(clickhouse: Client) -> None:
    """An empty event_log, and no request counted yet."""
    redis = rate_limiter().redis
    redis.delete(*redis.keys("eventlog:rate:*") or ["-"])


def read_key(**options: Any) -> str:
    return create_api_key(f"reader-{uuid.uuid4()}", scopes=("read",), **options)[1]


def get(http: ServedClient, path: str, key: str | None, **params: Any) -> ServedResponse:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return http.get(path, params, headers=headers)


def test_a_page_has_the_contracts_fields_and_a_cursor_to_the_next(
    served: ServedClient, writer: EventLogWriter
) -> None:
    events = store(writer, spread(5, event_context={"n": 1}))
    key = read_key()
    first = get(served, "/api/v1/events", key, limit=3, **WINDOW)
    assert first.status_code == 200, first.content
    body = first.json()
    assert set(body) == {"events", "next_cursor"}
    assert body["events"][0] == {
        "event_id": events[-1].event_id, "event_type": "order_placed",
        "event_date_time": "2026-11-20T00:00:04.000000Z",
        "environment": "production", "event_context": {"n": 1}, "metadata_version": 1,
    }  # fmt: skip
    second = get(served, "/api/v1/events", key, limit=3, cursor=body["next_cursor"], **WINDOW).json()
    assert [event["event_id"] for event in body["events"] + second["events"]] == [
        e.event_id for e in events[::-1]
    ]
    assert second["next_cursor"] is None
    assert first["Cache-Control"] == "private, no-store"


def test_the_default_window_is_the_last_24_hours(served: ServedClient, writer: EventLogWriter) -> None:
    from django.utils import timezone

    now = timezone.now()
    store(
        writer,
        [Stored(event_date_time=now - timedelta(hours=1)), Stored(event_date_time=now - timedelta(hours=25))],
    )
    assert len(get(served, "/api/v1/events", read_key()).json()["events"]) == 1


def test_a_cursor_with_other_filters_order_or_altered_is_a_400(
    served: ServedClient, writer: EventLogWriter
) -> None:
    store(writer, spread(5))
    key = read_key()
    cursor = get(served, "/api/v1/events", key, limit=2, **WINDOW).json()["next_cursor"]
    for params in (
        {"cursor": cursor, **WINDOW, "event_type": "other"},
        {"cursor": cursor, **WINDOW, "order": "asc"},
        {"cursor": cursor, "from": "2026-11-19T00:00:01Z", "to": WINDOW["to"]},
        {"cursor": cursor[:-2] + "xx", **WINDOW},
    ):
        response = get(served, "/api/v1/events", key, **params)
        assert response.status_code == 400, params
        assert "cursor" in response.json()["error"]
    assert (
        get(served, "/api/v1/events", key, cursor=cursor, limit=50, **WINDOW).status_code == 200
    )  # limit may change


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": "2026-11-19T00:00:00"}, "offset"),
        ({"from": "2026-11-19"}, "RFC 3339"),
        ({"to": "2026-11-19T00:00:00 01:00"}, "%2B"),
        ({"from": "2026-11-20T00:00:00Z", "to": "2026-11-19T00:00:00Z"}, "earlier"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "\u00b2"}, "limit"),  # a digit to str.isdigit, not to int()
        ({"order": "sideways"}, "order"),
        ({"order": ""}, "order must be asc or desc"),  # given empty is not left out (found by fuzzing)
        ({"event-type": "x"}, "unknown parameter"),
        ({"context.": "x"}, "context path"),
        ({"context.a..b": "x"}, "context path"),
        ({f"context.k{i}": "v" for i in range(6)}, "at most 5"),
    ],
)
def test_bad_parameters_are_a_400_naming_them(
    served: ServedClient, params: dict[str, str], message: str
) -> None:
    response = get(served, "/api/v1/events", read_key(), **params)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_keys_without_the_read_scope_get_403_everywhere_and_no_key_401(
    served: ServedClient, writer: EventLogWriter
) -> None:
    events = store(writer, [Stored()])
    ingest_only = create_api_key("producer")[1]
    paths = [
        "/api/v1/events",
        f"/api/v1/events/{events[0].event_id}",
        "/api/v1/events/counts",
        "/api/v1/events/export",
    ]
    for path in paths:
        assert get(served, path, ingest_only, format="ndjson").status_code == 403, path
        missing = get(served, path, None)
        assert missing.status_code == 401, path
        assert missing["WWW-Authenticate"].startswith("Bearer"), path
    read_only = read_key()
    response = served.post("/api/v1/events", "{}", content_type="application/json",
                                 headers={"Authorization": f"Bearer {read_only}"})  # fmt: skip
    assert response.status_code == 403


def test_an_environment_bound_key_cannot_see_past_its_environments_by_any_parameter(
    served: ServedClient, writer: EventLogWriter
) -> None:
    events = store(
        writer,
        [
            Stored("a", DAY, "production", {"env": "production"}),
            Stored("a", DAY, "staging", {"env": "staging"}),
        ],
    )
    everything = read_key()
    staging = read_key(environments=["staging"])
    for params in ({}, {"environment": "production"}, {"environment": ["production", "staging"]},
                   {"context.env": "production"}, {"event_type": "a"}):  # fmt: skip
        body = get(served, "/api/v1/events", staging, **WINDOW, **params).json()
        assert {event["environment"] for event in body["events"]} <= {"staging"}, params
    cursor = get(served, "/api/v1/events", everything, limit=1, order="asc", **WINDOW).json()["next_cursor"]
    resumed = get(served, "/api/v1/events", staging, cursor=cursor, order="asc", **WINDOW).json()
    assert {event["environment"] for event in resumed["events"]} <= {"staging"}
    assert get(served, f"/api/v1/events/{events[0].event_id}", staging).status_code == 404
    assert get(served, f"/api/v1/events/{events[1].event_id}", staging).json()["environment"] == "staging"
    counts = get(
        served, "/api/v1/events/counts", staging, interval="day", group_by="environment", **WINDOW
    ).json()
    assert sum(bucket["count"] for bucket in counts["buckets"]) == 1
    exported = get(
        served, "/api/v1/events/export", staging, format="ndjson", environment="production", **WINDOW
    )
    assert exported.content.splitlines() == [b'{"complete":true,"events":0}']
    producer = create_api_key("staging-producer", environments=["staging"])[1]
    sent = served.post(
        "/api/v1/events", json.dumps({"event_type": "a", "environment": "production"}),
        content_type="application/json", headers={"Authorization": f"Bearer {producer}"},
    )  # fmt: skip
    assert sent.status_code == 403
    assert "production" in sent.json()["error"]


def test_one_event_by_id_or_a_json_404(served: ServedClient, writer: EventLogWriter) -> None:
    events = store(writer, [Stored(event_context={"a": 1})])
    key = read_key()
    assert get(served, f"/api/v1/events/{events[0].event_id}", key).json()["event_context"] == {"a": 1}
    for missing in ("6f1c1f4e-3b9a-4c1e-9d53-2f1f0a6b8e21", "not-a-uuid", "' OR 1=1"):
        response = get(served, f"/api/v1/events/{quote(missing)}", key)
        assert response.status_code == 404
        assert "error" in response.json()


def test_counts_answer_every_bucket_in_the_zones_offsets(
    served: ServedClient, writer: EventLogWriter
) -> None:
    store(writer, [Stored("a", DAY), Stored("b", DAY + timedelta(hours=2))])
    key = read_key()
    body = get(served, "/api/v1/events/counts", key, interval="hour", group_by="event_type",
               **{"from": "2026-11-20T00:00:00Z", "to": "2026-11-20T03:00:00Z"}).json()  # fmt: skip
    assert body == {"interval": "hour", "tz": "UTC", "buckets": [
        {"start": "2026-11-20T00:00:00Z", "count": 1, "by": {"a": 1, "b": 0}},
        {"start": "2026-11-20T01:00:00Z", "count": 0, "by": {"a": 0, "b": 0}},
        {"start": "2026-11-20T02:00:00Z", "count": 1, "by": {"a": 0, "b": 1}},
    ]}  # fmt: skip
    berlin = get(served, "/api/v1/events/counts", key, interval="day", tz="Europe/Berlin", **WINDOW).json()
    assert [bucket["start"] for bucket in berlin["buckets"]] == [
        "2026-11-19T00:00:00+01:00", "2026-11-20T00:00:00+01:00", "2026-11-21T00:00:00+01:00",
    ]  # fmt: skip
    assert "by" not in berlin["buckets"][0]
    too_many = get(
        served,
        "/api/v1/events/counts",
        key,
        interval="minute",
        **{"from": "2026-11-20T00:00:00Z", "to": "2026-11-20T16:41:00Z"},
    )
    assert too_many.status_code == 400
    assert "1000" in too_many.json()["error"]
    for params in ({"interval": "second"}, {"interval": ""}, {"tz": "Nowhere/City"}, {"tz": ""},
                   {"group_by": "event_context"}, {"group_by": ""}):  # fmt: skip
        assert get(served, "/api/v1/events/counts", key, **params).status_code == 400, params


def test_an_ndjson_export_streams_every_event_then_a_complete_line(
    served: ServedClient, writer: EventLogWriter
) -> None:
    store(writer, spread(1_234))
    response = get(served, "/api/v1/events/export", read_key(), format="ndjson", **WINDOW)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson"
    assert response["Transfer-Encoding"] == "chunked"  # streamed, not buffered to learn its length
    lines = response.content.splitlines()
    assert len(lines) == 1_235
    assert json.loads(lines[-1]) == {"complete": True, "events": 1_234}
    assert get(served, "/api/v1/events/export", read_key(), **WINDOW).status_code == 400  # format is required


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory, served_web: object) -> Iterator[ServedClient]:
    """A web process whose keys may read three times a minute and send once."""
    directory = tmp_path_factory.mktemp("limited")
    with serving(directory, READ_RATE_LIMIT_PER_MINUTE="3", INGEST_RATE_LIMIT_PER_MINUTE="1") as web:
        yield web.client()


def test_a_key_over_its_read_limit_gets_429_with_retry_after(limited: ServedClient) -> None:
    key, other = read_key(), read_key()
    statuses = [get(limited, "/api/v1/events", key).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = get(limited, "/api/v1/events", key)
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert "3 read requests a minute" in refused.json()["error"]
    assert get(limited, "/api/v1/events", other).status_code == 200  # each key has its own count


def test_ingest_can_be_rate_limited_per_key_too(limited: ServedClient) -> None:
    key = create_api_key("limited-producer")[1]

    def send() -> ServedResponse:
        return limited.post("/api/v1/events", json.dumps({"event_type": "a"}),
                            headers={"Authorization": f"Bearer {key}"})  # fmt: skip

    assert send().status_code == 202
    refused = send()
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1


def test_a_read_over_clickhouses_memory_limit_is_a_json_error_not_a_partial_page(
    writer: EventLogWriter, tmp_path: Path
) -> None:
    # Grouping 30,000 types needs more than the smallest limit eventlog accepts, 1 MiB.
    store(writer, [Stored(f"type-{index}", DAY + timedelta(seconds=index)) for index in range(30_000)])
    with serving(tmp_path, READ_MAX_MEMORY_BYTES=str(1024**2)) as web:
        response = get(web.client(), "/api/v1/events/counts", read_key(), interval="hour",
                       group_by="event_type", **WINDOW)  # fmt: skip
    assert response.status_code == 422
    assert "memory" in response.json()["error"]


@pytest.mark.parametrize(
    "value", ["' OR '1'='1", "a\\'; DROP TABLE event_log; --", "%00", "{start:Int64}", "😀" * 3]
)
def test_injection_looking_filter_values_are_answered_never_a_5xx(
    served: ServedClient, writer: EventLogWriter, value: str
) -> None:
    store(writer, [Stored()])
    key = read_key()
    for params in (
        {"event_type": value},
        {"environment": value},
        {f"context.{value}": value},
        {"context.a": value},
        {"tz": value},
    ):
        for path in ("/api/v1/events", "/api/v1/events/counts"):
            response = get(served, path, key, **WINDOW, **params)
            assert response.status_code in (200, 400), (path, params, response.content)
            if response.status_code == 200 and path == "/api/v1/events":
                assert response.json()["events"] == []
    assert get(served, "/api/v1/events", key, **WINDOW).json()["events"] != []  # the table is still there
