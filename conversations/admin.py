from django.contrib import admin

from conversations.models import CannedResponse


@admin.register(CannedResponse)
class CannedResponseAdmin(admin.ModelAdmin):
    """Where an admin changes or removes a saved reply whose author cannot (the API lets the author alone)."""

    list_display = ("shortcut", "title", "author_id", "updated_at")
    search_fields = ("shortcut", "title", "body")
