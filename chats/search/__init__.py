"""Search providers by key, imported lazily."""

from __future__ import annotations

from django.utils.module_loading import import_string

from chats.errors import ProviderNotConfigured
from chats.search.base import SearchProvider

SEARCH_PROVIDERS: dict[str, str] = {
    "none": "chats.search.none.NoSearch",
    "local": "chats.search.local.LocalSearch",
    "google": "chats.search.google.GoogleSearch",
    "searxng": "chats.search.searxng.SearxngSearch",
    "canadaca": "chats.search.canadaca.CanadaCaSearch",
}


def search_provider_class(key: str) -> type[SearchProvider]:
    if key not in SEARCH_PROVIDERS:
        known = ", ".join(SEARCH_PROVIDERS)
        raise ProviderNotConfigured(f"Unknown search provider '{key}'. Known providers: {known}.")
    return import_string(SEARCH_PROVIDERS[key])


def get_search_provider(key: str) -> SearchProvider:
    provider = search_provider_class(key)()
    missing = provider.missing_setting()
    if missing:
        raise ProviderNotConfigured(
            f"The search provider '{key}' is not configured: set {missing}."
        )
    return provider
