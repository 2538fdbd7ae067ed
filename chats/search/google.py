"""The `google` search provider: the Programmable Search Engine JSON API (Custom Search).

GET GOOGLE_SEARCH_URL?key=...&cx=...&q=...&num=...&lr=lang_en|lang_fr; results are
`items[].title/link/snippet`. The API returns at most 10 results per request.
"""

from __future__ import annotations

from django.conf import settings

from chats.search.base import SearchProvider, SearchResult
from chats.search.http import SearchCall, clean, request_json, search_language

MAX_NUM = 10


class GoogleSearch(SearchProvider):
    key = "google"
    label = "Google Programmable Search"

    def missing_setting(self) -> str | None:
        if not settings.GOOGLE_SEARCH_API_KEY:
            return "GOOGLE_SEARCH_API_KEY"
        if not settings.GOOGLE_SEARCH_ENGINE_ID:
            return "GOOGLE_SEARCH_ENGINE_ID"
        return None

    async def asearch(self, query: str, *, language: str, limit: int) -> list[SearchResult]:
        query = query.strip()
        if not query or limit <= 0:
            return []
        language = search_language(language)
        call = SearchCall(
            label="Google",
            url_setting="GOOGLE_SEARCH_URL",
            key_setting="GOOGLE_SEARCH_API_KEY",
            secrets=(settings.GOOGLE_SEARCH_API_KEY,),
        )
        data = await request_json(
            call,
            "GET",
            settings.GOOGLE_SEARCH_URL,
            params={
                "key": settings.GOOGLE_SEARCH_API_KEY,
                "cx": settings.GOOGLE_SEARCH_ENGINE_ID,
                "q": query,
                "num": min(limit, MAX_NUM),
                "lr": f"lang_{language}",
                "hl": language,
            },
        )
        items = data.get("items") if isinstance(data, dict) else None
        results = []
        for item in items or []:
            if isinstance(item, dict) and item.get("link"):
                results.append(
                    SearchResult(
                        title=clean(item.get("title")) or clean(item.get("link")),
                        url=str(item["link"]).strip(),
                        snippet=clean(item.get("snippet")),
                    )
                )
        return results[:limit]
