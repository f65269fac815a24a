from __future__ import annotations

from io import StringIO

import pytest
from clickhouse_connect.driver.client import Client
from django.core.management import CommandError, call_command

from eventlog.api_keys import authenticate
from eventlog.events import NewEvent, emit_events
from tests.conftest import event_log_counts

pytestmark = pytest.mark.django_db(transaction=True)


def test_create_api_key_prints_a_working_key_alone_on_the_last_line() -> None:
    out = StringIO()
    call_command("create_api_key", "billing", stdout=out)
    key = out.getvalue().strip().splitlines()[-1]
    api_key = authenticate(f"Bearer {key}")
    assert api_key is not None
    assert api_key.name == "billing"


def test_create_api_key_takes_scopes_and_environments_and_refuses_unknown_scopes() -> None:
    out = StringIO()
    call_command(
        "create_api_key",
        "dashboards",
        "--scope",
        "read",
        "--environment",
        "eu",
        "--environment",
        "us",
        stdout=out,
    )
    assert "scopes read, environments eu, us" in out.getvalue()
    api_key = authenticate(f"Bearer {out.getvalue().strip().splitlines()[-1]}")
    assert api_key is not None
    assert (api_key.scopes, api_key.environments) == (["read"], ["eu", "us"])
    with pytest.raises(CommandError, match="scopes must be some of ingest, read"):
        call_command("create_api_key", "typo", "--scope", "reads", stdout=StringIO())


def test_relay_outbox_once_drains_the_outbox(clickhouse: Client) -> None:
    emit_events([NewEvent("a") for _ in range(1_234)])
    out = StringIO()
    call_command("relay_outbox", "--once", "--batch-size", "500", stdout=out)
    assert "relayed 1234 events in 3 batches" in out.getvalue()
    assert event_log_counts(clickhouse) == (1_234, 1_234)
