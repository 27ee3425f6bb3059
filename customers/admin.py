"""Read-mostly admin: contact details change through the API (they are events)."""

from django.contrib import admin

from customers.models import Customer


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("name", "email", "phone", "external_id", "created_at")
    search_fields = ("name", "email", "phone", "external_id", "id")
    readonly_fields = ("id", "external_id", "name", "email", "phone", "created_at", "updated_at")

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
