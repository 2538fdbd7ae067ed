"""AI providers by key (classes imported lazily, see chats.registry)."""

from __future__ import annotations

from chats.errors import ProviderNotConfigured
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


def uses_language_model(key: str) -> bool:
    """Whether the AI provider `key` is a language model (`AIProvider.uses_language_model`):
    it reads the system prompt, can judge and screen, and counts real tokens. An unknown or
    unimportable provider counts as one: the error comes when it is used."""
    try:
        return provider_class(key).uses_language_model
    except (ProviderNotConfigured, ImportError):
        return True
