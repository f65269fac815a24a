"""http_ingest_batch and http_ingest_single: concurrent keep-alive clients POSTing events over
loopback to the web server, run as `make run` runs it, while a worker relays what they write."""

from __future__ import annotations

import functools
import json
import multiprocessing
import statistics
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import seeding
from environment import (
    checkpoint,
    cpu_seconds,
    free_port,
    postgres_pids,
    running,
    session_pids,
    truncate_outbox,
    wait_until,
)
from eventlog.access.api_keys import create_api_key
from eventlog.monitoring.stats import outbox_stats
from figures import percentile
from sizes import Sizes
from workloads.load_client import ClientResult, Load, Window, run_client


def run(sizes: Sizes, log: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Both workloads, each on a web process and a worker of its own and an emptied outbox: the
    second must not pay for merging and flushing what the first wrote."""
    key = create_api_key(f"bench-{uuid.uuid4().hex[:8]}")[1]
    plans = {  # events per request, client processes
        "http_ingest_batch": (sizes.events_per_request, sizes.batch_clients),
        "http_ingest_single": (1, sizes.single_clients),
    }
    results = {name: measure(key, events, clients, sizes, log) for name, (events, clients) in plans.items()}
    truncate_outbox()
    return results


# The ways to serve POST /api/v1/events, each behind the web's buffering front (core/asgi.py): the
# hand-written fast path, Django's request cycle with only ingest's middleware, Django's full stack;
# and the fast path served by granian's WSGI straight, without the front, for what the front costs.
INGEST_PATHS = {
    "fast_path": "core.asgi:application",
    "lean_django": "core.asgi:lean_application",
    "full_django": "core.asgi:django_application",
    "fast_path_unbuffered": "core.wsgi:application",
}


def run_paths(sizes: Sizes, log: Callable[[str], None]) -> dict[str, Any]:
    """http_ingest_single on each way to serve ingest, in `sizes.path_rounds` rounds (each in another
    order), so that the machine's drift over the run falls on all three alike."""
    key = create_api_key(f"bench-{uuid.uuid4().hex[:8]}")[1]
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in INGEST_PATHS}
    names = list(INGEST_PATHS)
    for round_number in range(sizes.path_rounds):
        turn = round_number % len(names)
        for name in names[turn:] + names[:turn]:
            log(f"round {round_number + 1}: {name}")
            rounds[name].append(measure(key, 1, sizes.single_clients, sizes, log, INGEST_PATHS[name]))
    truncate_outbox()
    figures: dict[str, Any] = {
        name: {
            "web_cpu_us_per_request": statistics.median(r["cpu_us_per_request"]["web"] for r in results),
            "requests_per_s": statistics.median(r["requests_per_s"] for r in results),
            "p50_ms": statistics.median(r["p50_ms"] for r in results),
            "errors": sum(r["errors"] for r in results),
            "rounds": results,
        }
        for name, results in rounds.items()
    }
    lean, fast = figures["lean_django"], figures["fast_path"]
    # The rule: keep the hand-written path only if it saves more than 10% of the web's CPU.
    figures["fast_path_saves_web_cpu"] = 1 - fast["web_cpu_us_per_request"] / lean["web_cpu_us_per_request"]
    figures["full_over_lean_web_cpu"] = (
        figures["full_django"]["web_cpu_us_per_request"] / lean["web_cpu_us_per_request"]
    )
    unbuffered = figures["fast_path_unbuffered"]["web_cpu_us_per_request"]
    figures["front_over_wsgi_web_cpu"] = fast["web_cpu_us_per_request"] / unbuffered
    return figures


