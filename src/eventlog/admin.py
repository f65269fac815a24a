from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from eventlog.models import ApiKey, OutboxEvent, RelayBatch
from eventlog.relay.poison import replay_dead_letters


class DeadLetterFilter(admin.SimpleListFilter):
    title = "dead letter"
    parameter_name = "dead"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Dead letters only")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(failed_at__isnull=False) if self.value() == "yes" else queryset


@admin.register(OutboxEvent)
class OutboxEventAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("id", "event_type", "event_date_time", "environment", "txid", "failed_at", "rejections")
    list_filter = (DeadLetterFilter,)
    search_fields = ("=event_id",)
    readonly_fields = ("failed_at", "last_error", "rejections")
    actions = ["replay"]
    show_full_result_count = False  # a count(*) over millions of rows per page view is not worth it

    @admin.action(description="Replay selected dead letters")
    def replay(self, request: HttpRequest, queryset: QuerySet[OutboxEvent]) -> None:
        replayed = replay_dead_letters(list(queryset.values_list("event_id", flat=True)))
        self.message_user(request, f"{replayed} dead letter(s) will be relayed again.", messages.SUCCESS)


@admin.register(RelayBatch)
class RelayBatchAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "id",
        "state",
        "row_count",
        "attempts",
        "split",
        "created_at",
        "delivered_at",
        "last_error",
    )
    list_filter = ("state",)
    show_full_result_count = False


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("name", "prefix", "scopes", "environments", "created_at")
    readonly_fields = ("prefix", "created_at")
