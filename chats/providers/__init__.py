"""AI providers by key (classes imported lazily, see chats.registry)."""

from __future__ import annotations

from chats.providers.base import AIProvider
from chats.registry import enabled_instance, load_class

PROVIDERS: dict[str, str] = {
    "extractive": "chats.providers.extractive.ExtractiveProvider",
    "openai": "chats.providers.openai.OpenAIProvider",
    "azure": "chats.providers.openai.AzureOpenAIProvider",
    "anthropic": "chats.providers.anthropic.AnthropicProvider",
    "compatible": "chats.providers.openai.CompatibleProvider",
}


def provider_class(key: str) -> type[AIProvider]:
    return load_class(PROVIDERS, key, kind="AI provider", field="ai_provider")


def get_provider(key: str) -> AIProvider:
    """An enabled provider, or ProviderNotConfigured naming the missing setting."""
    return enabled_instance(PROVIDERS, key, kind="AI provider", field="ai_provider")
