"""The `canadaca` search provider: the Coveo search endpoint used by Canada.ca.

POST CANADACA_SEARCH_URL with `Authorization: Bearer CANADACA_SEARCH_KEY` and the JSON
body `{"q", "numberOfResults", "locale"}`; results are `results[].title/clickUri/excerpt`.
"""

from __future__ import annotations

from django.conf import settings

from chats.search.base import SearchProvider, SearchResult
from chats.search.http import SearchCall, clean, request_json, search_language


class CanadaCaSearch(SearchProvider):
    key = "canadaca"
    label = "Canada.ca (Coveo)"

    def missing_setting(self) -> str | None:
        if not settings.CANADACA_SEARCH_URL:
            return "CANADACA_SEARCH_URL"
        if not settings.CANADACA_SEARCH_KEY:
            return "CANADACA_SEARCH_KEY"
        return None

    async def asearch(self, query: str, *, language: str, limit: int) -> list[SearchResult]:
        query = query.strip()
        if not query or limit <= 0:
            return []
        key = settings.CANADACA_SEARCH_KEY
        call = SearchCall(
            label="Canada.ca",
            url_setting="CANADACA_SEARCH_URL",
            key_setting="CANADACA_SEARCH_KEY",
            secrets=(key,),
        )
        data = await request_json(
            call,
            "POST",
            settings.CANADACA_SEARCH_URL,
            json={
                "q": query,
                "numberOfResults": limit,
                "locale": search_language(language),
            },
            headers={"Authorization": f"Bearer {key}", "Accept": "application/json"},
        )
        items = data.get("results") if isinstance(data, dict) else None
        results = []
        for item in items or []:
            if isinstance(item, dict) and item.get("clickUri"):
                results.append(
                    SearchResult(
                        title=clean(item.get("title")) or clean(item.get("clickUri")),
                        url=str(item["clickUri"]).strip(),
                        snippet=clean(item.get("excerpt")),
                    )
                )
            if len(results) == limit:
                break
        return results
