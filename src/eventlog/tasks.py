"""Celery shells: retry policy in the decorators, the work in eventlog.scheduling.runs and
eventlog.relay.retention."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Task, shared_task

from eventlog.conf import app_settings
from eventlog.errors import ClickHouseUnavailable, RetryPending
from eventlog.relay.retention import purge_processed
from eventlog.runtime import event_log_writer, relay_coordinator
from eventlog.scheduling.beat import PURGE_TASK, RELAY_TASK
from eventlog.scheduling.runs import run_scheduled_relay


@shared_task(
    bind=True,
    name=RELAY_TASK,
    autoretry_for=(ClickHouseUnavailable,),
    # Another run's retry is already scheduled: no retry of this one, and an expected error for the
    # worker and Sentry (the failed insert itself was reported before RetryPending was raised).
    dont_autoretry_for=(RetryPending,),
    throws=(RetryPending,),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=10,
    # Beat's ticks expire after one interval; a retry would inherit that expiry and be discarded
    # before its backoff countdown ends, so retries carry none.
    retry_kwargs={"expires": None},
)
def relay_outbox_task(self: Task[Any, Any]) -> dict[str, Any]:
    config, retries = app_settings(), self.request.retries
    return run_scheduled_relay(
        relay_coordinator(), event_log_writer(), batch_size=config.relay_batch_size,
        max_batches=config.relay_max_batches_per_run, is_retry=retries > 0,
        last_attempt=retries >= (self.max_retries or 0),
    )  # fmt: skip


@shared_task(name=PURGE_TASK)
def purge_outbox_task() -> dict[str, int]:
    cutoff = datetime.now(UTC) - timedelta(days=app_settings().outbox_retention_days)
    return asdict(purge_processed(cutoff, max_batches=100))
