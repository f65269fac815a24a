"""What the server serves, and how `manage.py embedded_clickhouse` hands it over.

The command reads EVENTLOG, checks it here (without loading the engine) and replaces itself with
`python -m eventlog.embedded_clickhouse`, passing the server's settings in the variables of HANDOFF.
The server process then holds the engine and none of Django (whose modules cost it about 40 MB
resident), and the password never appears in a command line.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from eventlog.embedded_clickhouse import ENGINE_OPTIONS

# The `embedded` extra's modules (pyproject.toml).
EXTRA_MODULES = ("chdb", "lz4", "backports.zstd")
HANDOFF = (
    "EVENTLOG_EMBEDDED_URL",
    "EVENTLOG_EMBEDDED_PATH",
    "EVENTLOG_EMBEDDED_LISTEN",
    "EVENTLOG_EMBEDDED_LOG_LEVEL",
)


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str


@dataclass(frozen=True)
class ServerConfig:
    host: str
    port: int
    credentials: Credentials
    data_path: Path
    engine_options: dict[str, Any]
    max_body_bytes: int = 256 << 20  # a body read into memory (a query), before and after decoding
    max_insert_bytes: int = 16 << 30  # an insert's rows spooled to disk, before and after decoding


def missing_modules() -> list[str]:
    """The `embedded` extra's modules that are not installed: looked up, not imported (loading the
    engine costs any process that merely checks)."""
    return [name for name in EXTRA_MODULES if not _installed(name)]


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a dotted name's parent package is missing
        return False


def serving(url: str, data_path: Path, listen: str = "") -> ServerConfig:
    """The server for clients of `url`: it listens where the URL points (or at `listen`,
    host:port) and accepts the URL's user and password, so the two can never disagree. Raises
    ValueError, naming what is wrong, for a URL without a password or a malformed address."""
    parts = urlsplit(url)
    if not parts.password:
        raise ValueError("the embedded server needs CLICKHOUSE_URL to carry a password")
    host, _, port = (listen or f"{parts.hostname}:{parts.port or 8123}").rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"the embedded server's address must be host:port, got {listen!r}")
    return ServerConfig(
        host=host.strip("[]"),
        port=int(port),
        credentials=Credentials(unquote(parts.username or "default"), unquote(parts.password)),
        data_path=data_path.resolve(),
        engine_options=ENGINE_OPTIONS,
    )


def handoff(url: str, data_path: Path, listen: str, log_level: str) -> dict[str, str]:
    """The variables `from_handoff` reads back."""
    return dict(zip(HANDOFF, (url, str(data_path), listen, log_level), strict=True))


def from_handoff(environ: Mapping[str, str]) -> tuple[ServerConfig, str]:
    """The server's settings and log level, as the command handed them over. Raises ValueError
    when a variable is missing: the module is started by the command, not by hand."""
    missing = [name for name in HANDOFF if name not in environ]
    if missing:
        raise ValueError(
            f"{', '.join(missing)} not set: start the server with `manage.py embedded_clickhouse`"
        )
    url, path, listen, log_level = (environ[name] for name in HANDOFF)
    return serving(url, Path(path), listen), log_level