def measure(
    key: str, events: int, clients: int, sizes: Sizes, log: Callable[[str], None],
    web_application: str = "core.asgi:application",
) -> dict[str, Any]:  # fmt: skip
    truncate_outbox()
    checkpoint()
    port = free_port()
    label = "batch" if events > 1 else "single"
    web_options = {"web_bind": f"127.0.0.1:{port}", "web_application": web_application}
    with (
        running("worker", f"ingest-{label}-worker", embedded_beat=True) as worker,
        running("web", f"ingest-{label}-{web_application.replace(':', '-')}", **web_options) as web,
    ):
        wait_until(lambda: answers(port, key), "the web process", timeout=60, processes=[web])
        log(f"{clients} clients, {events} event(s) per request, {sizes.http_seconds:g} s")
        groups = {
            "web": functools.partial(session_pids, web.pid),
            "worker": functools.partial(session_pids, worker.pid),
            "postgresql": postgres_pids,
        }
        load, cpu = drive(port, key, request_body(events), clients, sizes, groups)
        pending_after = outbox_stats()["pending"]
        wait_until(lambda: outbox_stats()["pending"] == 0, "the relay to catch up", 300, [worker, web])
    figures = summarize(load, sizes, events)
    # Where the machine's time went, per accepted request, over the measured window.
    per_request = {name: seconds / max(figures["requests"], 1) * 1e6 for name, seconds in cpu.items()}
    return {
        **figures,
        "clients": clients,
        "pending_after_load": pending_after,
        "cpu_us_per_request": per_request,
    }


def answers(port: int, key: str) -> bool:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/stats", headers={"Authorization": f"Bearer {key}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (loopback)
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def request_body(events: int) -> bytes:
    """A JSON array of `events` events, or one object for a single event. Every request sends the
    same body: event ids are left to the server, so each request writes new events."""
    generator = seeding.rng(7)
    if events == 1:
        return json.dumps(seeding.request_event(generator)).encode()
    return json.dumps([seeding.request_event(generator) for _ in range(events)]).encode()


def drive(
    port: int, key: str, body: bytes, clients: int, sizes: Sizes, groups: dict[str, Callable[[], list[int]]]
) -> tuple[list[ClientResult], dict[str, float]]:
    """Run `clients` client processes over the same window; their results, and the CPU seconds each
    group of processes (and the clients) used inside the window. The window opens only once every
    client has started, so slow process start-up never shortens anyone's window."""
    context = multiprocessing.get_context("spawn")  # clean processes, not forks of this one
    results_queue = context.Queue()
    window = Window(context.Queue(), context.Event(), context.Array("d", 2))
    processes = [
        context.Process(target=run_client, args=(Load(port, key, body), window, results_queue))
        for _ in range(clients)
    ]
    for process in processes:
        process.start()
    for _ in processes:
        window.ready.get(timeout=120)
    start_at = time.monotonic() + sizes.http_warmup_seconds
    window.times[0], window.times[1] = start_at, start_at + sizes.http_seconds
    window.go.set()
    groups = {**groups, "clients": lambda: [process.pid for process in processes if process.pid]}
    time.sleep(max(start_at - time.monotonic(), 0))
    before = cpu_seconds(groups)
    time.sleep(max(start_at + sizes.http_seconds - time.monotonic(), 0))
    used = {name: seconds - before[name] for name, seconds in cpu_seconds(groups).items()}
    # Read before joining: a process that put a large result cannot exit until it is read.
    deadline = start_at + sizes.http_seconds + 120
    results: list[ClientResult] = [results_queue.get(timeout=deadline - time.monotonic()) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    return results, used


def summarize(results: list[ClientResult], sizes: Sizes, events_per_request: int) -> dict[str, Any]:
    latencies = sorted(latency for result in results for latency in result.latencies_s)
    statuses: Counter[int] = Counter()
    for result in results:
        statuses.update(result.statuses)
    accepted = statuses[202]
    return {
        "events_per_s": accepted * events_per_request / sizes.http_seconds,
        "requests_per_s": accepted / sizes.http_seconds,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "requests": len(latencies),
        "errors": len(latencies) - accepted,
        "statuses": {str(status): count for status, count in sorted(statuses.items())},
        "events_per_request": events_per_request,
    }
