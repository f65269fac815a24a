"""Metrics tell the truth: events driven through, then the numbers read back as Prometheus scrapes them."""

from __future__ import annotations

import json
import re
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client
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
from tests.processes import new_database, process_env, reset_broker, running, start_worker
from tests.served import ServedClient, serving
from tests.test_processes import free_port

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


TOKEN = "s3cret"
AUTHORIZED = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def web(
    tmp_path_factory: pytest.TempPathFactory, django_db_setup: None, clickhouse_server: object
) -> Iterator[ServedClient]:
    """A web process of the module's own (as `make web` runs it: two processes, each counting the
    event types it has seen from none), whose /metrics asks for a token."""
    with serving(tmp_path_factory.mktemp("metrics"), METRICS_TOKEN=TOKEN) as web:
        yield web.client()


def scrape_web(http: ServedClient) -> Samples:
    response = http.get("/metrics", headers=AUTHORIZED)
    assert response.status_code == 200
    return parse(response.content.decode())


def post(http: ServedClient, key: str, body: object) -> int:
    return http.post(
        "/api/v1/events", json.dumps(body), headers={"Authorization": f"Bearer {key}"}
    ).status_code


def test_web_metrics_count_accepted_events_by_type_duplicates_and_answers(web: ServedClient) -> None:
    key = create_api_key("metrics")[1]
    before = scrape_web(web)
    repeated = str(uuid.uuid4())
    assert post(web, key, [{"event_type": "m_a"}] * 3 + [{"event_type": "m_b", "event_id": repeated}]) == 202
    assert post(web, key, {"event_type": "m_b", "event_id": repeated}) == 202  # a duplicate
    assert post(web, "wrong", {"event_type": "m_a"}) == 401
    after = scrape_web(web)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("eventlog_events_accepted_total", event_type="m_a") == 3
    assert delta("eventlog_events_accepted_total", event_type="m_b") == 1
    assert delta("eventlog_events_duplicate_total") == 1
    assert delta("eventlog_ingest_requests_total", status="202") == 2
    assert delta("eventlog_ingest_requests_total", status="401") == 1
    assert not any(name.startswith("eventlog_relay_") for name, _ in after)  # the worker's, not the web's


def test_event_types_past_the_limit_are_counted_as_other(tmp_path: Path) -> None:
    """One request's events are counted by the web process that answers it: of 300 types it has
    not seen, it names MAX_EVENT_TYPES at most."""
    key = create_api_key("limit")[1]
    with serving(tmp_path) as served:
        http = served.client()
        assert post(http, key, [{"event_type": f"t{number}"} for number in range(300)]) == 202
        response = http.get("/metrics")
    samples = parse(response.content.decode())
    by_type = {dict(labels)["event_type"]: count for (name, labels), count in samples.items()
               if name == "eventlog_events_accepted_total"}  # fmt: skip
    named = [count for event_type, count in by_type.items() if event_type != "other"]
    assert len(named) == sum(named) == metrics.MAX_EVENT_TYPES
    assert by_type["other"] == 100


def test_outbox_gauges_show_pending_events_dead_letters_and_lag(
    web: ServedClient, writer: EventLogWriter, clickhouse: Client
) -> None:
    http = web
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


def test_metrics_can_require_a_token(web: ServedClient) -> None:
    assert web.get("/metrics").status_code == 401
    assert web.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert web.get("/metrics", headers=AUTHORIZED).status_code == 200


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


def test_web_metrics_add_up_the_counts_of_every_web_process(web: ServedClient) -> None:
    key = create_api_key("multiprocess")[1]
    for _ in range(40):  # a new connection each: the web server's processes take turns
        assert post(web, key, {"event_type": "spread"}) == 202
    seen = {value(scrape_web(web), "eventlog_events_accepted_total", event_type="spread") for _ in range(10)}
    assert seen == {40.0}  # whichever process answers the scrape


DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards" / "eventlog.json"
_METRIC_NAME = re.compile(r"\beventlog_[a-z_]+")


def test_every_query_of_the_grafana_dashboard_names_a_metric_the_code_exports(
    web: ServedClient, writer: EventLogWriter, clickhouse: Client, worker_metrics_url: str
) -> None:
    http, key = web, create_api_key("dashboard")[1]
    post(http, key, {"event_type": "dashboard"})  # so that every labelled metric has a sample
    relay_outbox(writer, batch_size=10, max_batches=1)
    exported = {name for name, _ in scrape_web(http)} | {name for name, _ in scrape(worker_metrics_url)}
    queries = [target["expr"] for panel in json.loads(DASHBOARD.read_text())["panels"]
               for target in panel["targets"]]  # fmt: skip
    named = {name for query in queries for name in _METRIC_NAME.findall(query)}
    assert len(queries) >= 12
    assert named - exported == set()


def test_web_metrics_count_reads_and_their_rows(web: ServedClient, clickhouse: Client) -> None:
    http = web
    key = create_api_key("reader", scopes=["read"])[1]
    before = scrape_web(http)
    answer = http.get("/api/v1/events", headers={"Authorization": f"Bearer {key}"})
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
