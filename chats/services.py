"""The chat pipeline: one question in, one stored Interaction out.

`process_message` is the only entry point other apps use (batches calls nothing deeper).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from chats.errors import ProviderError, ProviderNotConfigured, TransientProviderError
from chats.models import Chat, Interaction
from chats.providers import PROVIDERS, get_provider, provider_class
from chats.search import SEARCH_PROVIDERS, get_search_provider, search_provider_class

__all__ = [
    "ProviderError",
    "ProviderNotConfigured",
    "TransientProviderError",
    "check_chat_settings",
    "process_message",
    "provider_choices",
    "search_choices",
]

logger = logging.getLogger(__name__)

# Providers that talk to a server of the operator's own choosing (Ollama, vLLM, ...):
# any model name the server knows is valid, so a name outside the configured list is
# accepted. Every other provider only offers the models listed in its settings.
OPEN_MODEL_PROVIDERS = frozenset({"compatible"})


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
    """Raise ProviderNotConfigured unless both providers are enabled; return the model to use.

    The model is `model` when given and offered by the provider (any non-empty name for
    `compatible`), else the provider's first (default) model.
    """
    provider = get_provider(ai_provider)
    get_search_provider(search_provider)
    models = provider.models()
    model = (model or "").strip()
    if not model:
        if not models:
            raise ProviderNotConfigured(
                f"The AI provider '{ai_provider}' offers no model: list at least one in its "
                "settings."
            )
        return models[0]
    if model in models or ai_provider in OPEN_MODEL_PROVIDERS:
        return model
    raise ProviderNotConfigured(
        f"The AI provider '{ai_provider}' does not offer the model '{model}'. "
        f"Choose one of: {', '.join(models)}."
    )


def _enabled(cls_getter: Callable[[str], type], key: str) -> object | None:
    """An instance of the provider `key` when its module imports and it is configured."""
    try:
        provider = cls_getter(key)()
    except ImportError:
        # A provider whose module (or SDK) is missing is simply not offered.
        logger.warning("provider %s is not importable; it is left out of the choices", key)
        return None
    return None if provider.missing_setting() else provider


def provider_choices() -> list[tuple[str, str, list[str]]]:
    """Enabled AI providers as (key, label, models) for forms and the API, extractive first."""
    keys = sorted(PROVIDERS, key=lambda key: key != "extractive")
    choices = []
    for key in keys:
        provider = _enabled(provider_class, key)
        if provider is not None:
            choices.append((key, str(provider.label), list(provider.models())))
    return choices


def search_choices() -> list[tuple[str, str]]:
    """Enabled search providers as (key, label)."""
    choices = []
    for key in SEARCH_PROVIDERS:
        provider = _enabled(search_provider_class, key)
        if provider is not None:
            choices.append((key, str(provider.label)))
    return choices
