"""A relay process that dies at a named step, for the crash-point tests.

    python -m tests.faults.crash_relay STEP BATCH_SIZE

Steps: after_claim, during_insert, after_insert, during_settle_commit. The process exits with
os._exit (no cleanup, no commit), like a SIGKILL, at that point of its first batch.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import Any

import django

django.setup()

from django.db import connection  # noqa: E402

from eventlog.relay.delivery import claim_batch, relay_outbox  # noqa: E402
from eventlog.runtime import event_log_writer  # noqa: E402

CRASHED = 70


def crash() -> None:
    os._exit(CRASHED)


class CrashingSink:
    def __init__(self, step: str) -> None:
        self.step = step
        self.writer = event_log_writer()

    def write_csv(self, block: bytes | bytearray, token: str) -> None:
        self.crashing_around(lambda: self.writer.write_csv(block, token))

    def write_batch(self, columns: list[list[Any]], token: str) -> None:
        self.crashing_around(lambda: self.writer.write_batch(columns, token))

    def crashing_around(self, insert: Callable[[], None]) -> None:
        if self.step == "during_insert":
            threading.Timer(0.005, crash).start()  # dies while the engine is writing the batch
        insert()
        if self.step in {"during_insert", "after_insert"}:
            crash()


def crash_on_settle(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
    result = execute(sql, params, many, context)
    if "SET state = 'delivered'" in sql:
        crash()  # the UPDATE ran, its COMMIT never happens
    return result


def main(step: str, batch_size: int) -> None:
    event_log_writer().client()  # open the engine and the schema before the clock starts
    if step == "after_claim":
        claim_batch(batch_size)
        crash()
    if step == "during_settle_commit":
        connection.execute_wrappers.append(crash_on_settle)
    relay_outbox(CrashingSink(step), batch_size, max_batches=1)
    sys.exit("the relay finished without reaching its crash point")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
