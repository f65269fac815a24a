"""The admin: an operator's view of the outbox, its batches and the API keys.

What the relay writes is the relay's: events and batches are listed and shown, never added, edited
or deleted there (the one change an operator makes is the dead-letter replay, an action). Every list
is planned by the outbox's indexes and counts at most COUNT_LIMIT rows, so a page costs the same on a
10,000,000-event outbox as on an empty one.
"""

from __future__ import annotations

import uuid
from typing import Any, cast

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.functional import cached_property

from eventlog.models import ApiKey, OutboxEvent, RelayBatch
from eventlog.outbox.planner import index_scans
from eventlog.relay.poison import replay_dead_letters

# An exact count(*) of a large outbox takes seconds, on every page view; nobody pages through a
# thousand rows in the admin (they filter or search). templates/admin/eventlog/pagination.html shows
# "more than 1,000".
COUNT_LIMIT = 1_000


class BoundedCountPaginator(Paginator):  # type: ignore[type-arg]
    count_limit = COUNT_LIMIT

    @cached_property
    def count(self) -> int:
        """The rows, counted up to COUNT_LIMIT + 1 (over the limit: COUNT_LIMIT + 1)."""
        rows = cast("QuerySet[Any]", self.object_list)  # the admin pages querysets
        return rows[: COUNT_LIMIT + 1].count()


class DeadLetterFilter(admin.SimpleListFilter):
    title = "dead letter"
    parameter_name = "dead"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Dead letters only")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(failed_at__isnull=False) if self.value() == "yes" else queryset


class OutboxTableAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """A read-only list of one of the relay's tables, newest first."""

    paginator = BoundedCountPaginator
    show_full_result_count = False
    ordering = ("-id",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # The outbox's planner settings (no sequential or bitmap scans, whatever the statistics say),
        # with sorts allowed back: a search by event_id finds one row through its unique index and
        # sorts it, where a sort-free plan walks the primary key through every row. Rendered inside:
        # the list's queries run while the template renders.
        with index_scans({"enable_sort": "on"}):
            response = super().changelist_view(request, extra_context)
            if hasattr(response, "render"):
                response.render()
        return response


@admin.register(OutboxEvent)
class OutboxEventAdmin(OutboxTableAdmin):
    list_display = ("id", "event_type", "event_date_time", "environment", "txid", "failed_at", "rejections")
    list_filter = (DeadLetterFilter,)
    search_fields = ("event_id",)
    search_help_text = "An event_id, whole."
    actions = ["replay"]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[OutboxEvent], search_term: str
    ) -> tuple[QuerySet[OutboxEvent], bool]:
        """One event by its event_id, through the unique index: Django's own search (even `=`)
        compares upper-cased text, which no index serves, so it read the whole outbox."""
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            return queryset.filter(event_id=uuid.UUID(term)), False
        except ValueError:
            return queryset.none(), False

    @admin.action(description="Replay selected dead letters")
    def replay(self, request: HttpRequest, queryset: QuerySet[OutboxEvent]) -> None:
        replayed = replay_dead_letters(list(queryset.values_list("event_id", flat=True)))
        self.message_user(request, f"{replayed} dead letter(s) will be relayed again.", messages.SUCCESS)


@admin.register(RelayBatch)
class RelayBatchAdmin(OutboxTableAdmin):
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


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Keys are created by `manage.py create_api_key`, which shows the key once; here their scopes and
    environments can be changed, or a key deleted."""

    list_display = ("name", "prefix", "scopes", "environments", "created_at")
    readonly_fields = ("prefix", "created_at")
    paginator = BoundedCountPaginator

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a key added here would have no secret: nobody could use it
