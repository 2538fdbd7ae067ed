"""Admin pieces shared by the apps."""

from __future__ import annotations

from django.forms.models import BaseInlineFormSet

INLINE_LIMIT = 50


class FirstRowsFormSet(BaseInlineFormSet):
    """An inline that shows only the first INLINE_LIMIT rows: a batch may hold 10,000 rows
    and a chat many turns; the site's own pages show them all, paginated."""

    def get_queryset(self):
        if not hasattr(self, "_capped"):
            self._capped = super().get_queryset()[:INLINE_LIMIT]
        return self._capped
