"""How big each workload is: the full sizes the issue asks for, and tiny ones for CI's smoke run."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Sizes:
    backlog: int  # relay_drain: pending events drained by each relay; relay_backlog: written over HTTP
    history: int  # relay_backlog: processed events the outbox holds before the backlog arrives
    trickle_runs: int  # relay_backlog: relay runs of `trickle_events` events each on the full outbox
    trickle_events: int
    stats_requests: int  # relay_backlog: GET /api/v1/stats timed this many times, twice
    http_seconds: float  # measured load per HTTP workload
    http_warmup_seconds: float  # load before the measured window, not counted
    batch_clients: int  # client processes of http_ingest_batch
    single_clients: int  # client processes of http_ingest_single
    path_rounds: int  # rounds of http_ingest_paths (each way to serve ingest once per round)
    events_per_request: int  # http_ingest_batch
    emit_events: int  # emit_many, and the raw COPY beside it
    emit_chunk: int  # events per emit_events call, one transaction each
    e2e_events_per_s: int  # e2e_latency's steady producer rate
    e2e_seconds: float  # how long it produces
    e2e_events_per_transaction: int
    read_events: int  # read_api: events in event_log, over read_days
    read_days: int
    read_requests: int  # read_api: times each page is asked
    read_count_requests: int  # read_api: times counts and the context filter are asked
    read_export_events: int  # read_api: the NDJSON export's size

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


FULL = Sizes(
    backlog=1_000_000,
    history=9_000_000,  # with the backlog, the ten million rows a trickle run meets
    trickle_runs=21,  # the first opens this process's ClickHouse writer and is not counted
    trickle_events=100,
    stats_requests=20,
    http_seconds=15.0,
    http_warmup_seconds=2.0,
    batch_clients=8,
    single_clients=16,
    path_rounds=3,
    events_per_request=100,
    emit_events=100_000,
    emit_chunk=1_000,
    e2e_events_per_s=5_000,
    e2e_seconds=60.0,
    e2e_events_per_transaction=100,
    read_events=10_000_000,
    read_days=30,
    read_requests=200,
    read_count_requests=20,
    read_export_events=1_000_000,
)

# The same code paths on sizes that finish in well under two minutes: figures mean nothing here.
SMOKE = Sizes(
    backlog=2_000,
    history=20_000,
    trickle_runs=3,
    trickle_events=100,
    stats_requests=3,
    http_seconds=2.0,
    http_warmup_seconds=0.5,
    batch_clients=2,
    single_clients=2,
    path_rounds=1,
    events_per_request=100,
    emit_events=2_000,
    emit_chunk=1_000,
    e2e_events_per_s=500,
    e2e_seconds=5.0,
    e2e_events_per_transaction=100,
    read_events=20_000,
    read_days=30,
    read_requests=3,
    read_count_requests=2,
    read_export_events=2_000,
)
