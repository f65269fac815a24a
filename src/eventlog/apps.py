from django.apps import AppConfig


class EventlogConfig(AppConfig):
    name = "eventlog"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from eventlog import checks  # noqa: F401 (registers the system checks)
