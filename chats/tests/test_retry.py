"""Retries, backoff, Retry-After, typed errors and the concurrency limit, exercised through
the real OpenAI SDK against the fake server (the policy is shared by every provider)."""

from __future__ import annotations

import email.utils
import logging
import threading
import time

import pytest

from chats import http
from chats.errors import ProviderError, TransientProviderError
from chats.providers import get_provider, retry
from chats.providers.base import GenerationRequest, Message
from chats.tests.fake_servers import FAKE_API_KEY as KEY
from chats.tests.fake_servers import FakeAIServer


@pytest.fixture
def fake(fake, settings):
    settings.PROVIDER_MAX_ATTEMPTS = 4
    return fake


def _request(question: str = "How do I renew?") -> GenerationRequest:
    return GenerationRequest(
        system="[1] Renewals\nURL: https://example.org/renew\n",
        messages=[Message("user", question)],
        question=question,
    )


def _generate(**kwargs):
    return get_provider("openai").generate(_request(), **kwargs)


# --- Retry-After and backoff --------------------------------------------------------------


def test_parse_retry_after_seconds_milliseconds_and_http_date(frozen_clock):
    assert http.parse_retry_after({"retry-after": "3"}) == 3.0
    assert http.parse_retry_after({"retry-after": "1.5", "retry-after-ms": "250"}) == 0.25
    future = email.utils.formatdate(frozen_clock + 30, usegmt=True)
    assert 25 <= http.parse_retry_after({"retry-after": future}) <= 30
    past = email.utils.formatdate(frozen_clock - 30, usegmt=True)
    assert http.parse_retry_after({"retry-after": past}) == 0.0
    assert http.parse_retry_after({"retry-after": "soon"}) is None
    assert http.parse_retry_after({}) is None
    assert http.parse_retry_after(None) is None


def test_backoff_is_full_jitter_capped_by_the_maximum(settings):
    settings.PROVIDER_BACKOFF_BASE = 1.0
    settings.PROVIDER_BACKOFF_MAX = 5.0
    samples = [retry.backoff_delay(attempt) for attempt in (1, 2, 3, 10) for _ in range(200)]
    assert all(0 <= delay <= 5.0 for delay in samples)
    first = [retry.backoff_delay(1) for _ in range(200)]
    assert max(first) <= 1.0
    assert len({round(delay, 6) for delay in first}) > 100  # jittered, not fixed


def test_429_then_success_honours_retry_after(fake):
    fake.fail_next(1, "429", retry_after=0.2)
    started = time.monotonic()
    generation = _generate()
    waited = time.monotonic() - started
    assert "Fake answer" in generation.text
    assert len(fake.requests) == 2
    assert waited >= 0.2


def test_retry_after_as_http_date_is_honoured(fake, monkeypatch, frozen_clock):
    waits: list[float] = []
    monkeypatch.setattr(retry, "sleep", waits.append)
    fake.fail_next(
        1, "429", retry_after_header=email.utils.formatdate(frozen_clock + 2, usegmt=True)
    )
    _generate()
    assert waits == [2.0]
    assert len(fake.requests) == 2


def test_retry_after_longer_than_the_backoff_maximum_fails_at_once(fake, settings):
    settings.PROVIDER_BACKOFF_MAX = 1.0
    fake.fail_next(1, "429", retry_after=120)
    with pytest.raises(TransientProviderError) as caught:
        _generate()
    assert caught.value.retry_after == 120
    assert "asked to wait 120 s" in str(caught.value)
    assert len(fake.requests) == 1


def test_500_is_retried(fake):
    fake.fail_next(2, "500")
    assert "Fake answer" in _generate().text
    assert len(fake.requests) == 3


def test_timeout_is_retried(fake, settings):
    # The timeout also bounds the good second attempt: roomy enough for a loaded machine.
    settings.PROVIDER_TIMEOUT = 1.0
    fake.hang_seconds = 5
    fake.fail_next(1, "hang")
    started = time.monotonic()
    assert "Fake answer" in _generate().text
    assert len(fake.requests) == 2
    assert time.monotonic() - started >= 1.0


