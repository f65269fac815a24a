"""The web server's entry point: granian serves it as ASGI. The WSGI application (core/wsgi.py: the
ingest fast path, then Django) runs behind the front (core/front.py), which reads each request's
body whole in the event loop before one of four threads takes the request, so that slow clients hold
no thread.

The price, against the same application under granian's WSGI interface straight: 1.44x to 1.70x the
web's CPU per one-event request in two runs of `make bench`'s http_ingest_paths (docs/benchmarks.md).
Behind a proxy that buffers request bodies itself, serve `core.wsgi:application` that way instead.
"""

from __future__ import annotations

from django.conf import settings

from core import wsgi  # first: it sets up Django and the metrics' directory
from core.fastpath import PATH as INGEST_PATH
from core.front import BodyLimits, WSGIInThreads
from core.processes import WEB_THREADS
from eventlog.conf import app_settings
from eventlog.web.ingest import DISCARD_BYTES

# Bodies one process holds at once, before anyone is authenticated: up to this many of the largest
# ingest takes (5 MiB by default: 160 MiB), or any number of small ones.
LARGEST_BODIES_AT_ONCE = 32

_KEEP_BYTES = app_settings().ingest_max_bytes + 1  # enough for ingest to see a body is too large
LIMITS = BodyLimits(
    keep_bytes=_KEEP_BYTES,
    discard_bytes=DISCARD_BYTES,
    seconds=settings.CONFIG.web_body_timeout_seconds,
    budget_bytes=LARGEST_BODIES_AT_ONCE * _KEEP_BYTES,
    # Ingest reads no more than its limit and one byte, and answers 401 before 413 (a cut body is
    # enough); any other path over the limit gets the front's 413.
    cut_body_paths=frozenset({INGEST_PATH}),
)

application = WSGIInThreads(wsgi.application, WEB_THREADS, LIMITS)
# The other ways to serve ingest, which `make bench` (http_ingest_paths) measures beside it.
lean_application = WSGIInThreads(wsgi.lean_application, WEB_THREADS, LIMITS)
django_application = WSGIInThreads(wsgi.django_application, WEB_THREADS, LIMITS)
