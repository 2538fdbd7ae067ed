"""Who may read a chat besides its uploader (and staff): the reviewers of a batch the chat
belongs to. `chats` knows nothing of batches or reviews, so `evaluation` registers a rule
`(user) -> Q` over Chat here when it starts (STYLE 3a). Readers only read: continuing a
chat stays its uploader's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import Q, QuerySet

from chats.models import Chat

_reader_rules: dict[str, Callable[[Any], Q]] = {}


def register_reader_rule(name: str, rule: Callable[[Any], Q]) -> None:
    _reader_rules[name] = rule


def chats_for(user) -> QuerySet[Chat]:
    """The chats `user` may read: their own, the ones shared with them; staff: all."""
    queryset = Chat.objects.select_related("uploader")
    if user.is_staff:
        return queryset
    condition = Q(uploader=user)
    for rule in _reader_rules.values():
        condition |= rule(user)
    return queryset.filter(condition)
