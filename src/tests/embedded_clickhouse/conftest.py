from __future__ import annotations

import pytest

from tests.embedded_clickhouse.raw_http import sql


@pytest.fixture
def table() -> str:
    sql("CREATE DATABASE IF NOT EXISTS protocol")
    sql("DROP TABLE IF EXISTS protocol.t")
    sql("CREATE TABLE protocol.t (a UInt32, b String) ENGINE = MergeTree ORDER BY a "
        "SETTINGS non_replicated_deduplication_window = 100")  # fmt: skip
    return "protocol.t"
