from __future__ import annotations

import pytest

from chats.errors import ProviderError, ProviderNotConfigured
from chats.search import get_search_provider
from chats.search.google import GoogleSearch
from chats.tests.fake_search import GOOGLE_PATH


def test_sends_key_engine_language_and_parses_items(fake_search):
    results = GoogleSearch().search("renew a passport", language="fr", limit=3)

    (request,) = fake_search.requests
    assert request.path == GOOGLE_PATH
    assert request.query["key"] == fake_search.api_key
    assert request.query["cx"] == "engine-123"
    assert request.query["q"] == "renew a passport"
    assert request.query["lr"] == "lang_fr"
    assert request.query["num"] == "3"
    assert [r.url for r in results] == [f"https://search.example/fr/{n}" for n in (1, 2, 3)]
    assert results[0].title == "Result 1 for renew a passport (fr)"
    assert results[0].snippet == "Snippet 1 about renew a passport"  # whitespace folded


def test_asks_for_at_most_ten_results(fake_search):
    results = GoogleSearch().search("taxes", language="en", limit=25)

    assert fake_search.requests[0].query["num"] == "10"
    assert fake_search.requests[0].query["lr"] == "lang_en"
    assert len(results) == 10


def test_unknown_language_falls_back_to_english(fake_search):
    GoogleSearch().search("taxes", language="de", limit=2)

    assert fake_search.requests[0].query["lr"] == "lang_en"


def test_no_items_means_no_results(fake_search):
    fake_search.count = 0

    assert GoogleSearch().search("nothing matches", language="en", limit=5) == []


def test_blank_query_makes_no_request(fake_search):
    assert GoogleSearch().search("   ", language="en", limit=5) == []
    assert fake_search.requests == []


def test_invalid_key_is_reported_without_the_key(fake_search, settings):
    settings.GOOGLE_SEARCH_API_KEY = "wrong-secret-value"

    with pytest.raises(ProviderError) as caught:
        GoogleSearch().search("taxes", language="en", limit=5)

    message = str(caught.value)
    assert "API key was rejected (400)" in message
    assert "GOOGLE_SEARCH_API_KEY" in message
    assert "wrong-secret-value" not in message


def test_rate_limit_reason_on_403_is_transient(fake_search):
    from chats.errors import TransientProviderError

    fake_search.fail_next(
        403,
        {"error": {"code": 403, "message": "Rate Limit Exceeded",
                   "errors": [{"reason": "rateLimitExceeded"}]}},
        headers={"Retry-After": "30"},
    )  # fmt: skip

    with pytest.raises(TransientProviderError) as caught:
        GoogleSearch().search("taxes", language="en", limit=5)

    assert caught.value.retry_after == 30


@pytest.mark.parametrize(
    ("key", "engine", "missing"),
    [("", "cx", "GOOGLE_SEARCH_API_KEY"), ("k", "", "GOOGLE_SEARCH_ENGINE_ID"), ("k", "cx", None)],
)
def test_missing_setting_names_the_setting(settings, key, engine, missing):
    settings.GOOGLE_SEARCH_API_KEY = key
    settings.GOOGLE_SEARCH_ENGINE_ID = engine

    assert GoogleSearch().missing_setting() == missing


def test_registry_refuses_unconfigured_google(settings):
    settings.GOOGLE_SEARCH_API_KEY = ""

    with pytest.raises(ProviderNotConfigured, match="GOOGLE_SEARCH_API_KEY"):
        get_search_provider("google")
