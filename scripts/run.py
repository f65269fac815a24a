"""Run the system in the foreground; Ctrl-C (or SIGTERM) stops every process it started.

python scripts/run.py              the embedded ClickHouse (unless EMBEDDED_CLICKHOUSE=0), web,
                                   worker with beat inside it, and Flower (`make run`)
python scripts/run.py NAME         one process: clickhouse, web, worker, beat or flower (`make NAME`)

The embedded ClickHouse starts first (and event_log is brought up to date on it), and stops last.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from core.env import Config, load_config  # noqa: E402
from core.processes import clickhouse_answers, process_argv  # noqa: E402

STOP_SECONDS = 90


def main(names: list[str]) -> int:
    (ROOT / "var").mkdir(exist_ok=True)
    schedule = ROOT / "var" / "celerybeat-schedule"
    together = not names
    config = load_config()
    everything = ["clickhouse"] if config.embedded_clickhouse_path else []
    argvs = {
        name: process_argv(name, schedule, embedded_beat=together, web_bind=config.web_bind)
        for name in (names or [*everything, "web", "worker", "flower"])
    }
    children: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGHUP: the terminal closed
        signal.signal(signum, stop)
    try:
        if not start_all(argvs, children, config, together):
            return finish(children, ["clickhouse (it did not answer)"])
        while not stopping and all(child.poll() is None for child in children.values()):
            time.sleep(0.2)
    except BaseException:
        finish(children, [])
        raise
    exited = [name for name, child in children.items() if child.poll() is not None]
    return finish(children, [] if stopping else exited)


def start_all(argvs: dict[str, list[str]], children: dict[str, subprocess.Popen[bytes]], config: Config,
              together: bool) -> bool:  # fmt: skip
    """Start every process in order, into `children`; False if the embedded ClickHouse never answered."""
    for name, argv in argvs.items():
        if name == "web" and together:  # ClickHouse is up: event_log first, on either kind of it
            subprocess.run([sys.executable, "manage.py", "migrate_clickhouse"], cwd=ROOT / "src", check=True)
        # Our own argv lists, no user input: S603 does not apply. ClickHouse gets a session of its
        # own, so that Ctrl-C in the terminal does not reach it before the others have stopped.
        children[name] = subprocess.Popen(argv, cwd=ROOT / "src", start_new_session=name == "clickhouse")  # noqa: S603
        if (
            name == "clickhouse"
            and together
            and not clickhouse_answers(config.clickhouse_url, children[name])
        ):
            return False
    if together:
        print("web http://127.0.0.1:8000  flower http://127.0.0.1:5555  (Ctrl-C stops all)", flush=True)
    return True


def finish(children: dict[str, subprocess.Popen[bytes]], exited: list[str]) -> int:
    """Stop every child still running: all but ClickHouse together, then ClickHouse (whose own
    shutdown waits up to a minute for queries in flight); one that does not stop is killed."""
    last = [children["clickhouse"]] if "clickhouse" in children else []
    for group in ([child for child in children.values() if child not in last], last):
        for child in group:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in group:
            try:
                child.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    if exited:
        print(f"stopped because {', '.join(exited)} exited", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
