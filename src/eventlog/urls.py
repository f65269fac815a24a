"""eventlog's URLs, for a project's `path("", include("eventlog.urls"))`: the HTTP API under
api/v1/, the staff pages (the status page at the include's root, the events page at events/),
the metrics and the health probes. The staff pages log in through the project's admin. The
pages' links and the OpenAPI document name these paths from the root, so the include belongs at
the root path (a prefix is not supported yet)."""

from django.urls import path

from eventlog.web import events_page, read_api, views

urlpatterns = [
    path("", views.status_page, name="status"),
    path("events/", events_page.events_page, name="events-page"),
    path("api/v1/events", views.events, name="events"),
    path("api/v1/events/counts", read_api.counts_view, name="event-counts"),
    path("api/v1/events/export", read_api.export_view, name="event-export"),
    path("api/v1/events/<str:event_id>", read_api.event_view, name="event"),
    path("api/v1/stats", views.stats, name="stats"),
    path("api/v1/openapi.json", views.openapi, name="openapi"),
    path("metrics", views.metrics, name="metrics"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
]
