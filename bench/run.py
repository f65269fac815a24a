"""The benchmark: every workload of the issue, side by side in one run, on the project's PostgreSQL,
Redis and embedded ClickHouse server, with the system's processes started exactly as `make run` does.

python bench/run.py            full sizes (`make bench`): prints a table, writes bench/results/latest.json
python bench/run.py --smoke    the same code on tiny sizes (`make bench-smoke`, in CI): smoke.json
python bench/run.py --only relay_drain,emit_many    a subset, written to var/bench/partial.json

Nothing here asserts anything about time; a run fails only when a workload cannot run or its
events do not all arrive.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import django  # noqa: E402
from django.conf import settings  # noqa: E402

import environment  # noqa: E402
import report  # noqa: E402
from sizes import FULL, SMOKE, Sizes  # noqa: E402

RESULTS = ROOT / "bench" / "results"
# relay_backlog first: it must find the outbox as a new database leaves it, never analyzed
# (relay_drain analyzes it, and a truncated table keeps its statistics).
WORKLOADS = (
    "relay_backlog",
    "relay_drain",
    "http_ingest",
    "http_ingest_paths",
    "emit_many",
    "e2e_latency",
    "read_api",
)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    sizes = SMOKE if args.smoke else FULL
    # SIGTERM unwinds like Ctrl-C, so every started process group is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    environment.configure()  # before django.setup(): settings are read once, at import
    environment.reset_state()
    server = environment.start_clickhouse()
    try:
        django.setup()
        environment.prepare_database()
        results = run_workloads(sizes, args.only)
        # The server's memory now, and its peak over the last workload (VmHWM is reset before each).
        results["workloads"]["clickhouse_server"] = environment.memory_mb(server.pid)
    finally:
        environment.stop(server)
    output = RESULTS / "smoke.json" if args.smoke else RESULTS / "latest.json"
    if args.only != WORKLOADS:
        output = environment.VAR / "partial.json"
    report.write(output, results)
    print(report.table(results["workloads"]))
    print(f"written to {output.relative_to(ROOT)}")
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes; results in bench/results/smoke.json"
    )
    parser.add_argument(
        "--only",
        type=lambda text: tuple(name for name in WORKLOADS if name in text.split(",")),
        default=WORKLOADS,
        help=f"comma-separated subset of {', '.join(WORKLOADS)}",
    )
    return parser.parse_args(argv)


def run_workloads(sizes: Sizes, only: tuple[str, ...]) -> dict[str, Any]:
    # Imported only now: the workloads define and use Django models.
    from eventlog.clickhouse.event_log import EventLogWriter
    from workloads import backlog, e2e, emit, ingest, reading, relay

    began = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - began:7.1f} s] {message}", flush=True)

    # This process's client of the run's ClickHouse server, for the baselines (event_log ensured).
    client = EventLogWriter(settings.CONFIG.clickhouse_url).client()
    results: dict[str, Any] = {
        "generated_at": report.now(),
        "smoke": sizes == SMOKE,
        "source": report.source(),
        "machine": report.machine(),
        "versions": report.versions(client),
        "settings": report.run_settings(sizes),
    }
    steps: dict[str, Callable[[], dict[str, Any]]] = {
        "relay_drain": lambda: relay.run(sizes, client, log),
        "relay_backlog": lambda: backlog.run(sizes, client, log),
        "http_ingest": lambda: ingest.run(sizes, log),
        "http_ingest_paths": lambda: ingest.run_paths(sizes, log),
        "emit_many": lambda: emit.run(sizes, log),
        "e2e_latency": lambda: e2e.run(sizes, log),
        "read_api": lambda: reading.run(sizes, client, log),
    }
    workloads: dict[str, Any] = {}
    durations: dict[str, float] = {}
    server_peaks: dict[str, float] = {}
    for name in only:
        environment.checkpoint()
        log(f"{name} ...")
        step_began = time.monotonic()
        environment.reset_server_peak()
        workloads.update(as_workloads(name, steps[name]()))
        server_peaks[name] = environment.server_peak_since_reset()
        durations[name] = round(time.monotonic() - step_began, 1)
    # relay_drain's is from the start of our relay's drain (its baselines' single inserts of the whole
    # backlog are not the server's load): relay.drain_with_worker resets it again.
    workloads["clickhouse_server_peak_rss_mb_by_workload"] = server_peaks
    log("done")
    return {**results, "workloads": workloads, "workload_seconds": durations}


def as_workloads(name: str, figures: dict[str, Any]) -> dict[str, Any]:
    """Place one step's figures under the keys of the results file."""
    if name == "relay_drain":
        worker_memory = figures.pop("worker_memory")
        return {"relay_drain": figures, "worker_memory": worker_memory}
    if name == "http_ingest":
        return figures  # already keyed http_ingest_batch and http_ingest_single
    return {name: figures}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
