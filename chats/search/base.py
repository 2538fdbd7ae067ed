"""The interface every search provider implements."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import ClassVar

from chats import aio


@dataclass(frozen=True)
class SearchResult:
    title: str
    url: str
    snippet: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


class SearchProvider:
    """A provider implements `asearch` (HTTP APIs, on the provider loop) or `search`
    (blocking work such as the SQLite index, which `asearch` then runs in a thread)."""

    key: ClassVar[str]
    label: ClassVar[str]

    def missing_setting(self) -> str | None:
        """The name of the setting that keeps this provider off, or None when enabled."""
        raise NotImplementedError

    async def asearch(self, query: str, *, language: str, limit: int) -> list[SearchResult]:
        """Up to `limit` results; raise chats.errors types on failure."""
        return await asyncio.to_thread(self.search, query, language=language, limit=limit)

    def search(self, query: str, *, language: str, limit: int) -> list[SearchResult]:
        """`asearch` for synchronous callers: runs it on the provider loop and waits."""
        return aio.run(self.asearch(query, language=language, limit=limit))
