"""OpenAI, Azure OpenAI and OpenAI-compatible providers through the real `openai` SDK
against the fake server."""

from __future__ import annotations

import pytest

from chats import aio
from chats.errors import ProviderError, ProviderNotConfigured
from chats.http import CLIENT_SHARDS
from chats.providers import get_provider
from chats.providers.base import GenerationRequest, Message
from chats.providers.openai import OpenAIProvider
from chats.services import warm_up_providers
from chats.tests.fake_servers import FAKE_API_KEY as KEY
from chats.tests.fake_servers import FakeAIServer

SYSTEM = "Answer briefly.\n\n[1] Passport renewal\nURL: https://example.org/passport\n"
EXPECTED = (
    "<answer>Fake answer (turn 2) to: And for a child?</answer>"
    "<citation-url>https://example.org/passport</citation-url>"
    "<citation-title>Passport renewal</citation-title>"
)
AUTH_HEADER = {"openai": "authorization", "azure": "api-key", "compatible": "authorization"}


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


@pytest.mark.parametrize("key", ["openai", "azure", "compatible"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_generates_through_the_sdk(fake, key, stream):
    tokens: list[str] = []
    generation = get_provider(key).generate(_request(), on_token=tokens.append if stream else None)
    assert generation.text == EXPECTED
    assert generation.input_tokens == 21  # words of system + messages, counted by the fake
    assert generation.output_tokens == len(EXPECTED.split())
    if stream:
        assert len(tokens) > 3
        assert "".join(tokens) == EXPECTED
    [sent] = fake.requests
    body = sent.body
    assert body["messages"][0] == {"role": "system", "content": SYSTEM}
    assert [m["role"] for m in body["messages"][1:]] == ["user", "assistant", "user"]
    assert body.get("stream", False) is stream
    if stream:
        assert body["stream_options"] == {"include_usage": True}


def test_default_model_is_the_first_listed(fake, settings):
    settings.OPENAI_MODELS = ["gpt-first", "gpt-second"]
    generation = get_provider("openai").generate(_request())
    assert generation.model == "gpt-first"
    assert fake.requests[0].body["model"] == "gpt-first"
    get_provider("openai").generate(_request(model="gpt-second"))
    assert fake.requests[1].body["model"] == "gpt-second"


def test_azure_uses_the_deployment_path_and_api_version(fake, settings):
    settings.AZURE_OPENAI_API_VERSION = "2024-10-21"
    get_provider("azure").generate(_request())
    [sent] = fake.requests
    assert sent.path == "/openai/deployments/test-deployment/chat/completions"
    assert sent.query["api-version"] == ["2024-10-21"]


@pytest.mark.parametrize("key", ["openai", "azure", "compatible"])
def test_key_travels_only_in_its_header(fake, key):
    get_provider(key).generate(_request())
    get_provider(key).generate(_request(), on_token=lambda token: None)
    for sent in fake.requests:
        header = sent.headers[AUTH_HEADER[key]]
        assert header in (KEY, f"Bearer {KEY}")
        others = {name: value for name, value in sent.headers.items() if name != AUTH_HEADER[key]}
        assert KEY not in str(others)
        assert KEY not in sent.path and KEY not in str(sent.query)
        assert KEY not in str(sent.body)


def test_compatible_server_without_key_gets_a_placeholder(fake, settings):
    settings.COMPATIBLE_API_KEY = ""
    generation = get_provider("compatible").generate(_request())
    assert generation.text == EXPECTED
    assert fake.requests[0].headers["authorization"] == "Bearer not-needed"


@pytest.mark.parametrize(
    ("key", "model", "expected"),
    [
        ("openai", "missing-model", "OpenAI: model 'missing-model' not found (404)."),
        ("azure", "missing-deploy", "Azure OpenAI: deployment 'missing-deploy' not found (404)."),
    ],
)
def test_unknown_model_is_named(fake, key, model, expected):
    with pytest.raises(ProviderError) as caught:
        get_provider(key).generate(_request(model=model))
    assert str(caught.value).startswith(expected)
    assert len(fake.requests) == 1


def test_wrong_key_is_reported_with_the_setting_to_fix(settings):
    with FakeAIServer(api_key="the-right-key") as server:
        server.configure(settings, api_key=KEY)
        with pytest.raises(ProviderError) as caught:
            get_provider("azure").generate(_request())
    assert str(caught.value) == (
        "Azure OpenAI: the API key was rejected (401 Unauthorized). Check AZURE_OPENAI_API_KEY."
    )


@pytest.mark.parametrize(
    ("key", "cleared", "named"),
    [
        ("openai", {"OPENAI_API_KEY": ""}, "OPENAI_API_KEY"),
        ("openai", {"OPENAI_MODELS": []}, "OPENAI_MODELS"),
        ("azure", {"AZURE_OPENAI_ENDPOINT": ""}, "AZURE_OPENAI_ENDPOINT"),
        ("azure", {"AZURE_OPENAI_API_KEY": ""}, "AZURE_OPENAI_API_KEY"),
        ("azure", {"AZURE_OPENAI_DEPLOYMENTS": []}, "AZURE_OPENAI_DEPLOYMENTS"),
        ("compatible", {"COMPATIBLE_BASE_URL": ""}, "COMPATIBLE_BASE_URL"),
        ("compatible", {"COMPATIBLE_MODELS": []}, "COMPATIBLE_MODELS"),
    ],
)
def test_not_configured_names_the_setting(fake, settings, key, cleared, named):
    for name, value in cleared.items():
        setattr(settings, name, value)
    with pytest.raises(ProviderNotConfigured) as caught:
        get_provider(key)
    assert str(caught.value) == f"The AI provider '{key}' is not configured: set {named}."


class _JsonClient:
    """An SDK client whose POST answers with a fixed JSON body (cast_to=object)."""

    def __init__(self, body: object) -> None:
        self.body = body

    async def post(self, path: str, *, body: dict, cast_to: type) -> object:
        assert (path, cast_to) == ("/chat/completions", object)
        return self.body


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {
                "choices": [{"message": {"content": "Hi."}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2},
            },
            ("Hi.", 3, 2),
        ),
        ({"choices": [{"message": {"content": None}}]}, ("", None, None)),
        (
            {"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": "3"}},
            ("x", None, None),
        ),
        ({"choices": []}, "returned no answer"),
        ({}, "returned no answer"),
        ({"choices": "x"}, "unexpected format"),
        ({"choices": [{"text": "no message"}]}, "unexpected format"),
        (["not", "an", "object"], "unexpected format"),
    ],
)
def test_the_completion_json_is_read_and_checked(body, expected):
    call = OpenAIProvider()._complete(_JsonClient(body), "m", [])
    if isinstance(expected, str):
        with pytest.raises(ProviderError, match=expected):
            aio.run(call)
    else:
        generation = aio.run(call)
        assert (generation.text, generation.input_tokens, generation.output_tokens) == expected


@pytest.mark.parametrize("key", ["openai", "azure", "compatible"])
def test_warm_up_builds_the_clients_the_first_call_uses(fake, key):
    """An engine process (a Celery pool child) builds its SDK clients before its first
    slice: the first call then finds them instead of making them. (Each test's fake
    server has its own URL, so its clients are new ones.)"""
    before = _clients()
    warm_up_providers(ai_provider=key)
    built = {name: clients for name, clients in _clients().items() if name not in before}
    assert [len(clients) for clients in built.values()] == [CLIENT_SHARDS]

    get_provider(key).generate(_request())

    after = {name: clients for name, clients in _clients().items() if name not in before}
    assert after == built  # the very same clients: the call made none
    assert len(fake.requests) == 1


def _clients() -> dict:
    """The sharded clients on the provider loop: {key: [client ids]}."""

    async def read() -> dict:
        return {name: [id(c) for c in state[0]] for name, state in aio.cache_items("round-robin")}

    return aio.run(read())
