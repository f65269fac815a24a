"""Run the system in the foreground; Ctrl-C (or SIGTERM) stops every process it started.

python scripts/run.py              web, worker with beat inside it, and Flower (`make run`)
python scripts/run.py NAME         one process: web, worker, beat or flower (`make NAME`)
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from core.env import load_config  # noqa: E402
from core.processes import process_argv  # noqa: E402


def main(names: list[str]) -> int:
    (ROOT / "var").mkdir(exist_ok=True)
    schedule = ROOT / "var" / "celerybeat-schedule"
    together = not names
    config = load_config()
    argvs = {
        name: process_argv(name, schedule, embedded_beat=together, web_bind=config.web_bind,
                           embedded_clickhouse=config.clickhouse_url.startswith("chdb:"))
        for name in (names or ["web", "worker", "flower"])
    }  # fmt: skip
    # Our own argv lists, no user input: S603 does not apply.
    children = {name: subprocess.Popen(argv, cwd=ROOT / "src") for name, argv in argvs.items()}  # noqa: S603
    if together:
        print("web http://127.0.0.1:8000  flower http://127.0.0.1:5555  (Ctrl-C stops all)", flush=True)
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping and all(child.poll() is None for child in children.values()):
        time.sleep(0.2)
    exited = [name for name, child in children.items() if child.poll() is not None]
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children.values():
        child.wait(timeout=30)
    if exited and not stopping:
        print(f"stopped because {', '.join(exited)} exited", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
