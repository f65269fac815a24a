"""Metrics tell the truth: events driven through, then the numbers read back as Prometheus scrapes them."""

from __future__ import annotations

import json
import re
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from django.test import Client as HttpClient
from prometheus_client.parser import text_string_to_metric_families

from eventlog import metrics
from eventlog.access.api_keys import create_api_key
from eventlog.clickhouse.event_log import EventLogWriter
from eventlog.errors import ClickHouseUnavailable
from eventlog.models import OutboxEvent
from eventlog.monitoring.metrics_endpoints import start_worker_metrics
from eventlog.monitoring.stats import outbox_stats
from eventlog.outbox.events import NewEvent, emit_events
from eventlog.relay.delivery import relay_outbox
from eventlog.runtime import relay_coordinator
from eventlog.scheduling.runs import run_scheduled_relay
from tests.conftest import wait_until
from tests.processes import new_database, process_env, reset_broker, running, start, start_worker
from tests.test_processes import free_port, post_events

pytestmark = pytest.mark.django_db(transaction=True)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape_web(http: HttpClient) -> Samples:
    response = http.get("/metrics")
    assert response.status_code == 200
    return parse(response.content.decode())


def post(http: HttpClient, key: str, body: object) -> int:
    headers = {"Authorization": f"Bearer {key}"}
    return http.post(
        "/api/v1/events", json.dumps(body), content_type="application/json", headers=headers
    ).status_code


@pytest.fixture
def fresh_event_types(monkeypatch: pytest.MonkeyPatch) -> None:
    """Earlier tests of this process used up the event types counted by name."""
    monkeypatch.setattr(metrics, "_seen_types", set())


@pytest.mark.usefixtures("fresh_event_types")
def test_web_metrics_count_accepted_events_by_type_duplicates_and_answers() -> None:
    http, key = HttpClient(), create_api_key("metrics")[1]
    before = scrape_web(http)
    repeated = str(uuid.uuid4())
    assert post(http, key, [{"event_type": "m_a"}] * 3 + [{"event_type": "m_b", "event_id": repeated}]) == 202
    assert post(http, key, {"event_type": "m_b", "event_id": repeated}) == 202  # a duplicate
    assert post(http, "wrong", {"event_type": "m_a"}) == 401
    after = scrape_web(http)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("eventlog_events_accepted_total", event_type="m_a") == 3
    assert delta("eventlog_events_accepted_total", event_type="m_b") == 1
    assert delta("eventlog_events_duplicate_total") == 1
    assert delta("eventlog_ingest_requests_total", status="202") == 2
    assert delta("eventlog_ingest_requests_total", status="401") == 1
    assert not any(name.startswith("eventlog_relay_") for name, _ in after)  # the worker's, not the web's


@pytest.mark.usefixtures("fresh_event_types")
def test_event_types_past_the_limit_are_counted_as_other(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "MAX_EVENT_TYPES", 2)
    http, key = HttpClient(), create_api_key("limit")[1]
    before = scrape_web(http)
    post(http, key, [{"event_type": name} for name in ("t1", "t2", "t3", "t4", "t1")])
    after = scrape_web(http)
    counted = {
        event_type: value(after, "eventlog_events_accepted_total", event_type=event_type)
        - value(before, "eventlog_events_accepted_total", event_type=event_type)
        for event_type in ("t1", "t2", "t3", "other")
    }
    assert counted == {"t1": 2, "t2": 1, "t3": 0, "other": 2}


def test_outbox_gauges_show_pending_events_dead_letters_and_lag(
    writer: EventLogWriter, clickhouse: Client
) -> None:
    http = HttpClient()
    emit_events([NewEvent("gauge") for _ in range(7)])
    samples = scrape_web(http)
    assert value(samples, "eventlog_outbox_pending_events") == 7
    assert value(samples, "eventlog_outbox_oldest_pending_age_seconds") > 0
    relay_outbox(writer, batch_size=100, max_batches=10)
    OutboxEvent.objects.filter(pk=OutboxEvent.objects.first().pk).update(failed_at="2026-01-01T00:00:00Z")
    samples = scrape_web(http)
    assert value(samples, "eventlog_outbox_pending_events") == 0
    assert value(samples, "eventlog_outbox_oldest_pending_age_seconds") == 0
    assert value(samples, "eventlog_outbox_dead_letters") == 1


def test_metrics_can_require_a_token(settings: Any) -> None:
    settings.EVENTLOG = {**settings.EVENTLOG, "METRICS_TOKEN": "s3cret"}
    http = HttpClient()
    assert http.get("/metrics").status_code == 401
    assert http.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200


@pytest.fixture(scope="module")
def worker_metrics_url(writer: EventLogWriter) -> str:
    port = free_port()
    start_worker_metrics(writer, "127.0.0.1", port)  # once per process: it registers a collector
    return f"http://127.0.0.1:{port}/metrics"


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback)
        return parse(response.read().decode())


