"""What the forms and the API offer: enabled providers, their models, and validation."""

from __future__ import annotations

import pytest

from chats import providers, search
from chats.errors import ProviderNotConfigured
from chats.services import check_chat_settings, provider_choices, search_choices


@pytest.fixture
def no_keys(settings):
    for name in (
        "OPENAI_API_KEY",
        "AZURE_OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "COMPATIBLE_BASE_URL",
        "GOOGLE_SEARCH_API_KEY",
        "SEARXNG_URL",
        "CANADACA_SEARCH_URL",
    ):
        setattr(settings, name, "")
    return settings


def test_a_fresh_checkout_offers_the_offline_providers(no_keys):
    assert provider_choices() == [
        ("extractive", "Extractive (offline, no AI model)", ["extractive"])
    ]
    keys = [key for key, _label in search_choices()]
    assert "none" in keys and "local" in keys
    assert "google" not in keys


def test_configured_providers_are_offered_extractive_first(no_keys):
    no_keys.OPENAI_API_KEY = "sk-x"
    no_keys.OPENAI_MODELS = ["gpt-a", "gpt-b"]
    no_keys.COMPATIBLE_BASE_URL = "http://127.0.0.1:11434/v1"
    no_keys.COMPATIBLE_MODELS = ["llama3"]
    choices = provider_choices()
    assert [key for key, _label, _models in choices] == ["extractive", "openai", "compatible"]
    assert choices[1] == ("openai", "OpenAI", ["gpt-a", "gpt-b"])


def test_a_provider_whose_module_does_not_import_is_left_out(no_keys, monkeypatch):
    monkeypatch.setitem(providers.PROVIDERS, "broken", "chats.providers.not_there.Broken")
    monkeypatch.setitem(search.SEARCH_PROVIDERS, "broken", "chats.search.not_there.Broken")
    assert "broken" not in [key for key, _label, _models in provider_choices()]
    assert "broken" not in [key for key, _label in search_choices()]


def test_check_returns_the_default_model_when_none_is_given(no_keys):
    no_keys.OPENAI_API_KEY = "sk-x"
    no_keys.OPENAI_MODELS = ["gpt-a", "gpt-b"]
    assert check_chat_settings(ai_provider="openai", search_provider="none") == "gpt-a"
    assert check_chat_settings(ai_provider="openai", model="gpt-b", search_provider="none") == (
        "gpt-b"
    )
    assert check_chat_settings(ai_provider="extractive", search_provider="local") == "extractive"


def test_check_refuses_a_model_the_provider_does_not_offer(no_keys):
    no_keys.OPENAI_API_KEY = "sk-x"
    no_keys.OPENAI_MODELS = ["gpt-a", "gpt-b"]
    with pytest.raises(ProviderNotConfigured) as caught:
        check_chat_settings(ai_provider="openai", model="gpt-z", search_provider="none")
    assert str(caught.value) == (
        "The AI provider 'openai' does not offer the model 'gpt-z'. Choose one of: gpt-a, gpt-b."
    )


def test_check_accepts_any_model_of_a_compatible_server(no_keys):
    no_keys.COMPATIBLE_BASE_URL = "http://127.0.0.1:11434/v1"
    no_keys.COMPATIBLE_MODELS = ["llama3"]
    assert check_chat_settings(
        ai_provider="compatible", model="qwen2.5:7b", search_provider="none"
    ) == ("qwen2.5:7b")


@pytest.mark.parametrize(
    ("ai_provider", "search_provider", "message"),
    [
        ("openai", "none", "The AI provider 'openai' is not configured: set OPENAI_API_KEY."),
        ("gemini", "none", "Unknown AI provider 'gemini'."),
        ("extractive", "google", "set GOOGLE_SEARCH_API_KEY"),
        ("extractive", "bing", "Unknown search provider 'bing'."),
    ],
)
def test_check_names_what_is_missing(no_keys, ai_provider, search_provider, message):
    with pytest.raises(ProviderNotConfigured, match=message.replace("(", r"\(")):
        check_chat_settings(ai_provider=ai_provider, search_provider=search_provider)
