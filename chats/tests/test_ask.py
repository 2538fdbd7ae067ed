"""`manage.py ask`: streams the answer, then citation, tokens and latency."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from chats.models import Chat, Interaction
from chats.tests.fake_servers import FAKE_API_KEY as KEY

pytestmark = pytest.mark.django_db


def _ask(*args: str) -> str:
    out = StringIO()
    call_command("ask", *args, stdout=out)
    return out.getvalue()


def test_streams_the_answer_then_citation_tokens_and_latency(fake):
    output = _ask("What is new?", "--provider", "openai", "--search", "none")
    lines = output.splitlines()
    assert lines[0] == "Fake answer (turn 1) to: What is new?"
    assert "<answer>" not in output
    assert lines[1] == "Citation: none"
    assert lines[2].startswith("Model: openai / gpt-4o-mini; tokens: ")
    assert " in, 8 out; latency: " in lines[2]
    chat = Chat.objects.get()
    assert lines[3] == f"Chat: {chat.chat_id}"
    assert chat.uploader is None
    assert chat.interactions.get().answer == lines[0]
    assert fake.requests[0].body["stream"] is True


def test_options_choose_provider_model_and_language(fake):
    output = _ask(
        "Quoi de neuf ?", "--provider", "anthropic", "--model", "claude-haiku-5-5",
        "--search", "none", "--language", "fr", "--raw",
    )  # fmt: skip
    assert output.startswith("<answer>Fake answer (turn 1) to: Quoi de neuf ?</answer>")
    chat = Chat.objects.get()
    assert (chat.ai_provider, chat.model, chat.page_language) == (
        "anthropic",
        "claude-haiku-5-5",
        "fr",
    )
    assert "in French" in fake.requests[0].body["system"]


def test_a_provider_error_exits_non_zero_with_the_message(fake):
    fake.fail_next(1, "401")
    with pytest.raises(CommandError) as caught:
        _ask("Hello?", "--provider", "openai", "--search", "none")
    assert str(caught.value) == (
        "OpenAI: the API key was rejected (401 Unauthorized). Check OPENAI_API_KEY."
    )
    assert KEY not in str(caught.value)
    assert not Chat.objects.exists()  # the empty chat is not kept
    assert not Interaction.objects.exists()


def test_a_provider_that_is_not_configured_is_named(settings):
    settings.ANTHROPIC_API_KEY = ""
    with pytest.raises(CommandError, match="set ANTHROPIC_API_KEY"):
        _ask("Hello?", "--provider", "anthropic", "--search", "none")


def test_an_unknown_model_is_refused_before_anything_is_created(fake):
    with pytest.raises(CommandError, match="does not offer the model 'gpt-9'"):
        _ask("Hello?", "--provider", "openai", "--model", "gpt-9", "--search", "none")
    assert not Chat.objects.exists()
    assert not fake.requests
