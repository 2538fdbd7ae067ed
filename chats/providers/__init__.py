"""AI providers by key. Classes are imported lazily so that an SDK loads only when used."""

from __future__ import annotations

from django.utils.module_loading import import_string

from chats.errors import ProviderNotConfigured
from chats.providers.base import AIProvider

PROVIDERS: dict[str, str] = {
    "extractive": "chats.providers.extractive.ExtractiveProvider",
    "openai": "chats.providers.openai.OpenAIProvider",
    "azure": "chats.providers.openai.AzureOpenAIProvider",
    "anthropic": "chats.providers.anthropic.AnthropicProvider",
    "compatible": "chats.providers.openai.CompatibleProvider",
}


def provider_class(key: str) -> type[AIProvider]:
    if key not in PROVIDERS:
        known = ", ".join(PROVIDERS)
        raise ProviderNotConfigured(f"Unknown AI provider '{key}'. Known providers: {known}.")
    return import_string(PROVIDERS[key])


def get_provider(key: str) -> AIProvider:
    """An enabled provider, or ProviderNotConfigured naming the missing setting."""
    provider = provider_class(key)()
    missing = provider.missing_setting()
    if missing:
        raise ProviderNotConfigured(f"The AI provider '{key}' is not configured: set {missing}.")
    return provider
