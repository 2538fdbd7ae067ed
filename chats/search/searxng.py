"""The `searxng` search provider: the JSON API of a self-hosted SearXNG instance.

GET SEARXNG_URL/search?q=...&format=json&language=en|fr; results are
`results[].title/url/content`. The instance must list `json` under `search.formats` in
its settings.yml, or it answers 403.
"""

from __future__ import annotations

from django.conf import settings

from chats.search.base import SearchProvider, SearchResult
from chats.search.http import SearchCall, clean, request_json, search_language


class SearxngSearch(SearchProvider):
    key = "searxng"
    label = "SearXNG"

    def missing_setting(self) -> str | None:
        return None if settings.SEARXNG_URL else "SEARXNG_URL"

    async def asearch(self, query: str, *, language: str, limit: int) -> list[SearchResult]:
        query = query.strip()
        if not query or limit <= 0:
            return []
        call = SearchCall(
            label="SearXNG",
            url_setting="SEARXNG_URL",
            forbidden_hint=(
                "enable the json format (search.formats in the instance's settings.yml)."
            ),
        )
        data = await request_json(
            call,
            "GET",
            settings.SEARXNG_URL.rstrip("/") + "/search",
            params={"q": query, "format": "json", "language": search_language(language)},
        )
        items = data.get("results") if isinstance(data, dict) else None
        results = []
        for item in items or []:
            if isinstance(item, dict) and item.get("url"):
                results.append(
                    SearchResult(
                        title=clean(item.get("title")) or clean(item.get("url")),
                        url=str(item["url"]).strip(),
                        snippet=clean(item.get("content")),
                    )
                )
            if len(results) == limit:
                break
        return results
