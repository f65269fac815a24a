"""The status page at `/`: for staff, from PostgreSQL, refreshing itself; rendered by a real Chromium."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client as HttpClient

from eventlog.access.api_keys import create_api_key
from eventlog.clickhouse.event_log import EventLogWriter
from eventlog.models import OutboxEvent
from eventlog.outbox.events import NewEvent, emit_events
from eventlog.relay.delivery import relay_outbox
from tests.processes import manage, new_database, process_env, running, start
from tests.test_processes import free_port, post_events

pytestmark = pytest.mark.django_db(transaction=True)

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# The flags the machine needs: no sandbox as root, no GPU, and nothing that reaches for the internet.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]  # fmt: skip


def staff_client() -> HttpClient:
    get_user_model().objects.create_superuser("ops", "ops@example.com", "pass-word-1")
    http = HttpClient()
    assert http.login(username="ops", password="pass-word-1")
    return http


def test_the_status_page_is_for_staff_only() -> None:
    response = HttpClient().get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_the_status_page_shows_pending_events_batches_and_dead_letters(
    writer: EventLogWriter, clickhouse: Client
) -> None:
    http = staff_client()
    emit_events([NewEvent("shown") for _ in range(12)])
    page = http.get("/").content.decode()
    assert '<div class="figure" id="pending"><strong>12</strong>' in page
    assert 'http-equiv="refresh"' in page
    relay_outbox(writer, batch_size=5, max_batches=10)
    OutboxEvent.objects.filter(pk=OutboxEvent.objects.order_by("id").first().pk).update(  # type: ignore[union-attr]
        failed_at="2026-11-25T10:00:00Z",
        last_error="Code: 469. Constraint `no_poison` violated",
        rejections=1,
    )
    page = http.get("/").content.decode()
    assert '<div class="figure" id="pending"><strong>0</strong>' in page
    assert "<strong>12</strong>delivered in the last minute" in page
    assert page.count("<td>delivered</td>") == 3
    assert "Constraint `no_poison` violated" in page


@pytest.fixture
def web(tmp_path: Path) -> Iterator[int]:
    """The real web server on the test database, with a staff user `ops` (created by the web's own
    settings: this test process hashes passwords with a hasher the server does not accept)."""
    port = free_port()
    env = process_env(new_database(), DJANGO_SUPERUSER_PASSWORD="pass-word-1")
    manage(env, "createsuperuser", "--noinput", "--username", "ops", "--email", "ops@example.com")
    with running(start("web", env, tmp_path / "schedule", web_bind=f"127.0.0.1:{port}")):
        yield port


@pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian's chromium (make test installs it)")
def test_chromium_renders_the_live_numbers_as_events_flow(
    web: int, tmp_path: Path, writer: EventLogWriter, clickhouse: Client
) -> None:
    from playwright.sync_api import sync_playwright

    key = create_api_key("browser")[1]
    post_events(web, key, 1)  # waits until the server answers
    relay_outbox(writer, batch_size=100, max_batches=1)
    with sync_playwright() as playwright:
        browser, page = staff_page(playwright, tmp_path, f"http://127.0.0.1:{web}/")
        assert figure(page, "pending") == "0"
        post_events(web, key, 25)
        wait_for_figure(page, "pending", "25")  # the page reloads itself; the test never does
        relay_in_a_thread(writer)
        wait_for_figure(page, "pending", "0")
        assert figure(page, "delivered") == "26"
        assert page.locator("#batches tr").count() == 1 + 4  # header, then the newest batch first
        browser.close()


def staff_page(playwright: Any, tmp_path: Path, url: str) -> tuple[Any, Any]:
    """Debian's Chromium on `url`, logged in as the `web` fixture's staff user `ops` through the
    admin's login form, which sends it back to `url`."""
    browser = playwright.chromium.launch_persistent_context(
        str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
    )
    page = browser.new_page()
    page.goto(url)
    page.fill("#id_username", "ops")
    page.fill("#id_password", "pass-word-1")
    page.click("input[type=submit]")
    return browser, page


def relay_in_a_thread(writer: EventLogWriter) -> None:
    """Playwright's sync API keeps an event loop in this thread, where Django refuses the ORM."""

    def relay() -> None:
        try:
            relay_outbox(writer, batch_size=10, max_batches=10)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(1) as executor:
        executor.submit(relay).result()


def figure(page: object, name: str) -> str:
    return str(page.locator(f"#{name} strong").text_content()).strip()  # type: ignore[attr-defined]


def wait_for_figure(page: object, name: str, expected: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        try:
            seen = figure(page, name)
        except Exception:
            seen = None
        if seen == expected:
            return
        time.sleep(0.2)
    raise AssertionError(f"#{name} shows {seen!r}, not {expected!r}")
