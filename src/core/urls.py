from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("eventlog.urls")),
]

# The API's errors are JSON (eventlog.web.views); a project that includes eventlog.urls sets these
# for its own 404 and 500 answers to be JSON on /api/ too.
handler404 = "eventlog.web.views.not_found"
handler500 = "eventlog.web.views.server_error"
