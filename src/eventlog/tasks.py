"""Celery shells around the relay: retry policy in the decorator, the work in `eventlog.relay`."""

from __future__ import annotations

import logging
from dataclasses import asdict

import sentry_sdk
from celery import shared_task
from django.conf import settings

from eventlog.errors import ClickHouseError
from eventlog.relay import relay_outbox
from eventlog.sinks import event_log_writer

log = logging.getLogger(__name__)


@shared_task(
    name="eventlog.relay_outbox",
    autoretry_for=(ClickHouseError,),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=10,
    # Beat's ticks expire after one interval; a retry would inherit that expiry and be discarded
    # before its backoff countdown ends, so retries carry none.
    retry_kwargs={"expires": None},
)
def relay_outbox_task() -> dict[str, int]:
    config = settings.EVENTLOG
    try:
        result = relay_outbox(event_log_writer(), config.relay_batch_size, config.relay_max_batches_per_run)
    except ClickHouseError:
        sentry_sdk.capture_exception()  # reported on every attempt; a no-op without SENTRY_DSN
        raise
    if result.events:
        log.info("relayed %d events in %d batches", result.events, result.batches)
    return asdict(result)
