from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client as HttpClient

from eventlog.access.api_keys import create_api_key
from eventlog.admin import COUNT_LIMIT
from eventlog.models import OutboxEvent
from eventlog.outbox.events import NewEvent, emit_events

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff() -> HttpClient:
    get_user_model().objects.create_superuser("admin", "admin@example.com", "pw")
    client = HttpClient()
    client.login(username="admin", password="pw")
    return client


def test_dead_letters_are_visible_in_the_admin_and_replayable(staff: HttpClient) -> None:
    emit_events([NewEvent("fine"), NewEvent("bad")])
    OutboxEvent.objects.filter(event_type="bad").update(
        failed_at="2026-01-01T00:00:00Z", last_error="Code: 469. VIOLATED_CONSTRAINT", rejections=1
    )
    page = staff.get("/admin/eventlog/outboxevent/?dead=yes")
    assert page.status_code == 200
    assert b"bad" in page.content
    assert b"fine" not in page.content

    dead = OutboxEvent.objects.get(event_type="bad")
    response = staff.post(
        "/admin/eventlog/outboxevent/", {"action": "replay", "_selected_action": [dead.pk]}, follow=True
    )
    assert b"1 dead letter(s) will be relayed again" in response.content
    assert OutboxEvent.objects.filter(failed_at__isnull=False).count() == 0


def test_api_keys_are_listed_with_their_scopes_and_environments(staff: HttpClient) -> None:
    create_api_key("dashboards", scopes=["read"], environments=["staging"])
    page = staff.get("/admin/eventlog/apikey/").content.decode()
    assert "dashboards" in page
    assert '<td class="field-scopes">read</td>' in page
    assert '<td class="field-environments">staging</td>' in page


def test_events_and_batches_are_read_only_with_no_add_edit_or_delete(staff: HttpClient) -> None:
    emit_events([NewEvent("order_paid")])
    event = OutboxEvent.objects.get()
    for model in ("outboxevent", "relaybatch", "apikey"):
        assert staff.get(f"/admin/eventlog/{model}/add/").status_code == 403
    change = f"/admin/eventlog/outboxevent/{event.pk}/change/"
    page = staff.get(change)
    assert page.status_code == 200  # shown, every field read-only
    assert b'name="_save"' not in page.content
    assert staff.post(change, {"event_type": "edited"}).status_code == 403
    assert staff.post(f"/admin/eventlog/outboxevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    listed = staff.get("/admin/eventlog/outboxevent/").content.decode()
    assert "delete_selected" not in listed
    assert OutboxEvent.objects.get().event_type == "order_paid"
    assert "Relay batches" in staff.get("/admin/").content.decode()


def test_a_list_counts_up_to_its_limit_and_says_more_than_beyond(staff: HttpClient) -> None:
    emit_events([NewEvent("order_paid") for _ in range(3)])
    assert "3 outbox events" in staff.get("/admin/eventlog/outboxevent/").content.decode()
    emit_events([NewEvent("order_paid") for _ in range(COUNT_LIMIT)])
    assert "more than 1000 outbox events" in staff.get("/admin/eventlog/outboxevent/").content.decode()
