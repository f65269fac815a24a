from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client
from django.core.management import CommandError, call_command

from eventlog.access.api_keys import authenticate
from eventlog.clickhouse.event_log import EventLogWriter
from eventlog.outbox.events import NewEvent, emit_events
from tests.conftest import event_log_counts
from tests.reading.conftest import Stored, spread, store

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


def test_events_prints_a_table_and_writes_an_export_with_the_apis_filters(
    writer: EventLogWriter, clickhouse: Client, tmp_path: Path
) -> None:
    store(writer, [*spread(30, event_type="paid", event_context={"plan": "pro"}), Stored("refunded")])
    out = StringIO()
    window = ["--from", "2026-11-19T00:00:00Z", "--to", "2026-11-21T00:00:00Z"]
    call_command("events", *window, "--type", "paid", "--limit", "5", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["event_date_time", "event_type", "environment", "event_id", "event_context"]
    assert len(lines) == 1 + 5 + 1
    assert "5 event(s) (more:" in lines[-1]
    assert "2026-11-20T00:00:29.000000Z" in lines[1]
    target = tmp_path / "paid.ndjson"
    call_command(
        "events", *window, "--context", "plan=pro", "--format", "ndjson", "--output", str(target), stdout=out
    )
    exported = [json.loads(line) for line in target.read_bytes().splitlines()]
    assert exported[-1] == {"complete": True, "events": 30}
    assert "wrote 30 event(s)" in out.getvalue()
    with pytest.raises(CommandError, match="offset"):
        call_command("events", "--from", "2026-11-19T00:00:00", stdout=StringIO())
