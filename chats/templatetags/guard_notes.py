"""The guard's reasons as the reader's words (the model stores kinds, never values)."""

from __future__ import annotations

from django import template

from chats.guard import reason_labels

register = template.Library()


@register.filter
def guard_labels(reasons: list[str] | None) -> list[str]:
    """`["phone", "email"]` -> the translated labels, in the active language."""
    return reason_labels(reasons or [])
