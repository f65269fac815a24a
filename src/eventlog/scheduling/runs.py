"""Relay runs started by Celery: the policy around `relay_outbox` that needs shared state."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import structlog

try:
    import sentry_sdk
except ImportError:  # without the `sentry` extra there is nowhere to report to
    sentry_sdk = None  # type: ignore[assignment]

from eventlog.errors import ClickHouseUnavailable, RetryPending
from eventlog.metrics import RELAY_RETRIES
from eventlog.relay.delivery import BatchSink, relay_outbox
from eventlog.scheduling.coordination import RelayCoordinator

log = structlog.get_logger(__name__)


def run_scheduled_relay(
    coordinator: RelayCoordinator,
    sink: BatchSink,
    *,
    batch_size: int,
    max_batches: int,
    is_retry: bool,
    last_attempt: bool,
) -> dict[str, Any]:
    """One relay run, started by beat's tick or by a Celery retry of a failed run.

    A tick does nothing while a failed run's retry is pending (the backoff gate) or while every
    run slot is taken; a retry passes the gate. On ClickHouseUnavailable the error is reported to
    Sentry, the gate is closed and the error raised, for Celery to schedule the retry; but a tick
    that fails after another run closed the gate raises RetryPending instead (the task does not
    retry it), so runs failing together leave one retry pending, not one each. On the last attempt,
    or when a retry finds every slot taken, the gate opens again so the next tick starts afresh.
    A successful run opens the gate.
    """
    if not is_retry and coordinator.backing_off():
        return {"skipped": "backing off"}
    lease = coordinator.try_acquire_slot()
    if lease is None:
        if is_retry:  # the runs holding the slots decide: they close the gate again if they fail
            coordinator.end_backoff()
        return {"skipped": "busy"}

    def before_claim(events: int) -> None:
        lease.renew()
        coordinator.throttle(events)

    describe_run(batch_size=batch_size, is_retry=is_retry)
    try:
        result = relay_outbox(sink, batch_size, max_batches, before_claim)
    except ClickHouseUnavailable as exc:
        report_failure(exc)
        if last_attempt:
            coordinator.end_backoff()
        elif coordinator.start_backoff(retrying=is_retry):
            RELAY_RETRIES.inc()
        else:
            raise RetryPending(str(exc), exc.code) from exc
        raise
    finally:
        lease.release()
    coordinator.end_backoff()
    describe_run(**asdict(result))
    if result.events or result.dead_lettered:
        log.info("relay run", **asdict(result))
    return asdict(result)


def describe_run(**data: object) -> None:
    """Attach figures to the run's Sentry transaction (Celery's integration makes one per task run);
    a no-op without SENTRY_DSN or when the run is not traced."""
    if sentry_sdk is None:
        return
    transaction = sentry_sdk.get_current_scope().transaction
    if transaction is not None:
        for key, value in data.items():
            transaction.set_data(key, value)


def report_failure(exc: ClickHouseUnavailable) -> None:
    """Send the failed insert to Sentry with the batch it was delivering, before Celery retries
    (every attempt is reported); a no-op without SENTRY_DSN."""
    if sentry_sdk is None:
        return
    with sentry_sdk.new_scope() as scope:
        scope.set_context(
            "relay_batch", {"batch_id": exc.batch_id, "row_count": exc.row_count, "clickhouse_code": exc.code}
        )
        scope.set_tag("clickhouse_code", str(exc.code))
        scope.capture_exception(exc)
