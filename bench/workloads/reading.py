"""read_api: the read side through the web process, as `make run` runs it, on an event_log of ten
million events over 30 days seeded straight into ClickHouse.

The events are inserted in relay-sized blocks (RELAY_BATCH_SIZE each, in time order, as the relay
delivers them), so the table has the parts a relay leaves, and the reads start once ClickHouse's
background merges of them are done (wait_for_merges); it is never optimized. Pages, counts, a
context filter and exports are asked over HTTP by one keep-alive client; what ClickHouse read for a
page comes from its own summary, through the same core functions in this process. Two comparisons
run in the same run: a page read in time slices (the code) against one query over the whole range
(the code before `8870d50`), and a context filter with a data-skipping index against without one."""

from __future__ import annotations

import contextlib
import functools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client
from django.conf import settings

from environment import free_port, running, session_pids, wait_until
from eventlog.access.api_keys import create_api_key
from eventlog.reading import events
from eventlog.reading.cursor import Cursor, Position, decode_cursor, encode_cursor
from eventlog.reading.filters import EVERYTHING, Filters, format_time, parse_filters, where
from eventlog.reading.store import EventLogReader
from eventlog.runtime import event_log_reader
from figures import percentile
from sizes import Sizes
from workloads.read_client import Api, Params, RssSampler, read_export

END = datetime(2026, 11, 30, tzinfo=UTC)  # the newest event is just before it
PAGE = 100
DEEP = 1_000  # the deep page's number, counted from the first
# The context filter's first user (one in 100,000). Each request asks for the next one: ClickHouse
# remembers the granules where a condition matched nothing (its query condition cache), so the same
# filter asked again reads almost nothing.
USER_ID = 4242
EVENT_TYPES = 20
SKIP_INDEX = "event_context_tokens"

# Event i of n at START + i * step: time order, as the relay delivers. Twenty types, three
# environments (mostly production) and a context of about 100 bytes with a user id out of 100,000.
_SEED = """
    INSERT INTO event_log
    SELECT generateUUIDv4(number), concat('event_type_', toString(cityHash64(number, 1) % {types})),
        fromUnixTimestamp64Micro(toInt64({start} + number * {step}), 'UTC'),
        ['production', 'production', 'production', 'staging', 'development'][1 + cityHash64(number, 2) % 5],
        concat('{{"user":{{"id":', toString(cityHash64(number, 3) % 100000), '}},"plan":"',
            ['free', 'pro', 'team'][1 + cityHash64(number, 4) % 3], '","amount":',
            toString(cityHash64(number, 5) % 100000 / 100), ',"path":"/shop/cart"}}'),
        1
    FROM numbers({offset}, {count})
"""


def run(sizes: Sizes, client: Client, log: Callable[[str], None]) -> dict[str, Any]:
    start = END - timedelta(days=sizes.read_days)
    log(f"seeding {sizes.read_events:,} events over {sizes.read_days} days into ClickHouse")
    figures: dict[str, Any] = {"events": sizes.read_events, **seed(client, sizes, start)}
    figures["round_trip_ms"] = round_trip_ms(client)
    base = {"from": [format_time(start)], "to": [format_time(END)]}
    deep = deep_cursor(client, base, sizes)
    figures |= through_web(client, base, deep, start, sizes, log)
    # From here on, event_log is in its reloaded state.
    log("rows read per page, and pages read without time slices (in this process)")
    figures["rows_read"] = rows_read(base, deep, sizes)
    log("the context filter with a data-skipping index")
    figures["context_index"] = context_index(client, base, sizes)
    figures["parts_at_end"] = active_parts(client)
    client.command("TRUNCATE TABLE event_log")
    return figures


def through_web(
    client: Client, base: Params, deep: str, start: datetime, sizes: Sizes, log: Callable[[str], None]
) -> dict[str, Any]:
    """Every read over HTTP, through a web process of its own; last, the pages again once
    event_log is reloaded (reload_table)."""
    key = create_api_key(f"bench-reader-{uuid.uuid4().hex[:8]}", scopes=["read"])[1]
    first, deeper = base | {"limit": [str(PAGE)]}, base | {"limit": [str(PAGE)], "cursor": [deep]}
    counts = base | {"interval": ["hour"], "group_by": ["event_type"]}
    figures: dict[str, Any] = {}
    port = free_port()
    with running("web", "read-web", web_bind=f"127.0.0.1:{port}") as web:
        api = Api(port, key)
        wait_until(api.answers, "the web process", timeout=60, processes=[web])
        log(f"pages: the first and the {DEEP:,}th, {sizes.read_requests} times each")
        figures["first_page"] = api.timed(lambda _: first, sizes.read_requests)
        figures["deep_page"] = api.timed(lambda _: deeper, sizes.read_requests)
        log("hourly counts by type over the whole range")
        figures["hourly_counts"] = api.timed(
            lambda _: counts, sizes.read_count_requests, "/api/v1/events/counts"
        )
        log("context.user.id=... over the whole range")
        figures["context_filter"] = api.timed(
            lambda i: base | {"context.user.id": [str(USER_ID + i)], "limit": [str(PAGE)]},
            sizes.read_count_requests,
        )
        log("NDJSON exports through the web process, its memory sampled")
        figures["export"] = exports(api, start, sizes, functools.partial(session_pids, web.pid))
        log("the pages again once event_log is detached and attached again (its parts reloaded)")
        reload_table(client)
        figures["first_page_reloaded"] = api.timed(lambda _: first, sizes.read_requests)
        figures["deep_page_reloaded"] = api.timed(lambda _: deeper, sizes.read_requests)
    return figures


