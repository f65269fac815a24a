"""The events page at /events/: for staff, the read API's filters as a form, paging both ways, an
event's JSON on click and a chart of counts by type; rendered by a real Chromium."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client
from django.http import QueryDict
from django.test import Client as HttpClient

from eventlog.access.api_keys import create_api_key
from eventlog.clickhouse.event_log import EventLogWriter
from eventlog.errors import InvalidQuery
from eventlog.relay.delivery import relay_outbox
from eventlog.web.events_page import api_params
from tests.monitoring.test_status_page import CHROMIUM, staff_client, staff_page
from tests.processes import manage, process_env, running, start
from tests.reading.conftest import DAY, Stored, spread, store
from tests.test_processes import free_port, post_events

pytestmark = pytest.mark.django_db(transaction=True)
AROUND_DAY = "from=2026-11-19T00:00&to=2026-11-21T00:00"


def test_the_events_page_is_for_staff_only() -> None:
    response = HttpClient().get("/events/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_the_form_becomes_the_read_apis_parameters() -> None:
    form = QueryDict(
        "event_type=a,%20b&environment=&from=2026-11-19T10:00&to=2026-11-20T10:00:30%2B01:00"
        "&context=user.id%3D42&context=&limit=25"
    )
    assert api_params(form) == {
        "event_type": ["a", "b"],
        "from": ["2026-11-19T10:00:00Z"],  # the browser's datetime input, read as UTC
        "to": ["2026-11-20T10:00:30+01:00"],
        "context.user.id": ["42"],
        "limit": ["25"],
    }
    assert api_params(QueryDict("from=2026-11-19T10:00-05:00"))["from"] == ["2026-11-19T10:00:00-05:00"]
    assert api_params(QueryDict("from=2026-11-19T10:00:00.5Z"))["from"] == ["2026-11-19T10:00:00.5Z"]
    assert api_params(QueryDict("from=tomorrow"))["from"] == ["tomorrow"]  # parse_time refuses it
    assert api_params(QueryDict("event_type=a&event_type=b,%20")) == {"event_type": ["a", "b"]}
    with pytest.raises(InvalidQuery, match="path=value"):
        api_params(QueryDict("context=no-equals-sign"))


def test_the_page_lists_the_newest_events_with_their_json_and_charts_them_by_type(
    writer: EventLogWriter, clickhouse: Client
) -> None:
    store(writer, spread(3, event_type="order_paid", step=timedelta(hours=1)))
    store(
        writer, [Stored("user_signed_up", DAY + timedelta(minutes=90), event_context={"plan": "<b>pro</b>"})]
    )
    page = staff_client().get(f"/events/?{AROUND_DAY}").content.decode()
    assert page.count('<tr class="event">') == 4
    assert page.index("user_signed_up</td>") < page.index(
        '<td class="time">2026-11-20T00:00:00.000000Z'
    )  # newest first
    assert "&quot;plan&quot;: &quot;&lt;b&gt;pro&lt;/b&gt;&quot;" in page  # the JSON, escaped
    assert (
        "4 events from 2026-11-19T00:00:00.000000Z to 2026-11-21T00:00:00.000000Z, counted per hour" in page
    )
    assert page.count('<rect class="bar"') == 4  # one bar a bucket and type with events
    assert "<title>order_paid: 1 from 2026-11-20T02:00:00.000000Z</title>" in page


def test_bad_filters_are_shown_on_the_page_as_a_400(clickhouse: Client) -> None:
    http = staff_client()
    response = http.get("/events/?from=2026-11-21T00:00&to=2026-11-19T00:00")
    assert response.status_code == 400
    assert 'id="error"' in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    response = http.get("/events/?cursor=forged")
    assert response.status_code == 400
    assert "altered" in response.content.decode()


def test_a_range_too_long_to_chart_still_lists_its_events(writer: EventLogWriter, clickhouse: Client) -> None:
    store(writer, [Stored("order_paid")])
    response = staff_client().get("/events/?from=1900-01-01T00:00&to=2299-01-01T00:00")
    page = response.content.decode()
    assert response.status_code == 200
    assert page.count('<tr class="event">') == 1
    assert "no chart: " in page
    assert "more than 1000" in page


@pytest.fixture
def web(tmp_path: Path, clickhouse: Client) -> Iterator[int]:
    """The real web server on the test databases (ClickHouse's `default`, where the test's writer
    relays to), with a staff user `ops` created by the web's own settings."""
    port = free_port()
    env = process_env("default", DJANGO_SUPERUSER_PASSWORD="pass-word-1")
    manage(env, "createsuperuser", "--noinput", "--username", "ops", "--email", "ops@example.com")
    with running(start("web", env, tmp_path / "schedule", web_bind=f"127.0.0.1:{port}")):
        yield port


@pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian's chromium (make test installs it)")
def test_chromium_shows_events_sent_over_http_filters_them_pages_them_and_charts_them(
    web: int, tmp_path: Path, writer: EventLogWriter
) -> None:
    from playwright.sync_api import sync_playwright

    key = create_api_key("browser")[1]
    post_events(web, key, 0, [{"event_type": "order_paid", "event_context": {"n": n}} for n in range(30)])
    signups = [
        {"event_type": "user_signed_up", "environment": "staging", "event_context": {"plan": "pro"}}
    ] * 5
    post_events(web, key, 0, signups)
    relay_outbox(writer, batch_size=100, max_batches=5)
    with sync_playwright() as playwright:
        browser, page = staff_page(playwright, tmp_path, f"http://127.0.0.1:{web}/events/")
        assert page.locator("tr.event").count() == 35
        bars = page.locator("#chart rect.bar title").all_text_contents()  # "type: count from start"
        assert sum(int(bar.split(": ")[1].split()[0]) for bar in bars) == 35
        assert {bar.split(":")[0] for bar in bars} == {"order_paid", "user_signed_up"}
        assert page.locator("#legend span").all_inner_texts() == ["order_paid", "user_signed_up"]

        page.fill("input[name=event_type]", "user_signed_up")
        page.click("button[type=submit]")
        assert page.locator("tr.event td.type").all_inner_texts() == ["user_signed_up"] * 5
        assert page.locator("#legend span").all_inner_texts() == ["user_signed_up"]
        page.locator("tr.event summary").first.click()
        assert '"plan": "pro"' in page.locator("tr.event pre").first.inner_text()

        page.fill("input[name=event_type]", "")
        page.fill("input[name=context]", "n=29")
        page.click("button[type=submit]")
        assert page.locator("tr.event").count() == 1

        page.fill("input[name=context]", "")
        page.select_option("select[name=limit]", "25")
        page.click("button[type=submit]")
        first_page = page.locator("tr.event summary").all_inner_texts()
        assert len(first_page) == 25
        assert page.locator("#newer").count() == 0
        page.click("#older")
        older = page.locator("tr.event summary").all_inner_texts()
        assert len(older) == 10
        assert not set(older) & set(first_page)
        assert page.locator("#older").count() == 0
        page.click("#newer")
        assert page.locator("tr.event summary").all_inner_texts() == first_page
        browser.close()
