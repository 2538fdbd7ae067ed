"""Search providers by key, imported lazily."""

from __future__ import annotations

from chats.registry import enabled_instance, load_class
from chats.search.base import SearchProvider

SEARCH_PROVIDERS: dict[str, str] = {
    "none": "chats.search.none.NoSearch",
    "local": "chats.search.local.LocalSearch",
    "google": "chats.search.google.GoogleSearch",
    "searxng": "chats.search.searxng.SearxngSearch",
    "canadaca": "chats.search.canadaca.CanadaCaSearch",
}


def search_provider_class(key: str) -> type[SearchProvider]:
    return load_class(SEARCH_PROVIDERS, key, kind="search provider", field="search_provider")


def get_search_provider(key: str) -> SearchProvider:
    return enabled_instance(SEARCH_PROVIDERS, key, kind="search provider", field="search_provider")
