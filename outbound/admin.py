"""The operator's view: endpoints and their recent deliveries, and a 'redeliver' action.

Read-only apart from the action: deliveries are the process manager's
record, and endpoints are managed through the API.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from outbound import outbox
from outbound.models import WebhookDelivery, WebhookEndpoint


class ReadOnly(admin.ModelAdmin):  # type: ignore[type-arg]
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RecentDeliveries(admin.TabularInline):  # type: ignore[type-arg]
    model = WebhookDelivery
    fields = ("id", "event_type", "state", "attempts", "last_status", "due_at", "reason", "finished_at")
    readonly_fields = fields
    ordering = ("-id",)
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookDelivery]:
        # The inline shows the newest deliveries; the full list is the deliveries page.
        qs = super().get_queryset(request)
        newest = list(qs.order_by("-id").values_list("id", flat=True)[:50])
        return qs.filter(id__in=newest)


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnly):
    list_display = ("url", "id", "created_at", "disabled_at")
    exclude = ("secret", "previous_secret")
    inlines = [RecentDeliveries]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnly):
    list_display = ("id", "endpoint", "event_type", "customer_id", "state", "attempts", "last_status", "next_try", "reason")
    list_filter = ("state", "event_type", "endpoint")
    search_fields = ("event_id", "customer_id")
    ordering = ("-id",)
    actions = ["redeliver"]
    list_select_related = ("endpoint",)

    @admin.display(description="next try")
    def next_try(self, obj: WebhookDelivery) -> Any:
        return obj.due_at if obj.state == "pending" else None

    @admin.action(description="Redeliver the selected deliveries")
    def redeliver(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        count = outbox.redeliver(
            queryset.values_list("id", flat=True), now=outbox_now(), retry_for=settings.WEBHOOK_RETRY_FOR_SECONDS
        )
        self.message_user(request, f"{count} deliveries queued again (disabled endpoints' are skipped).", messages.SUCCESS)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The redeliver action needs "change"; the form itself shows every field read-only.
        return bool(request.user.is_staff)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in WebhookDelivery._meta.fields]


def outbox_now() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc)
