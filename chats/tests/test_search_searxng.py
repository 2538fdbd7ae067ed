from __future__ import annotations

import pytest

from chats.errors import ProviderError
from chats.search.searxng import SearxngSearch
from chats.tests.fake_search import SEARXNG_PATH


@pytest.fixture
def fake_search(fake_search):
    fake_search.count = 8
    return fake_search


def test_asks_for_json_in_the_page_language_and_parses_results(fake_search):
    results = SearxngSearch().search("impôts en ligne", language="fr", limit=5)

    (request,) = fake_search.requests
    assert request.path == SEARXNG_PATH  # SEARXNG_URL's trailing slash is not doubled
    assert request.query == {"q": "impôts en ligne", "format": "json", "language": "fr"}
    assert len(results) == 5
    assert results[0].url == "https://search.example/fr/1"
    assert results[0].title == "Result 1 for impôts en ligne (fr)"
    assert results[0].snippet == "Snippet 1 about impôts en ligne"


def test_keeps_at_most_the_limit(fake_search):
    assert len(SearxngSearch().search("q", language="en", limit=3)) == 3
    assert len(SearxngSearch().search("q", language="en", limit=50)) == 8


def test_results_without_url_are_skipped(fake_search):
    fake_search.fail_next(200, {"results": [{"title": "no url"}, {"url": "https://a.example/x"}]})

    results = SearxngSearch().search("q", language="en", limit=5)

    assert [(r.title, r.url) for r in results] == [("https://a.example/x", "https://a.example/x")]


def test_forbidden_explains_the_json_format(fake_search):
    fake_search.fail_next(403, "<html>Forbidden</html>")

    with pytest.raises(ProviderError, match=r"refused the request \(403\): enable the json format"):
        SearxngSearch().search("q", language="en", limit=5)


def test_html_answer_is_an_error(fake_search):
    fake_search.fail_next(200, "<html>a login page</html>")

    with pytest.raises(ProviderError, match="did not answer with JSON: check SEARXNG_URL"):
        SearxngSearch().search("q", language="en", limit=5)


def test_missing_setting(settings):
    settings.SEARXNG_URL = ""
    assert SearxngSearch().missing_setting() == "SEARXNG_URL"
    settings.SEARXNG_URL = "http://127.0.0.1:9"
    assert SearxngSearch().missing_setting() is None
