from django.contrib import admin
from django.utils import timezone

from accounts.models import AgentToken


@admin.register(AgentToken)
class AgentTokenAdmin(admin.ModelAdmin):
    list_display = ("user", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("key_hash", "user", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):  # type: ignore[no-untyped-def]
        queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
