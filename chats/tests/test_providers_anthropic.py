"""The Anthropic provider through the real `anthropic` SDK against the fake server."""

from __future__ import annotations

import pytest

from chats.errors import ProviderError, ProviderNotConfigured, TransientProviderError
from chats.providers import get_provider
from chats.providers.base import GenerationRequest, Message
from chats.tests.fake_servers import FAKE_API_KEY as KEY
from chats.tests.fake_servers import FakeAIServer

SYSTEM = "Answer briefly.\n\n[1] Passport renewal\nURL: https://example.org/passport\n"
EXPECTED = (
    "<answer>Fake answer (turn 2) to: And for a child?</answer>"
    "<citation-url>https://example.org/passport</citation-url>"
    "<citation-title>Passport renewal</citation-title>"
)


def _request(model: str = "") -> GenerationRequest:
    return GenerationRequest(
        system=SYSTEM,
        messages=[
            Message("user", "How do I renew a passport?"),
            Message("assistant", "Fill in form A."),
            Message("user", "And for a child?"),
        ],
        question="And for a child?",
        model=model,
    )


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_generates_through_the_sdk(fake, settings, stream):
    tokens: list[str] = []
    generation = get_provider("anthropic").generate(
        _request(), on_token=tokens.append if stream else None
    )
    assert generation.text == EXPECTED
    assert generation.model == settings.ANTHROPIC_MODELS[0]
    assert generation.input_tokens == 21  # words of system + messages, counted by the fake
    assert generation.output_tokens == len(EXPECTED.split())
    if stream:
        assert len(tokens) > 3
        assert "".join(tokens) == EXPECTED
    [sent] = fake.requests
    assert sent.path == "/v1/messages"
    assert sent.body["system"] == SYSTEM
    assert [m["role"] for m in sent.body["messages"]] == ["user", "assistant", "user"]
    assert sent.body["max_tokens"] > 0
    assert sent.body.get("stream", False) is stream


def test_key_travels_only_in_the_auth_header(fake):
    get_provider("anthropic").generate(_request())
    get_provider("anthropic").generate(_request(), on_token=lambda token: None)
    for sent in fake.requests:
        # The SDK sends the key as `x-api-key` (older versions) or `Authorization: Bearer`.
        carrying = {name for name, value in sent.headers.items() if KEY in value}
        assert carrying in ({"x-api-key"}, {"authorization"})
        assert sent.headers[carrying.pop()] in (KEY, f"Bearer {KEY}")
        assert KEY not in sent.path and KEY not in str(sent.body)


def test_rate_limit_is_retried(fake):
    fake.fail_next(2, "429", retry_after=0.01)
    assert get_provider("anthropic").generate(_request()).text == EXPECTED
    assert len(fake.requests) == 3


def test_overloaded_stream_after_first_token_is_not_retried(fake):
    fake.fail_next(1, "stream-error")
    tokens: list[str] = []
    with pytest.raises(TransientProviderError, match="error during the answer"):
        get_provider("anthropic").generate(_request(), on_token=tokens.append)
    assert tokens
    assert len(fake.requests) == 1


def test_unknown_model_is_named(fake):
    with pytest.raises(ProviderError) as caught:
        get_provider("anthropic").generate(_request(model="missing-claude"))
    assert str(caught.value).startswith("Anthropic: model 'missing-claude' not found (404).")


def test_wrong_key_is_reported_without_the_key(settings, caplog):
    with FakeAIServer(api_key="the-right-key") as server:
        server.configure(settings, api_key=KEY)
        with pytest.raises(ProviderError) as caught:
            get_provider("anthropic").generate(_request())
    assert str(caught.value) == (
        "Anthropic: the API key was rejected (401 Unauthorized). Check ANTHROPIC_API_KEY."
    )
    assert KEY not in caplog.text


@pytest.mark.parametrize(
    ("cleared", "named"),
    [
        ({"ANTHROPIC_API_KEY": ""}, "ANTHROPIC_API_KEY"),
        ({"ANTHROPIC_MODELS": []}, "ANTHROPIC_MODELS"),
    ],
)
def test_not_configured_names_the_setting(settings, cleared, named):
    settings.ANTHROPIC_API_KEY = KEY
    for name, value in cleared.items():
        setattr(settings, name, value)
    with pytest.raises(ProviderNotConfigured, match=f"set {named}"):
        get_provider("anthropic")
