"""The worker's entry point: `celery` itself, with the pool processes' metrics kept in files.

The prefork pool's processes count the relay's metrics, and the worker's metrics endpoint (run by the
main process) adds their files up. prometheus_client reads PROMETHEUS_MULTIPROC_DIR once, when it is
first imported, so it is set here, before Celery loads anything.
"""

import os
import sys

from celery.__main__ import main

from core.env import load_config

if __name__ == "__main__":
    _metrics_dir = load_config().worker_metrics_dir
    _metrics_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(_metrics_dir))
    sys.exit(main())