def seed(client: Client, sizes: Sizes, start: datetime) -> dict[str, Any]:
    span = int((END - start) / timedelta(microseconds=1))
    step, start_micros = span // sizes.read_events, int(start.timestamp()) * 1_000_000
    block = settings.CONFIG.relay_batch_size
    began = time.monotonic()
    for offset in range(0, sizes.read_events, block):
        count = min(block, sizes.read_events - offset)
        sql = _SEED.format(types=EVENT_TYPES, start=start_micros, step=step, offset=offset, count=count)
        client.command(sql, settings={"async_insert": 0})
    seeded = time.monotonic()
    wait_for_merges(client)
    return {
        "seed_inserts": -(-sizes.read_events // block),
        "seed_s": seeded - began,
        "merge_wait_s": time.monotonic() - seeded,
        "parts_at_start": active_parts(client),
    }


def wait_for_merges(client: Client, timeout: float = 900.0) -> None:
    """Until ClickHouse has no merge of event_log running, twice a second apart: ten million events
    arrive here in seconds, a production table over 30 days, so the merges a relay's inserts set off
    are done before the reads are timed (the table is not optimized: its parts are those ClickHouse
    chose to keep). On two cores, reads timed during those merges share the CPU with them."""
    deadline, idle = time.monotonic() + timeout, 0
    while idle < 2:
        if time.monotonic() > deadline:
            raise RuntimeError(f"event_log's merges still running after {timeout:.0f} s")
        running = int(client.command("SELECT count() FROM system.merges WHERE table = 'event_log'"))
        idle = idle + 1 if running == 0 else 0
        time.sleep(1.0)


def reload_table(client: Client) -> None:
    """DETACH and ATTACH event_log: the engine reloads its parts from disk. Parts this process
    wrote and merged make every query's planning slower until then (EXPLAIN of a page: 40 ms,
    3.4 ms after; docs/benchmarks.md), so the pages are timed in both states."""
    client.command("DETACH TABLE event_log")
    client.command("ATTACH TABLE event_log")


def active_parts(client: Client) -> int:
    return int(
        client.command(
            "SELECT count() FROM system.parts "
            "WHERE active AND database = currentDatabase() AND table = 'event_log'"
        )
    )


def round_trip_ms(client: Client, requests: int = 50) -> float:
    """p50 of `SELECT 1` through the embedded server: what every query costs before its work."""
    latencies = []
    for _ in range(requests):
        began = time.monotonic()
        client.query("SELECT 1")
        latencies.append(time.monotonic() - began)
    return percentile(sorted(latencies), 50) * 1000


def deep_cursor(client: Client, base: Params, sizes: Sizes) -> str:
    """The cursor the (DEEP-1)th page's next_cursor would be: after the (DEEP-1)*PAGE newest events
    (built here from ClickHouse's own order instead of paging 999 times over HTTP)."""
    offset = min((DEEP - 1) * PAGE, sizes.read_events - 1) - 1
    sql = (
        "SELECT toUnixTimestamp64Micro(event_date_time), event_type, toString(event_id) FROM event_log "
        "ORDER BY event_date_time DESC, event_type DESC, event_id DESC LIMIT 1 OFFSET {offset:UInt64}"
    )
    micros, event_type, event_id = client.query(sql, parameters={"offset": offset}).result_rows[0]
    filters = parse_filters(base, datetime.now(UTC))
    return encode_cursor(Cursor(filters, "desc", Position(micros, event_type, event_id)), settings.SECRET_KEY)


def exports(api: Api, start: datetime, sizes: Sizes, web_pids: Callable[[], list[int]]) -> dict[str, Any]:
    """A tenth of the export, then the whole export: the newest `read_export_events` events, as
    NDJSON. The web process's memory is sampled during each; flat means the two peaks match."""
    figures = {}
    for name, events_wanted in (
        ("tenth", sizes.read_export_events // 10),
        ("whole", sizes.read_export_events),
    ):
        span = (END - start) * events_wanted / sizes.read_events
        params = {"from": [format_time(END - span)], "to": [format_time(END)], "format": ["ndjson"]}
        with RssSampler(web_pids) as rss:
            began = time.monotonic()
            received, last_line = read_export(api, params)
            seconds = time.monotonic() - began
        tail = json.loads(last_line)
        if not tail.get("complete"):
            raise RuntimeError(f"the export did not complete: {tail}")
        figures[name] = {
            "events": tail["events"],
            "events_per_s": tail["events"] / seconds,
            "megabytes": received / 1e6,
            "web_rss_mb_before": rss.before,
            "web_rss_mb_peak": rss.peak,
        }
    return figures


def rows_read(base: Params, deep: str, sizes: Sizes) -> dict[str, Any]:
    """What ClickHouse read for the first page, the deep page and a context filter's page (its
    summary), and the in-process time of each, read in time slices and (the code before slicing)
    by one query over the range."""
    reader = event_log_reader()
    filters = parse_filters(base, datetime.now(UTC))
    cursor = decode_cursor(deep, settings.SECRET_KEY)
    figures: dict[str, Any] = {}
    for mode, first_user in (("slices", USER_ID + 3000), ("one_query", USER_ID + 4000)):
        with whole_range_slices(filters, enabled=mode == "one_query"):
            figures[f"first_page_{mode}"] = page_figures(reader, lambda _: filters, None, sizes.read_requests)
            figures[f"deep_page_{mode}"] = page_figures(
                reader, lambda _: filters, cursor, sizes.read_requests
            )
            figures[f"context_page_{mode}"] = page_figures(
                reader,
                lambda i, user=first_user: parse_filters(
                    base | {"context.user.id": [str(user + i)]}, datetime.now(UTC)
                ),
                None,
                sizes.read_count_requests,
            )
    for name in ("first_page", "deep_page", "context_page"):
        figures[f"{name}_one_query_over_slices_p50"] = (
            figures[f"{name}_one_query"]["p50_ms"] / figures[f"{name}_slices"]["p50_ms"]
        )
    return figures


@contextlib.contextmanager
def whole_range_slices(filters: Filters, enabled: bool) -> Iterator[None]:
    """With `enabled`, the first time slice spans the whole range: a page is one query, as before."""
    saved = events.FIRST_SLICE
    if enabled:
        events.FIRST_SLICE = filters.end - filters.start
    try:
        yield
    finally:
        events.FIRST_SLICE = saved


def page_figures(
    reader: EventLogReader, filters: Callable[[int], Filters], cursor: Cursor | None, requests: int
) -> dict[str, Any]:
    """p50 and p99 of `requests` pages, the i-th of `filters(i)`, and the rows read per page."""
    latencies, read = [], 0
    for index in range(-1, requests):  # the first (-1) opens the client and is not counted
        began = time.monotonic()
        page = events.list_events(
            reader, filters(index), EVERYTHING, order="desc", limit=PAGE, cursor=cursor,
            secret=settings.SECRET_KEY,
        )  # fmt: skip
        if index >= 0:
            latencies.append(time.monotonic() - began)
            read += page.read_rows
    latencies.sort()
    return {
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "rows_read_per_page": read / requests,
    }


def context_index(client: Client, base: Params, sizes: Sizes) -> dict[str, Any]:
    """The context filter as one query over the range, without and then with a token bloom filter
    on event_context (and the `hasToken` condition that lets ClickHouse use it); the index is
    dropped again after, as the schema has none. Each query asks for another user (see USER_ID)."""
    reader = event_log_reader()

    def parameters(user: int) -> dict[str, Any]:
        filters = parse_filters(base | {"context.user.id": [str(user)]}, datetime.now(UTC))
        return where(filters)[1] | {"token": str(user)}

    conditions = where(parse_filters(base | {"context.user.id": ["0"]}, datetime.now(UTC)))[0]
    plain = f"SELECT toString(event_id) FROM {{table}} WHERE {' AND '.join(conditions)}"  # noqa: S608 (bound values)
    requests = sizes.read_count_requests
    figures = {
        "without_index": timed_query(reader, plain, lambda i: parameters(USER_ID + 1000 + i), requests)
    }
    client.command(f"ALTER TABLE event_log ADD INDEX {SKIP_INDEX} event_context TYPE tokenbf_v1(32768, 3, 0)")
    began = time.monotonic()
    client.command(f"ALTER TABLE event_log MATERIALIZE INDEX {SKIP_INDEX}", settings={"mutations_sync": 2})
    figures["materialize_s"] = time.monotonic() - began
    figures["index_mb"] = float(
        client.command(
            "SELECT sum(secondary_indices_compressed_bytes) / 1e6 FROM system.parts "
            "WHERE active AND database = currentDatabase() AND table = 'event_log'"
        )
    )
    indexed = f"{plain} AND hasToken(event_context, {{token:String}})"
    figures["with_index"] = timed_query(reader, indexed, lambda i: parameters(USER_ID + 2000 + i), requests)
    client.command(f"ALTER TABLE event_log DROP INDEX {SKIP_INDEX}")
    return figures


def timed_query(
    reader: EventLogReader, sql: str, parameters: Callable[[int], dict[str, Any]], requests: int
) -> dict[str, Any]:
    latencies, read, matches = [], 0, 0
    for index in range(requests):
        began = time.monotonic()
        result = reader.select(sql, parameters(index), max_rows=1_000_000, endpoint="bench")
        latencies.append(time.monotonic() - began)
        read, matches = read + result.read_rows, matches + len(result.rows)
    latencies.sort()
    return {
        "p50_ms": percentile(latencies, 50) * 1000,
        "max_ms": latencies[-1] * 1000,
        "rows_read_per_query": read / requests,
        "matches_per_query": matches / requests,
    }
