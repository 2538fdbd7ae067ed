"""The `none` search provider: the model answers from its own knowledge."""

from __future__ import annotations

from chats.search.base import SearchProvider, SearchResult


class NoSearch(SearchProvider):
    key = "none"
    label = "No search"

    def missing_setting(self) -> str | None:
        return None

    def search(self, query: str, *, language: str, limit: int) -> list[SearchResult]:
        return []

    async def asearch(self, query: str, *, language: str, limit: int) -> list[SearchResult]:
        return []