def test_worker_metrics_count_relayed_batches_and_read_clickhouses_own_figures(
    writer: EventLogWriter, clickhouse: Client, worker_metrics_url: str
) -> None:
    before = scrape(worker_metrics_url)
    emit_events([NewEvent("relayed") for _ in range(30)])
    assert relay_outbox(writer, batch_size=10, max_batches=10).events == 30
    after = scrape(worker_metrics_url)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("eventlog_relay_events_total") == 30
    assert delta("eventlog_relay_batches_total", outcome="delivered") == 3
    assert delta("eventlog_relay_batch_size_events_count") == 3
    assert delta("eventlog_relay_batch_size_events_sum") == 30
    assert delta("eventlog_relay_batch_duration_seconds_count") == 3
    assert delta("eventlog_clickhouse_insert_duration_seconds_count") == 3
    assert delta("eventlog_clickhouse_inserts_total") >= 3
    assert value(after, "eventlog_clickhouse_up") == 1
    assert value(after, "eventlog_clickhouse_rows") == 30
    parts = dict(clickhouse.query(
        "SELECT partition, count() FROM system.parts"
        " WHERE database = currentDatabase() AND table = 'event_log' AND active GROUP BY partition"
    ).result_rows)  # fmt: skip
    exported = {dict(labels)["partition"]: v for (name, labels), v in after.items()
                if name == "eventlog_clickhouse_active_parts"}  # fmt: skip
    assert exported == {partition: float(count) for partition, count in parts.items()}


def test_a_failed_insert_counts_an_unavailable_batch_and_a_retry(
    writer: EventLogWriter, clickhouse: Client, worker_metrics_url: str
) -> None:
    emit_events([NewEvent("outage")])
    before = scrape(worker_metrics_url)
    clickhouse.command("DETACH TABLE event_log")
    try:
        with pytest.raises(ClickHouseUnavailable):
            run_scheduled_relay(relay_coordinator(), writer, batch_size=10, max_batches=1, is_retry=False,
                                last_attempt=False)  # fmt: skip
    finally:
        clickhouse.command("ATTACH TABLE IF NOT EXISTS event_log")
    after = scrape(worker_metrics_url)
    outcome = "eventlog_relay_batches_total"
    assert value(after, outcome, outcome="unavailable") - value(before, outcome, outcome="unavailable") == 1
    assert value(after, "eventlog_relay_retries_total") - value(before, "eventlog_relay_retries_total") == 1


def test_a_prefork_workers_metrics_add_up_the_relays_of_its_pool_processes(tmp_path: Path) -> None:
    """`make worker` as it runs: the relay counts in the pool's processes, the endpoint in the main one."""
    port, database = free_port(), new_database()
    env = process_env(
        database, WORKER_METRICS_PORT=str(port), RELAY_BATCH_SIZE="50", RELAY_INTERVAL_SECONDS="0.1"
    )
    reset_broker()
    emit_events([NewEvent("pooled") for _ in range(2_000)])
    with running(start_worker(env, tmp_path / "beat")):
        wait_until(lambda: outbox_stats()["processed"] == 2_000)
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/metrics"))
        samples = scrape(f"http://127.0.0.1:{port}/metrics")
    assert value(samples, "eventlog_relay_events_total") == 2_000
    assert value(samples, "eventlog_relay_batches_total", outcome="delivered") == 40
    counting = {path.name for path in Path(env["WORKER_METRICS_DIR"]).glob("counter_*.db")}
    assert len(counting) >= 2, counting  # more than one process counted, and the endpoint added them up


def answers(url: str) -> bool:
    try:
        scrape(url)
    except OSError:
        return False
    return True


@pytest.fixture
def web(tmp_path: Path) -> Iterator[int]:
    """The real web server (granian, two processes) on the test database, as `make web` runs it."""
    port = free_port()
    env = process_env(new_database(), WEB_METRICS_DIR=str(tmp_path / "metrics"))
    with running(start("web", env, tmp_path / "schedule", web_bind=f"127.0.0.1:{port}")):
        yield port


def test_web_metrics_add_up_the_counts_of_every_web_process(web: int) -> None:
    key = create_api_key("multiprocess")[1]
    post_events(web, key, 1)  # waits until the server answers
    request = urllib.request.Request(
        f"http://127.0.0.1:{web}/api/v1/events",
        data=json.dumps({"event_type": "spread"}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    for _ in range(40):  # a new connection each: granian's processes take turns
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
            assert response.status == 202
    url = f"http://127.0.0.1:{web}/metrics"
    seen = {value(scrape(url), "eventlog_events_accepted_total", event_type="spread") for _ in range(10)}
    assert seen == {40.0}  # whichever process answers the scrape


DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards" / "eventlog.json"
_METRIC_NAME = re.compile(r"\beventlog_[a-z_]+")


def test_every_query_of_the_grafana_dashboard_names_a_metric_the_code_exports(
    writer: EventLogWriter, clickhouse: Client, worker_metrics_url: str
) -> None:
    http, key = HttpClient(), create_api_key("dashboard")[1]
    post(http, key, {"event_type": "dashboard"})  # so that every labelled metric has a sample
    relay_outbox(writer, batch_size=10, max_batches=1)
    exported = {name for name, _ in scrape_web(http)} | {name for name, _ in scrape(worker_metrics_url)}
    queries = [target["expr"] for panel in json.loads(DASHBOARD.read_text())["panels"]
               for target in panel["targets"]]  # fmt: skip
    named = {name for query in queries for name in _METRIC_NAME.findall(query)}
    assert len(queries) >= 12
    assert named - exported == set()


def test_web_metrics_count_reads_and_their_rows(clickhouse: Client) -> None:
    http = HttpClient()
    key = create_api_key("reader", scopes=["read"])[1]
    before = scrape_web(http)
    answer = http.get("/api/v1/events", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert answer.status_code == 200
    after = scrape_web(http)
    assert (
        value(after, "eventlog_read_requests_total", endpoint="list", status="200")
        - value(before, "eventlog_read_requests_total", endpoint="list", status="200")
        == 1
    )
    assert value(after, "eventlog_read_rows_count", endpoint="list") > value(
        before, "eventlog_read_rows_count", endpoint="list"
    )
