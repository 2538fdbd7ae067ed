"""Admin pieces shared by the apps."""

from __future__ import annotations

from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest

INLINE_LIMIT = 50


class FirstRowsFormSet(BaseInlineFormSet):
    """An inline that shows only the first INLINE_LIMIT rows: a batch may hold 10,000 rows
    and a chat many turns; the site's own pages show them all, paginated."""

    def get_queryset(self):
        if not hasattr(self, "_capped"):
            self._capped = super().get_queryset()[:INLINE_LIMIT]
        return self._capped


class ReadOnlyAdminMixin:
    """Rows the admin shows but never adds, changes or deletes: what the engine or the chat
    pipeline writes (a batch's rows, a chat's turns, worker heartbeats). For a ModelAdmin
    or an inline (whose permission methods also take `obj`); put it before the admin base
    class."""

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
