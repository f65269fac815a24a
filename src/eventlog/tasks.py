"""Celery shells around the relay: retry policy in the decorator, the work in `eventlog.relay`."""

from __future__ import annotations

from dataclasses import asdict

import sentry_sdk
from celery import shared_task
from django.conf import settings

from eventlog.errors import ClickHouseError
from eventlog.relay import relay_outbox
from eventlog.sinks import event_log_writer


@shared_task(
    name="eventlog.relay_outbox",
    autoretry_for=(ClickHouseError,),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=10,
)
def relay_outbox_task() -> dict[str, int]:
    config = settings.EVENTLOG
    try:
        result = relay_outbox(event_log_writer(), config.relay_batch_size, config.relay_max_batches_per_run)
    except ClickHouseError:
        sentry_sdk.capture_exception()  # reported on every attempt; a no-op without SENTRY_DSN
        raise
    return asdict(result)
