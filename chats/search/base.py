"""The interface every search provider implements."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar


@dataclass(frozen=True)
class SearchResult:
    title: str
    url: str
    snippet: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


class SearchProvider:
    key: ClassVar[str]
    label: ClassVar[str]

    def missing_setting(self) -> str | None:
        """The name of the setting that keeps this provider off, or None when enabled."""
        raise NotImplementedError

    def search(self, query: str, *, language: str, limit: int) -> list[SearchResult]:
        """Up to `limit` results; raise chats.errors types on failure."""
        raise NotImplementedError
