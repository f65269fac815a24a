from __future__ import annotations

from django.contrib import admin

from eventlog.models import ApiKey, OutboxEvent, RelayBatch


@admin.register(OutboxEvent)
class OutboxEventAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("id", "event_type", "event_date_time", "environment", "batch", "failed_at")
    list_filter = ("event_type",)
    search_fields = ("=event_id",)
    raw_id_fields = ("batch",)
    show_full_result_count = False  # a count(*) over millions of rows per page view is not worth it


@admin.register(RelayBatch)
class RelayBatchAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("id", "state", "row_count", "attempts", "created_at", "delivered_at", "last_error")
    list_filter = ("state",)
    show_full_result_count = False


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("name", "prefix", "created_at")
    readonly_fields = ("prefix", "created_at")
