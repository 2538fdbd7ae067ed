from __future__ import annotations

import pytest

from chats.errors import ProviderError
from chats.search.canadaca import CanadaCaSearch
from chats.tests.fake_search import COVEO_PATH


def test_posts_query_with_bearer_key_and_locale(fake_search):
    results = CanadaCaSearch().search("employment insurance", language="fr", limit=4)

    (request,) = fake_search.requests
    assert request.method == "POST"
    assert request.path == COVEO_PATH
    assert request.headers["authorization"] == f"Bearer {fake_search.api_key}"
    assert request.body == {"q": "employment insurance", "numberOfResults": 4, "locale": "fr"}
    assert fake_search.api_key not in request.path  # the key travels in the header only
    assert [r.url for r in results] == [f"https://search.example/fr/{n}" for n in range(1, 5)]
    assert results[1].title == "Result 2 for employment insurance (fr)"
    assert results[1].snippet == "Snippet 2 about employment insurance"


def test_rejected_token_names_the_setting_not_the_key(fake_search, settings):
    settings.CANADACA_SEARCH_KEY = "not-the-right-token"

    with pytest.raises(ProviderError) as caught:
        CanadaCaSearch().search("q", language="en", limit=5)

    message = str(caught.value)
    assert message.startswith(
        "The Canada.ca search API key was rejected (401): check CANADACA_SEARCH_KEY."
    )
    assert "not-the-right-token" not in message


def test_empty_results(fake_search):
    fake_search.count = 0
    assert CanadaCaSearch().search("q", language="en", limit=5) == []


@pytest.mark.parametrize(
    ("url", "key", "missing"),
    [
        ("", "k", "CANADACA_SEARCH_URL"),
        ("http://x", "", "CANADACA_SEARCH_KEY"),
        ("http://x", "k", None),
    ],
)
def test_missing_setting(settings, url, key, missing):
    settings.CANADACA_SEARCH_URL = url
    settings.CANADACA_SEARCH_KEY = key
    assert CanadaCaSearch().missing_setting() == missing
