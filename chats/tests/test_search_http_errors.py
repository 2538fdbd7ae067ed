"""Error mapping shared by the HTTP search providers (google, searxng, canadaca)."""

from __future__ import annotations

import socket
from email.utils import formatdate

import pytest

from chats.errors import ProviderError, TransientProviderError
from chats.search.canadaca import CanadaCaSearch
from chats.search.google import GoogleSearch
from chats.search.searxng import SearxngSearch

PROVIDERS = [GoogleSearch, SearxngSearch, CanadaCaSearch]


def _search(provider_class):
    return provider_class().search("question", language="en", limit=5)


@pytest.mark.parametrize("provider_class", PROVIDERS)
def test_429_is_transient_with_retry_after(fake_search, provider_class):
    fake_search.fail_next(429, {"error": {"message": "slow down"}}, headers={"Retry-After": "7"})

    with pytest.raises(TransientProviderError) as caught:
        _search(provider_class)

    assert caught.value.retry_after == 7
    assert "(429)" in str(caught.value)


@pytest.mark.parametrize("provider_class", PROVIDERS)
def test_5xx_is_transient_and_reads_an_http_date_retry_after(
    fake_search, provider_class, frozen_clock
):
    fake_search.fail_next(
        503, None, headers={"Retry-After": formatdate(frozen_clock + 60, usegmt=True)}
    )

    with pytest.raises(TransientProviderError) as caught:
        _search(provider_class)

    assert 50 <= caught.value.retry_after <= 61


@pytest.mark.parametrize("provider_class", PROVIDERS)
def test_500_without_retry_after(fake_search, provider_class):
    fake_search.fail_next(500, "<html>oops</html>")

    with pytest.raises(TransientProviderError) as caught:
        _search(provider_class)

    assert caught.value.retry_after is None


@pytest.mark.parametrize("provider_class", PROVIDERS)
def test_timeout_is_transient(fake_search, settings, provider_class):
    # Only this test shortens the timeout: the others must not fail on a loaded machine
    # because an answer took longer than a fraction of a second.
    settings.PROVIDER_TIMEOUT = 0.3
    fake_search.fail_next(200, {}, hang=1.5)

    with pytest.raises(TransientProviderError, match="did not answer within 0.3 seconds"):
        _search(provider_class)


@pytest.mark.parametrize("provider_class", PROVIDERS)
def test_connection_refused_is_transient_and_hides_the_key(fake_search, settings, provider_class):
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = f"http://127.0.0.1:{port}"
    settings.GOOGLE_SEARCH_URL = closed + "/customsearch/v1"
    settings.SEARXNG_URL = closed
    settings.CANADACA_SEARCH_URL = closed + "/rest/search/v2"

    with pytest.raises(TransientProviderError) as caught:
        _search(provider_class)

    assert "Could not connect" in str(caught.value)
    assert fake_search.api_key not in str(caught.value)


@pytest.mark.parametrize("provider_class", [GoogleSearch, CanadaCaSearch])
def test_403_means_the_key_was_rejected(fake_search, provider_class):
    fake_search.fail_next(
        403, {"error": {"code": 403, "message": f"key {fake_search.api_key} is blocked"}}
    )

    with pytest.raises(ProviderError) as caught:
        _search(provider_class)

    message = str(caught.value)
    assert "search API key was rejected (403)" in message
    assert fake_search.api_key not in message
    assert "[redacted]" in message  # the server's explanation is kept, minus the key


@pytest.mark.parametrize("provider_class", [GoogleSearch, CanadaCaSearch])
def test_other_4xx_quotes_the_server_message_without_the_key(fake_search, provider_class):
    fake_search.fail_next(400, {"error": {"message": f"Invalid query for {fake_search.api_key}"}})

    with pytest.raises(ProviderError) as caught:
        _search(provider_class)

    assert not isinstance(caught.value, TransientProviderError)
    assert "failed (400): Invalid query for [redacted]" in str(caught.value)


def test_other_4xx_quotes_the_server_message_of_searxng(fake_search):
    fake_search.fail_next(400, {"error": "unknown engine"})

    with pytest.raises(ProviderError, match=r"SearXNG search failed \(400\): unknown engine"):
        _search(SearxngSearch)


@pytest.mark.parametrize("provider_class", PROVIDERS)
def test_url_that_is_not_http_is_a_configuration_error(fake_search, settings, provider_class):
    settings.GOOGLE_SEARCH_URL = "ftp://example/customsearch"
    settings.SEARXNG_URL = "ftp://example"
    settings.CANADACA_SEARCH_URL = "ftp://example/search"

    with pytest.raises(ProviderError, match="not an http"):
        _search(provider_class)
