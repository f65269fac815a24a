"""The outbox tables in PostgreSQL.

Relaying writes nothing to an event's row, since every row version PostgreSQL writes costs
throughput. An event's relay state follows from `txid`, the id of the transaction that wrote it, and
`id` (docs/design.md, "Snapshot windows"):

- pending:    not yet visible in the relay cursor's window, or after the cursor's position in it;
- claimed:    inside a RelayBatch that is `claimed` (recorded, not yet delivered);
- processed:  inside a `delivered` RelayBatch: one update of the batch row marks them all;
- failed:     `failed_at` is set: a dead letter, with `last_error` and the number of times ClickHouse
              rejected it (`rejections`); replaying writes it again as a new, pending event.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now


class Xid8Field(models.BigIntegerField):  # type: ignore[type-arg]
    """A PostgreSQL xid8: a 64-bit transaction id that never wraps around; an int in Python."""

    def db_type(self, connection: Any) -> str:
        return "xid8"

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> int | None:
        return None if value is None else int(value)

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> str | None:
        return None if value is None else str(value)


class CurrentTransactionId(models.Func):
    """The id of the transaction writing the row."""

    template = "pg_current_xact_id()"
    output_field = Xid8Field()


class RelayBatch(models.Model):
    """The outbox events that became visible between snapshots `low` and `high`, from position
    (after_txid, after_id) exclusive to (last_txid, last_id) inclusive, sent to ClickHouse as one
    insert under one deduplication token.

    The batch is recorded before the insert, so a relay that dies mid-way resends exactly the same
    rows with the same token, and ClickHouse drops the repeat.
    """

    class State(models.TextChoices):
        CLAIMED = "claimed"
        DELIVERED = "delivered"

    token = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    state = models.CharField(max_length=16, choices=State.choices, default=State.CLAIMED)
    low_snapshot = models.TextField()
    high_snapshot = models.TextField()
    after_txid = Xid8Field()
    after_id = models.BigIntegerField()
    last_txid = Xid8Field()
    last_id = models.BigIntegerField()
    row_count = models.PositiveIntegerField()
    oldest_created_at = models.DateTimeField()
    created_at = models.DateTimeField(db_default=Now())  # the claim's transaction began
    # The claim had found its events (clock_timestamp()): minus created_at, how long the claim took;
    # delivered_at minus this, how long the delivery took. Empty for batches claimed before 0003.
    claimed_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(db_default=0)
    last_error = models.TextField(blank=True, db_default="")
    # Set once ClickHouse rejected the whole batch: from then on it is only ever sent in halves
    # (docs/design.md, "Poison events"), never again whole under `token`.
    split = models.BooleanField(db_default=False)

    class Meta:
        db_table = "eventlog_relay_batch"
        verbose_name_plural = "relay batches"
        indexes = [
            models.Index(fields=["id"], condition=Q(state="claimed"), name="relay_batch_claimed_idx"),
            # The purge's next expired batch, found without reading the batches not yet expired.
            models.Index(
                fields=["delivered_at", "id"],
                condition=Q(state="delivered"),
                name="relay_batch_delivered_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"batch {self.pk} ({self.state}, {self.row_count} events)"


class RelayCursor(models.Model):
    """One row: the window being claimed (events visible in `high_snapshot` but not in `low_snapshot`)
    and the position of the last event claimed from it. Claims lock it, one at a time."""

    low_snapshot = models.TextField()
    high_snapshot = models.TextField()
    after_txid = Xid8Field()
    after_id = models.BigIntegerField()

    class Meta:
        db_table = "eventlog_relay_cursor"


class ProcessedCount(models.Model):
    """One row: how many delivered events the outbox still holds. Settling a batch adds its events
    and the purge subtracts them, in the statement that changes the batch row, so reading the figure
    costs one row however many batches were delivered (`relay.COUNT_PROCESSED`). Started by
    migration 0003 from the batches delivered then: run it with the relay stopped."""

    events = models.BigIntegerField(default=0)

    class Meta:
        db_table = "eventlog_processed_count"


class OutboxEvent(models.Model):
    """One event, written in the producer's transaction, relayed to ClickHouse's event_log."""

    txid = Xid8Field(db_default=CurrentTransactionId(), editable=False)
    event_id = models.UUIDField(unique=True)
    event_type = models.CharField(max_length=255)
    event_date_time = models.DateTimeField()
    environment = models.CharField(max_length=255)
    event_context = models.JSONField(default=dict)
    metadata_version = models.BigIntegerField()
    created_at = models.DateTimeField(db_default=Now())
    failed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, db_default="")
    rejections = models.PositiveIntegerField(db_default=0)

    class Meta:
        db_table = "eventlog_outbox_event"
        indexes = [
            # The relay's order: claims, batch reads, stats and retention are range scans on it.
            models.Index(fields=["txid", "id"], name="outbox_position_idx"),
            models.Index(fields=["id"], condition=Q(failed_at__isnull=False), name="outbox_failed_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(metadata_version__gte=0), name="outbox_metadata_version_gte_0"
            ),
            models.CheckConstraint(condition=~Q(event_type=""), name="outbox_event_type_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"


def default_scopes() -> list[str]:
    return ["ingest"]


class ApiKey(models.Model):
    """A key for the HTTP API. Only its SHA-256 is stored: keys are random 256-bit tokens, so a
    fast hash is as safe as a slow one and keeps authentication to one indexed lookup.

    `scopes` says what it may do (`ingest`: send events; `read`: read them back); `environments`,
    when not empty, are the only environments it may send or read."""

    class Scope(models.TextChoices):
        INGEST = "ingest"
        READ = "read"

    name = models.CharField(max_length=100, unique=True)
    prefix = models.CharField(max_length=12, help_text="The key's first characters, to tell keys apart.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    scopes = ArrayField(models.CharField(max_length=16, choices=Scope.choices), default=default_scopes)
    environments = ArrayField(models.CharField(max_length=255), default=list, blank=True)

    class Meta:
        db_table = "eventlog_api_key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def allows(self, scope: str) -> bool:
        return scope in self.scopes
