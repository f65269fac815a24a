from django.contrib import admin
from django.urls import path

from eventlog import views

urlpatterns = [
    path("", views.status_page, name="status"),
    path("admin/", admin.site.urls),
    path("api/v1/events", views.events, name="events"),
    path("api/v1/stats", views.stats, name="stats"),
    path("metrics", views.metrics, name="metrics"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
]
