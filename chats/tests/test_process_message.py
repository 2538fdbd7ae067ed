"""process_message end to end: local search over a temporary folder, a real SDK talking
to the fake provider server, one stored Interaction."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from accounts.tests.factories import UserFactory
from chats.errors import ProviderError, ProviderNotConfigured
from chats.models import Interaction
from chats.prompts import parse_answer
from chats.services import process_message
from chats.tests.factories import ChatFactory, PromptOverrideFactory
from chats.tests.fake_servers import FAKE_API_KEY as KEY

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def docs_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("search")
    (folder / "docs").mkdir()
    (folder / "docs" / "passport.md").write_text(
        "---\ntitle: Renew a passport\nurl: https://example.org/passport\n---\n"
        "Adults renew their passport online with form A. Renewal takes ten days.\n"
    )
    (folder / "docs" / "taxes.md").write_text(
        "---\ntitle: File your taxes\nurl: https://example.org/taxes\n---\n"
        "File your income tax return before April 30.\n"
    )
    return folder


@pytest.fixture
def docs(settings, docs_folder):
    # One index for the module: built on the first search, then reused.
    settings.LOCAL_SEARCH_DOCS = str(docs_folder / "docs")
    settings.LOCAL_SEARCH_INDEX = str(docs_folder / "index.sqlite3")
    return docs_folder


@pytest.fixture
def fake(fake, docs):
    """The fake provider, with the local search index of `docs` in place."""
    return fake


def _chat(**kwargs):
    fields = {"ai_provider": "openai", "model": "gpt-4o-mini", "search_provider": "local"}
    return ChatFactory(**(fields | kwargs))


def test_stores_one_interaction_with_every_field(fake):
    chat = _chat()
    interaction = process_message(
        chat=chat, question="How do I renew my passport?", referring_url="https://example.org/"
    )
    assert Interaction.objects.count() == 1
    interaction.refresh_from_db()
    assert interaction.chat == chat
    assert interaction.position == 0
    assert interaction.question == "How do I renew my passport?"
    assert interaction.referring_url == "https://example.org/"
    assert interaction.answer == "Fake answer (turn 1) to: How do I renew my passport?"
    assert interaction.answer_type == "normal"
    assert interaction.citation_url == "https://example.org/passport"
    assert interaction.citation_title == "Renew a passport"
    assert interaction.search_query == "How do I renew my passport?"
    assert interaction.search_results[0]["url"] == "https://example.org/passport"
    assert set(interaction.search_results[0]) == {"title", "url", "snippet"}
    assert interaction.model == "gpt-4o-mini"
    assert interaction.input_tokens > 50  # the system prompt is counted
    assert interaction.output_tokens > 5
    assert interaction.latency_ms is not None and interaction.latency_ms >= 0
    assert interaction.prompt_override is None


def test_latency_covers_the_provider_call(fake):
    fake.latency = 0.2
    interaction = process_message(chat=_chat(), question="passport renewal")
    assert interaction.latency_ms >= 200


def test_search_results_are_capped_and_sent_in_the_prompt(fake, settings):
    settings.SEARCH_MAX_RESULTS = 1
    interaction = process_message(chat=_chat(), question="passport taxes")
    assert len(interaction.search_results) == 1
    system = fake.requests[0].body["messages"][0]["content"]
    assert interaction.search_results[0]["url"] in system
    assert "[2]" not in system


def test_history_is_sent_on_the_second_turn(fake):
    chat = _chat()
    first = process_message(chat=chat, question="How do I renew my passport?")
    second = process_message(chat=chat, question="And how long does it take?")
    assert (first.position, second.position) == (0, 1)
    messages = fake.requests[1].body["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"] == "How do I renew my passport?"
    assert messages[2]["content"] == first.answer  # the parsed answer, not the raw tags
    assert messages[3]["content"] == "And how long does it take?"
    assert second.answer == "Fake answer (turn 2) to: And how long does it take?"


@pytest.mark.parametrize("provider", ["openai", "azure", "compatible", "anthropic"])
def test_streamed_tokens_make_up_the_stored_answer(fake, settings, provider):
    models = {
        "openai": "gpt-4o-mini",
        "azure": "test-deployment",
        "compatible": "local-model",
        "anthropic": settings.ANTHROPIC_MODELS[0],
    }
    tokens: list[str] = []
    interaction = process_message(
        chat=_chat(ai_provider=provider, model=models[provider]),
        question="passport renewal",
        on_token=tokens.append,
    )
    raw = "".join(tokens)
    assert len(tokens) > 3
    assert "<citation-url>" in raw  # the raw model text is streamed, tags included
    parsed = parse_answer(raw)
    assert interaction.answer == parsed.answer
    assert interaction.citation_url == parsed.citation_url == "https://example.org/passport"
    assert interaction.model == models[provider]


def test_model_falls_back_to_the_provider_default(fake, settings):
    settings.OPENAI_MODELS = ["gpt-default"]
    interaction = process_message(chat=_chat(model=""), question="passport")
    assert interaction.model == "gpt-default"
    assert fake.requests[0].body["model"] == "gpt-default"


def test_enabled_override_is_applied_and_recorded(fake):
    uploader = UserFactory()
    override = PromptOverrideFactory(owner=uploader, text="Answer like a pirate.")
    PromptOverrideFactory(text="Someone else's override.")  # another user's: never used
    interaction = process_message(
        chat=_chat(uploader=uploader, apply_overrides=True), question="passport"
    )
    system = fake.requests[0].body["messages"][0]["content"]
    assert system.endswith("Answer like a pirate.")
    assert "Someone else's" not in system
    assert interaction.prompt_override == override


@pytest.mark.parametrize(("apply_overrides", "enabled"), [(False, True), (True, False)])
def test_override_is_skipped_unless_applied_and_enabled(fake, apply_overrides, enabled):
    uploader = UserFactory()
    PromptOverrideFactory(owner=uploader, text="Answer like a pirate.", enabled=enabled)
    interaction = process_message(
        chat=_chat(uploader=uploader, apply_overrides=apply_overrides), question="passport"
    )
    assert "pirate" not in fake.requests[0].body["messages"][0]["content"]
    assert interaction.prompt_override is None


def test_no_search_still_answers_without_citation(fake):
    interaction = process_message(chat=_chat(search_provider="none"), question="passport")
    assert interaction.search_results == []
    assert interaction.citation_url == ""
    assert "none were found" in fake.requests[0].body["messages"][0]["content"]


def test_a_model_ignoring_the_format_is_stored_as_plain_text(fake):
    interaction = process_message(chat=_chat(), question="passport [no-tags]")
    assert interaction.answer == "Fake answer (turn 1) to: passport [no-tags]"
    assert interaction.citation_url == ""


def test_not_configured_provider_names_the_setting_and_stores_nothing(fake, settings):
    settings.OPENAI_API_KEY = ""
    with pytest.raises(ProviderNotConfigured, match="set OPENAI_API_KEY"):
        process_message(chat=_chat(), question="passport")
    assert not Interaction.objects.exists()
    assert not fake.requests


def test_provider_error_stores_nothing_and_leaks_no_key(fake, caplog):
    fake.fail_next(1, "401")
    with pytest.raises(ProviderError) as caught:
        process_message(chat=_chat(), question="passport")
    assert "API key was rejected" in str(caught.value)
    assert KEY not in str(caught.value)
    assert KEY not in caplog.text
    assert not Interaction.objects.exists()


def test_the_key_is_not_stored(fake):
    interaction = process_message(chat=_chat(), question="passport")
    row = Interaction.objects.filter(pk=interaction.pk).values().get()
    assert KEY not in str(row)


@pytest.mark.django_db(transaction=True)
def test_concurrent_turns_of_one_chat_get_distinct_positions(fake):
    fake.latency = 0.1  # every call is in flight at the same time
    chat = _chat()
    errors: list[Exception] = []

    def ask(number: int) -> None:
        try:
            process_message(chat=chat, question=f"passport question {number}")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    positions = sorted(chat.interactions.values_list("position", flat=True))
    assert positions == [0, 1, 2, 3, 4, 5]
