from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client as HttpClient

from eventlog.access.api_keys import create_api_key
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
