"""`python -m eventlog.embedded_clickhouse`: the server process, as `manage.py embedded_clickhouse`
starts it (config.py: the handoff of its settings)."""

from __future__ import annotations

import logging
import os
import sys

from eventlog.embedded_clickhouse.config import HANDOFF, from_handoff


def main() -> int:
    try:
        config, log_level = from_handoff(os.environ)
    except ValueError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    for name in HANDOFF:  # the password, among them, is no longer needed in the environment
        del os.environ[name]
    from eventlog.embedded_clickhouse.server import run  # loads the engine, after JE_MALLOC_CONF is set

    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
