"""Sentry: on only when SENTRY_DSN is set, for the web app and the Celery worker alike."""

from __future__ import annotations

import sentry_sdk
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.django import DjangoIntegration

from core.env import Config


def init_sentry(config: Config) -> bool:
    """Start the SDK when a DSN is configured; returns whether it did."""
    if not config.sentry_dsn:
        return False
    sentry_sdk.init(
        dsn=config.sentry_dsn,
        environment=config.sentry_environment,
        sample_rate=config.sentry_sample_rate,
        traces_sample_rate=config.sentry_traces_sample_rate,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        # Personal data stays off, the SDK's default: no cookies or users, and the Authorization header
        # (the API key) filtered out.
        # A request's body is the events, which may hold anything a producer puts in a context.
        max_request_body_size="never",
        # A frame's local variables hold the request's key and events as well.
        include_local_variables=False,
    )
    return True
