"""Fixtures shared by the chats tests: a fake AI provider and a fake search engine, each a
real HTTP server on 127.0.0.1 that the settings point at."""

from __future__ import annotations

import time

import pytest

from chats import http
from chats.tests.fake_search import FakeSearchServer
from chats.tests.fake_servers import FAKE_API_KEY, FakeAIServer


@pytest.fixture
def fake(settings):
    """The fake AI provider behind every network provider (OpenAI, Azure, Anthropic,
    compatible), which are configured with FAKE_API_KEY. A module that needs more settings
    overrides this fixture and asks for it (`def fake(fake, settings)`)."""
    with FakeAIServer() as server:
        server.configure(settings, api_key=FAKE_API_KEY)
        yield server


@pytest.fixture
def fake_search(settings):
    """The fake search engine behind the Google, SearXNG and Canada.ca providers."""
    with FakeSearchServer() as server:
        server.configure(settings)
        yield server


@pytest.fixture
def frozen_clock(monkeypatch) -> float:
    """Freeze the clock that HTTP-date Retry-After values are measured against, on a whole
    second (HTTP dates have one-second resolution), so a wait does not depend on how long
    the test took; returns that time."""
    now = float(int(time.time()))
    monkeypatch.setattr(http, "clock", lambda: now)
    return now
