"""`python -m embedded_clickhouse`: serve the data path of EMBEDDED_CLICKHOUSE_PATH at CLICKHOUSE_URL."""

from __future__ import annotations

import logging
import os
import sys

from core.env import ConfigurationError, load_config
from embedded_clickhouse import ALLOCATOR, ENGINE_OPTIONS

os.environ.setdefault("JE_MALLOC_CONF", ALLOCATOR)  # before chDB is loaded, by the imports below

from embedded_clickhouse.protocol import Credentials
from embedded_clickhouse.server import ServerConfig, run


def main() -> int:
    try:
        config = load_config()
    except ConfigurationError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    embedded = config.embedded_clickhouse
    if not embedded.password:
        print(
            "configuration error: CLICKHOUSE_URL must carry a password for the embedded server",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(ServerConfig(
        host=embedded.host,
        port=embedded.port,
        credentials=Credentials(embedded.user, embedded.password),
        data_path=embedded.data_path,
        engine_options=ENGINE_OPTIONS,
    ))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
