"""`make run`: start web, worker (with beat) and Flower in the foreground; Ctrl-C stops all three.

The worker uses the threads pool: with the embedded ClickHouse, exactly one process may open the
engine, and prefork children would each try to.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SRC = ROOT / "src"

PROCESSES = {
    "web": [str(BIN / "gunicorn"), "core.wsgi", "--bind", "127.0.0.1:8000", "--workers", "2",
            "--threads", "4", "--access-logfile", "-"],
    "worker": [str(BIN / "celery"), "-A", "core", "worker", "--pool=threads", "--concurrency=4", "--beat",
               f"--schedule={ROOT / 'var' / 'celerybeat-schedule'}", "--loglevel=INFO"],
    "flower": [str(BIN / "celery"), "-A", "core", "flower", "--address=127.0.0.1", "--port=5555"],
}  # fmt: skip


def main() -> int:
    (ROOT / "var").mkdir(exist_ok=True)
    # Our own argv lists, no user input: S603 does not apply.
    children = {name: subprocess.Popen(argv, cwd=SRC) for name, argv in PROCESSES.items()}  # noqa: S603
    print("web http://127.0.0.1:8000  flower http://127.0.0.1:5555  (Ctrl-C stops all)", flush=True)
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping and all(child.poll() is None for child in children.values()):
        time.sleep(0.5)
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
    sys.exit(main())