def test_attempts_are_bounded_and_the_message_is_readable(fake, settings, monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(retry, "sleep", waits.append)
    settings.PROVIDER_MAX_ATTEMPTS = 5
    fake.fail_next(10, "429", retry_after=0.001)
    with pytest.raises(TransientProviderError) as caught:
        _generate()
    assert len(fake.requests) == 5
    assert len(waits) == 4  # no sleep after the last attempt
    assert str(caught.value) == (
        "OpenAI: the provider kept answering 429 Too Many Requests after 5 attempts."
    )


def test_timeouts_on_every_attempt_give_a_readable_error(fake, settings):
    settings.PROVIDER_TIMEOUT = 0.2
    settings.PROVIDER_MAX_ATTEMPTS = 2
    fake.hang_seconds = 3
    fake.fail_next(2, "hang")
    with pytest.raises(
        TransientProviderError, match=r"did not answer within 0.2 s after 2 attempts"
    ):
        _generate()


def test_connection_refused_is_transient(settings):
    with FakeAIServer() as server:
        server.configure(settings, api_key=KEY)
    # The server is stopped: nothing listens on its port any more.
    settings.PROVIDER_MAX_ATTEMPTS = 2
    with pytest.raises(TransientProviderError, match="could not connect"):
        _generate()


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (
            "400",
            "OpenAI: the request was refused (400 Bad Request): Invalid request: bad parameter.",
        ),
        ("401", "OpenAI: the API key was rejected (401 Unauthorized). Check OPENAI_API_KEY."),
    ],
)
def test_other_4xx_are_not_retried(fake, kind, expected):
    fake.fail_next(3, kind)
    with pytest.raises(ProviderError) as caught:
        _generate()
    assert not isinstance(caught.value, TransientProviderError)
    assert str(caught.value) == expected
    assert len(fake.requests) == 1


def test_rejected_key_never_appears_in_messages_or_logs(settings, caplog):
    caplog.set_level(logging.DEBUG)
    with FakeAIServer(api_key="the-right-key") as server:
        server.configure(settings, api_key=KEY)
        server.fail_next(1, "500")  # one retry, so the retry warning is logged too
        with pytest.raises(ProviderError) as caught:
            _generate()
        assert server.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    assert "401" in str(caught.value)
    assert KEY not in str(caught.value)
    assert "retrying" in caplog.text
    assert KEY not in caplog.text


def test_server_text_quoted_in_a_400_is_scrubbed_of_the_key():
    context = retry.CallContext("OpenAI", "OPENAI_API_KEY", "gpt", secrets=(KEY,))
    failure = retry.classify_status(
        400, headers={}, context=context, server_message=f"bad key {KEY} in body"
    )
    assert KEY not in failure.message
    assert "[redacted]" in failure.message


# --- streaming ------------------------------------------------------------------------------


def test_stream_is_retried_when_it_fails_before_the_first_token(fake):
    fake.fail_next(1, "429")
    tokens: list[str] = []
    generation = _generate(on_token=tokens.append)
    assert "".join(tokens) == generation.text
    assert len(fake.requests) == 2


def test_stream_broken_after_the_first_token_is_not_retried(fake):
    fake.fail_next(1, "stream-error")
    tokens: list[str] = []
    with pytest.raises(TransientProviderError, match="stream broke after it had started"):
        _generate(on_token=tokens.append)
    assert tokens  # something was already shown to the reader
    assert len(fake.requests) == 1


# --- concurrency limit ----------------------------------------------------------------------


def test_concurrent_calls_per_provider_are_bounded(fake, settings):
    settings.PROVIDER_MAX_CONCURRENCY = 3
    fake.latency = 0.15
    errors: list[Exception] = []

    def worker():
        try:
            _generate()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(fake.requests) == 10
    assert fake.max_in_flight == 3  # the limit was reached and never exceeded
