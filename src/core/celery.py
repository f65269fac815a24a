"""The Celery application: configured from Django settings (CELERY_* names)."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import setup_logging, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings")

app = Celery("eventlog")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def use_django_logging(**kwargs: Any) -> None:
    """Django's LOGGING (applied by django.setup()) is the one logging configuration; a receiver
    here stops Celery from installing its own."""


@worker_ready.connect
def serve_worker_metrics(**kwargs: Any) -> None:
    """The worker's own metrics endpoint (eventlog.monitoring.metrics_endpoints), unless
    WORKER_METRICS_PORT is 0."""
    from django.conf import settings

    from eventlog.monitoring.metrics_endpoints import start_worker_metrics
    from eventlog.runtime import event_log_writer

    config = settings.CONFIG  # the reference project's own configuration (core/env.py)
    if config.worker_metrics_port:
        start_worker_metrics(event_log_writer(), config.worker_metrics_address, config.worker_metrics_port)
