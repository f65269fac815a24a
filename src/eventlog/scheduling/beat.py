"""The Celery beat entries eventlog needs, for a host project's beat schedule:

    CELERY_BEAT_SCHEDULE = {**eventlog.scheduling.beat.beat_schedule(EVENTLOG), ...its own entries...}

The relay runs every RELAY_INTERVAL_SECONDS (half a second by default) and the purge every
OUTBOX_PURGE_INTERVAL_SECONDS. Each tick expires after one interval (at least a second), so ticks
queued while no worker listens are dropped instead of running all at once when one comes back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eventlog.conf import DEFAULTS

RELAY_TASK = "eventlog.relay_outbox"
PURGE_TASK = "eventlog.purge_outbox"


def beat_schedule(eventlog: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The entries for the `EVENTLOG` dict given (read while the settings module is, so it takes
    only its two intervals; the system checks report anything wrong with the dict)."""
    relay = eventlog.get("RELAY_INTERVAL_SECONDS", DEFAULTS["RELAY_INTERVAL_SECONDS"])
    purge = eventlog.get("OUTBOX_PURGE_INTERVAL_SECONDS", DEFAULTS["OUTBOX_PURGE_INTERVAL_SECONDS"])
    return {
        "relay-outbox": {"task": RELAY_TASK, "schedule": relay, "options": {"expires": max(relay, 1.0)}},
        "purge-outbox": {"task": PURGE_TASK, "schedule": purge, "options": {"expires": purge}},
    }
