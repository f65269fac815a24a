"""The WSGI application: POST /api/v1/events on the fast path, everything else through Django.

The web server serves it through core/asgi.py (bodies read whole before a thread runs it); behind a
proxy that buffers request bodies, granian can serve `core.wsgi:application` straight (WSGI).
granian runs several processes of either."""

import os

from django.core.wsgi import get_wsgi_application

from core.env import load_config

# Every web process keeps its metrics in files in one directory, for GET /metrics to add them up.
# Set before anything imports prometheus_client, which reads it once.
_metrics_dir = load_config().web_metrics_dir
_metrics_dir.mkdir(parents=True, exist_ok=True)
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(_metrics_dir))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings")
_django = get_wsgi_application()

from core.fastpath import IngestFastPath  # noqa: E402 (needs Django set up)
from core.ingest_handler import IngestDispatch, IngestHandler  # noqa: E402

application = IngestFastPath(_django)
# The other two ways to serve ingest, which `make bench` (http_ingest_paths) measures beside it:
# Django's request cycle with only ingest's middleware, and Django's full stack.
lean_application = IngestDispatch(IngestHandler(), _django)
django_application = _django
