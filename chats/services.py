"""The chat pipeline: one question in, one stored Interaction out.

`process_message` is the only entry point other apps use (batches calls nothing deeper).
"""

from __future__ import annotations

from collections.abc import Callable

from chats.errors import ProviderError, ProviderNotConfigured, TransientProviderError
from chats.models import Chat, Interaction

__all__ = [
    "ProviderError",
    "ProviderNotConfigured",
    "TransientProviderError",
    "process_message",
]


def process_message(
    *,
    chat: Chat,
    question: str,
    referring_url: str = "",
    on_token: Callable[[str], None] | None = None,
) -> Interaction:
    """1. history 2. search 3. prompt 4. generate 5. parse 6. store (see DESIGN)."""
    raise NotImplementedError("chat pipeline: issue 3")


def check_chat_settings(*, ai_provider: str, model: str = "", search_provider: str) -> str:
    """Raise ProviderNotConfigured unless both providers are enabled; return the model to use
    (the provider's default when `model` is empty)."""
    raise NotImplementedError("chat pipeline: issue 3")


def provider_choices() -> list[tuple[str, str, list[str]]]:
    """Enabled AI providers as (key, label, models) for forms and the API."""
    raise NotImplementedError("chat pipeline: issue 3")


def search_choices() -> list[tuple[str, str]]:
    """Enabled search providers as (key, label)."""
    raise NotImplementedError("chat pipeline: issue 3")
