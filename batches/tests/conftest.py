from __future__ import annotations

import pytest

from batches.services import create_batch_run
from batches.tests.api_helpers import ApiClient
from batches.uploads import ParsedRow
from chats.tests.fake_servers import FakeAIServer


@pytest.fixture
def fake_ai(settings):
    """A fake OpenAI-compatible provider on 127.0.0.1, wired into the `compatible` provider."""
    with FakeAIServer() as server:
        server.configure(settings)
        settings.PROVIDER_MAX_ATTEMPTS = 2
        yield server


@pytest.fixture
def api(owner) -> ApiClient:
    """The API as `owner`, with a bearer token."""
    return ApiClient(owner)


@pytest.fixture
def make_batch(owner):
    """Create a batch of `n` questions (or the given ParsedRows) through the real service."""

    def make(n: int = 5, *, rows=None, ai_provider="compatible", model="local-model", **kwargs):
        rows = rows or [
            ParsedRow(question=f"Question {i}?", columns={"question": f"Question {i}?"})
            for i in range(n)
        ]
        return create_batch_run(
            uploader=kwargs.pop("uploader", owner),
            name=kwargs.pop("name", "Engine test"),
            rows=rows,
            ai_provider=ai_provider,
            model=model,
            search_provider=kwargs.pop("search_provider", "none"),
            **kwargs,
        )

    return make
