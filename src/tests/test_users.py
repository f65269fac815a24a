from __future__ import annotations

import pytest
from clickhouse_connect.driver.client import Client
from django.contrib.auth import get_user_model
from django.db import IntegrityError

from eventlog.clickhouse.event_log import EventLogWriter
from eventlog.models import OutboxEvent
from eventlog.relay.delivery import relay_outbox
from tests.conftest import event_log
from users.services import CreateUser

pytestmark = pytest.mark.django_db(transaction=True)


def test_create_user_writes_the_user_and_its_event_which_reaches_clickhouse(
    writer: EventLogWriter, clickhouse: Client
) -> None:
    user = CreateUser(email="ada@example.com", first_name="Ada", last_name="Lovelace")()
    assert get_user_model().objects.filter(pk=user.pk).exists()
    outbox = OutboxEvent.objects.get()
    assert outbox.event_type == "user_created"

    relay_outbox(writer, batch_size=100, max_batches=1)
    [row] = event_log(clickhouse)
    assert row["event_id"] == outbox.event_id
    assert row["event_type"] == "user_created"
    assert row["environment"] == "test"
    assert row["metadata_version"] == 1
    assert (
        row["event_context"] == '{"email": "ada@example.com", "last_name": "Lovelace", "first_name": "Ada"}'
    )


def test_a_failed_create_user_leaves_neither_user_nor_event(
    writer: EventLogWriter, clickhouse: Client
) -> None:
    CreateUser(email="ada@example.com", first_name="Ada", last_name="Lovelace")()
    with pytest.raises(IntegrityError):
        CreateUser(email="ada@example.com", first_name="Another", last_name="Ada")()
    assert get_user_model().objects.count() == 1
    assert OutboxEvent.objects.count() == 1
    relay_outbox(writer, batch_size=100, max_batches=1)
    assert len(event_log(clickhouse)) == 1
