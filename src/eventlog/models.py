"""The outbox tables in PostgreSQL.

An event's relay state is kept with the least writing per row, because every row version
PostgreSQL writes costs throughput (docs/design.md):

- pending:    `batch_id IS NULL` and `failed_at IS NULL`; the partial index `outbox_pending_idx`
              holds only these rows, so claiming costs the same however many rows were processed;
- claimed:    `batch_id` points at a RelayBatch that is `claimed` (recorded, not yet delivered);
- processed:  its RelayBatch is `delivered`: one update of the batch row marks all its events;
- failed:     `failed_at` is set, `batch_id` cleared: a dead letter, with `last_error` and the number of
              times ClickHouse rejected it (`rejections`); replaying clears `failed_at`.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.db.models.functions import Now


class RelayBatch(models.Model):
    """A set of outbox events sent to ClickHouse as one insert, under one deduplication token.

    The batch is recorded before the insert, so a relay that dies mid-way resends exactly the same
    rows with the same token, and ClickHouse drops the repeat.
    """

    class State(models.TextChoices):
        CLAIMED = "claimed"
        DELIVERED = "delivered"

    token = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    state = models.CharField(max_length=16, choices=State.choices, default=State.CLAIMED)
    row_count = models.PositiveIntegerField()
    oldest_created_at = models.DateTimeField()
    created_at = models.DateTimeField(db_default=Now())
    delivered_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(db_default=0)
    last_error = models.TextField(blank=True, db_default="")
    # Set once ClickHouse rejected the whole batch: from then on it is only ever sent in halves
    # (docs/design.md, "Poison events"), never again whole under `token`.
    split = models.BooleanField(db_default=False)

    class Meta:
        db_table = "eventlog_relay_batch"
        indexes = [
            models.Index(fields=["id"], condition=Q(state="claimed"), name="relay_batch_claimed_idx"),
        ]

    def __str__(self) -> str:
        return f"batch {self.pk} ({self.state}, {self.row_count} events)"


class OutboxEvent(models.Model):
    """One event, written in the producer's transaction, relayed to ClickHouse's event_log."""

    event_id = models.UUIDField(unique=True)
    event_type = models.CharField(max_length=255)
    event_date_time = models.DateTimeField()
    environment = models.CharField(max_length=255)
    event_context = models.JSONField(default=dict)
    metadata_version = models.BigIntegerField()
    created_at = models.DateTimeField(db_default=Now())
    # No database constraint: the relay writes a batch row in the same transaction as the claim, and a
    # deferred foreign-key check would cost one trigger and one lookup per claimed event at commit.
    batch = models.ForeignKey(
        RelayBatch, null=True, blank=True, on_delete=models.DO_NOTHING, db_index=False, db_constraint=False
    )
    failed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, db_default="")
    rejections = models.PositiveIntegerField(db_default=0)

    class Meta:
        db_table = "eventlog_outbox_event"
        indexes = [
            models.Index(
                fields=["id"],
                condition=Q(batch__isnull=True, failed_at__isnull=True),
                name="outbox_pending_idx",
            ),
            # Without NULLs, so the planner's only index for pending rows is outbox_pending_idx.
            models.Index(fields=["batch"], condition=Q(batch__isnull=False), name="outbox_batch_idx"),
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


class ApiKey(models.Model):
    """A key for the HTTP API. Only its SHA-256 is stored: keys are random 256-bit tokens, so a
    fast hash is as safe as a slow one and keeps authentication to one indexed lookup."""

    name = models.CharField(max_length=100, unique=True)
    prefix = models.CharField(max_length=12, help_text="The key's first characters, to tell keys apart.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "eventlog_api_key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
