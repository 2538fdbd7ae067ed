from __future__ import annotations

from django.contrib import admin

from accounts.models import ApiToken
from accounts.services import revoke_api_token


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    # No add form and no hash on screen: tokens are created by their owner (page or
    # `manage.py api_token create`), which is the only time the secret is shown.
    list_display = ["name", "prefix", "user", "created_at", "last_used_at"]
    list_filter = ["created_at"]
    search_fields = ["name", "prefix", "user__username"]
    list_select_related = ["user"]
    fields = ["name", "prefix", "user", "created_at", "last_used_at"]
    readonly_fields = fields
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset) -> None:
        count = 0
        for token in queryset:
            revoke_api_token(token=token)
            count += 1
        self.message_user(request, f"{count} token(s) revoked.")
