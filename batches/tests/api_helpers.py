"""Shared by the API tests: a token-authenticated JSON client, rows to create batches
from."""

from __future__ import annotations

import json
import re
from typing import Any

from django.test import Client
from django.urls import URLResolver, get_resolver

from accounts.services import create_api_token


class ApiClient:
    """Calls /api/batch/... with `Authorization: Bearer <token>` and decodes JSON answers."""

    def __init__(self, user) -> None:
        self.user = user
        _token, self.token = create_api_token(user=user, name="tests")
        self.client = Client()
        self.headers = {"authorization": f"Bearer {self.token}"}

    def get(self, path: str, params: dict[str, Any] | None = None, **kwargs):
        return self.client.get(f"/api/{path}", params or {}, headers=self.headers, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs):
        return self.client.post(
            f"/api/{path}",
            json.dumps(body if body is not None else {}),
            content_type="application/json",
            headers=self.headers,
            **kwargs,
        )

    def upload(self, path: str, data: dict[str, Any], **kwargs):
        return self.client.post(f"/api/{path}", data, headers=self.headers, **kwargs)


ROWS = [
    {"question": "How do I renew a passport?", "url": "https://example.ca/a", "team": "A"},
    {"question": "Where is my tax refund?", "team": "B"},
    {"Question": "What is the fee?", "team": "C"},
]
OFFLINE = {"aiProvider": "extractive", "searchProvider": "none"}


def create_json(api: ApiClient, rows=ROWS, **fields) -> dict:
    response = api.post("batch/create", {**OFFLINE, "name": "API batch", **fields, "rows": rows})
    assert response.status_code == 201, response.content
    return response.json()


def error_of(response) -> dict[str, Any]:
    """The `error` object of a JSON error answer (and proof that it is one)."""
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    body = json.loads(response.content)
    assert set(body) == {"error"}, body
    assert {"code", "message"} <= set(body["error"]), body
    assert body["error"]["message"].strip()
    return body["error"]


# URL names under /api/ that are not API operations: the OpenAPI document, the docs page,
# ninja's root and our catch-all.
NON_OPERATION_URL_NAMES = {"openapi-json", "openapi-view", "api-root", "api-not-found"}


def api_routes() -> set[str]:
    """Every API operation path the URL resolver serves, e.g. '/api/batch/list'."""
    routes: set[str] = set()

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif prefix.startswith("api/") and pattern.name not in NON_OPERATION_URL_NAMES:
                # Path parameters as OpenAPI writes them: <int:set_id> -> {set_id}.
                path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(pattern.pattern))
                routes.add("/" + prefix + path)

    walk(get_resolver().url_patterns, "")
    return routes
