from django.contrib import admin
from django.urls import path

from eventlog import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/events", views.events, name="events"),
    path("api/v1/stats", views.stats, name="stats"),
]
