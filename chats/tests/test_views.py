"""The chat page (transcript, streamed follow-ups) and the prompt overrides page."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from chats.models import Interaction, PromptOverride
from chats.tests.factories import ChatFactory, InteractionFactory, PromptOverrideFactory
from chats.views import STREAM_END

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}
STREAM = {"HTTP_X_BATCHCHAT_STREAM": "1"}


@pytest.fixture
def chat(owner):
    chat = ChatFactory(uploader=owner, search_provider="none")
    InteractionFactory(
        chat=chat,
        position=0,
        question="What is BatchChat?",
        answer="A tool that answers batches of questions.",
        citation_url="https://docs.example/batchchat",
        citation_title="About BatchChat",
        search_results=[
            {"title": "About BatchChat", "url": "https://docs.example/batchchat", "snippet": "x"},
            {"title": "Uploads", "url": "https://docs.example/uploads", "snippet": "y"},
        ],
        input_tokens=1234,
        output_tokens=56,
        latency_ms=789,
    )
    return chat


def read_stream(response) -> tuple[str, dict]:
    text = b"".join(response.streaming_content).decode("utf-8")
    answer, _sep, status = text.partition(STREAM_END)
    return answer, json.loads(status)


# --- Access ------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "transcript/"])
def test_anonymous_is_sent_to_login(client, chat, suffix):
    response = client.get(f"/chats/{chat.chat_id}/{suffix}")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_anonymous_cannot_ask(client, chat):
    response = client.post(reverse("chats:ask", args=[chat.chat_id]), {"question": "Hi?"})
    assert response.status_code == 302
    assert chat.interactions.count() == 1


@pytest.mark.parametrize(
    "name, method", [("detail", "get"), ("transcript", "get"), ("ask", "post")]
)
def test_another_users_chat_is_404(client, other_user, chat, name, method):
    client.force_login(other_user)
    response = getattr(client, method)(
        reverse(f"chats:{name}", args=[chat.chat_id]),
        {"question": "Mine now?"} if method == "post" else {},
        **HX,
    )
    assert response.status_code == 404
    assert chat.interactions.count() == 1


def test_staff_reads_every_chat_but_cannot_continue_it(client, staff_user, chat):
    client.force_login(staff_user)
    page = client.get(chat.get_absolute_url())
    assert page.status_code == 200
    body = page.content.decode()
    assert "A tool that answers batches of questions." in body
    assert reverse("chats:ask", args=[chat.chat_id]) not in body
    response = client.post(reverse("chats:ask", args=[chat.chat_id]), {"question": "Hi?"})
    assert response.status_code == 403
    assert chat.interactions.count() == 1


def test_wrong_methods_are_405(owner_client, chat):
    assert owner_client.get(reverse("chats:ask", args=[chat.chat_id])).status_code == 405
    assert owner_client.post(chat.get_absolute_url()).status_code == 405


def test_unknown_chat_is_404(owner_client):
    assert owner_client.get("/chats/no-such-chat/").status_code == 404


# --- Transcript --------------------------------------------------------------------------


def test_transcript_shows_citation_search_results_model_tokens_latency(owner_client, chat):
    body = owner_client.get(chat.get_absolute_url()).content.decode()
    assert "What is BatchChat?" in body
    assert '<a href="https://docs.example/batchchat"' in body
    assert "<details>" in body and "2 search results" in body
    assert "https://docs.example/uploads" in body
    assert "extractive" in body
    assert "1,234" in body and "56" in body
    assert "789 ms" in body
    assert 'id="turn-0"' in body
    assert 'for="id_question"' in body


def test_only_web_addresses_become_links(owner_client, owner):
    chat = ChatFactory(uploader=owner)
    InteractionFactory(
        chat=chat,
        position=0,
        referring_url="javascript:alert(document.cookie)",
        citation_url="https://example.org/ok",
        search_results=[{"title": "Bad", "url": "data:text/html,<b>x</b>", "snippet": ""}],
    )

    body = owner_client.get(reverse("chats:detail", args=[chat.chat_id])).content.decode()

    assert 'href="javascript:' not in body and 'href="data:' not in body
    assert "javascript:alert(document.cookie)" in body  # shown as text
    assert 'href="https://example.org/ok"' in body


def test_transcript_fragment_for_htmx(owner_client, chat):
    response = owner_client.get(reverse("chats:transcript", args=[chat.chat_id]), **HX)
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="transcript"')
    assert "<html" not in body


def test_transcript_without_htmx_redirects_to_chat(owner_client, chat):
    response = owner_client.get(reverse("chats:transcript", args=[chat.chat_id]))
    assert response.status_code == 302
    assert response["Location"] == chat.get_absolute_url()


def test_chat_page_queries_do_not_grow_with_turns(
    owner_client, chat, django_assert_max_num_queries
):
    for position in range(1, 15):
        InteractionFactory(chat=chat, position=position)
    with django_assert_max_num_queries(6):
        owner_client.get(chat.get_absolute_url())


# --- Follow-ups --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_follow_up_without_js_waits_and_redirects_to_the_new_turn(owner_client, chat):
    response = owner_client.post(
        reverse("chats:ask", args=[chat.chat_id]), {"question": "And how do I upload?"}
    )
    assert response.status_code == 302
    assert response["Location"] == f"{chat.get_absolute_url()}#turn-1"
    turn = chat.interactions.get(position=1)
    assert turn.question == "And how do I upload?"
    assert turn.answer


@pytest.mark.django_db(transaction=True)
def test_follow_up_streams_tokens_then_status(owner_client, owner, settings, tmp_path):
    # Offline pipeline with the shipped documents: the extractive answer streams word
    # by word.
    settings.LOCAL_SEARCH_INDEX = str(tmp_path / "index.sqlite3")
    chat = ChatFactory(uploader=owner, search_provider="local")
    response = owner_client.post(
        reverse("chats:ask", args=[chat.chat_id]),
        {"question": "Which file formats can I upload?"},
        **STREAM,
    )
    assert response.status_code == 200
    assert response.streaming
    chunks = [chunk.decode("utf-8") for chunk in response.streaming_content]
    assert len(chunks) > 3  # streamed in pieces, not one block
    answer, _sep, status = "".join(chunks).partition(STREAM_END)
    assert json.loads(status) == {"ok": True, "position": 0}
    stored = Interaction.objects.get(chat=chat, position=0)
    # The reader sees the answer as it grows, without the model's citation tags; it is
    # the stored answer.
    assert "<answer>" not in answer and "<citation" not in answer
    assert answer.strip() == stored.answer
    assert stored.search_results


def test_empty_follow_up_is_refused_next_to_the_field(owner_client, chat):
    response = owner_client.post(reverse("chats:ask", args=[chat.chat_id]), {"question": ""})
    assert response.status_code == 400
    body = response.content.decode()
    assert 'id="id_question_error"' in body
    assert 'aria-invalid="true"' in body
    assert chat.interactions.count() == 1


def test_empty_follow_up_streaming_answers_with_error_status(owner_client, chat):
    response = owner_client.post(
        reverse("chats:ask", args=[chat.chat_id]), {"question": "  "}, **STREAM
    )
    assert response.status_code == 400
    _answer, _sep, status = response.content.decode().partition(STREAM_END)
    assert json.loads(status)["ok"] is False


@pytest.mark.django_db(transaction=True)
def test_pipeline_error_is_streamed_as_readable_status(owner_client, owner):
    chat = ChatFactory(
        uploader=owner, ai_provider="openai", model="gpt-4o-mini", search_provider="none"
    )
    response = owner_client.post(
        reverse("chats:ask", args=[chat.chat_id]), {"question": "Hello?"}, **STREAM
    )
    _answer, status = read_stream(response)
    assert status["ok"] is False
    assert "OPENAI_API_KEY" in status["error"] or "openai" in status["error"].lower()
    assert not chat.interactions.exists()


def test_pipeline_error_without_js_is_a_message(owner_client, owner):
    chat = ChatFactory(
        uploader=owner, ai_provider="openai", model="gpt-4o-mini", search_provider="none"
    )
    response = owner_client.post(
        reverse("chats:ask", args=[chat.chat_id]), {"question": "Hello?"}, follow=True
    )
    assert "The question could not be answered" in response.content.decode()
    assert not chat.interactions.exists()


# --- Prompt overrides --------------------------------------------------------------------


def test_overrides_page_requires_login(client):
    response = client.get(reverse("chats:overrides"))
    assert response.status_code == 302


def test_overrides_page_creates_then_edits_own_override(owner_client, owner, other_user):
    PromptOverrideFactory(owner=other_user, text="Theirs")
    url = reverse("chats:overrides")
    page = owner_client.get(url).content.decode()
    assert "Theirs" not in page
    assert 'for="id_text"' in page and 'for="id_enabled"' in page
    response = owner_client.post(url, {"text": "Answer in one sentence.", "enabled": "on"})
    assert response.status_code == 302
    override = PromptOverride.objects.get(owner=owner)
    assert (override.key, override.text, override.enabled) == (
        "system",
        "Answer in one sentence.",
        True,
    )
    owner_client.post(url, {"text": "Be formal."})
    override.refresh_from_db()
    assert (override.text, override.enabled) == ("Be formal.", False)
    assert PromptOverride.objects.filter(owner=owner).count() == 1
    assert PromptOverride.objects.get(owner=other_user).text == "Theirs"


def test_overrides_page_shows_errors_on_the_field(owner_client):
    response = owner_client.post(reverse("chats:overrides"), {"text": "", "enabled": "on"})
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="id_text_error"' in body
    assert not PromptOverride.objects.exists()


def test_overrides_page_rejects_put(owner_client):
    assert owner_client.put(reverse("chats:overrides")).status_code == 405


# --- Login -------------------------------------------------------------------------------


def test_login_page_and_logout_by_post(client, owner):
    page = client.get(reverse("login"))
    assert page.status_code == 200
    assert 'for="id_username"' in page.content.decode()
    response = client.post(reverse("login"), {"username": "owner", "password": "pw-owner-123"})
    assert response.status_code == 302
    assert response["Location"] == "/batches/"
    assert client.get("/batches/").status_code == 200
    assert client.post(reverse("logout")).status_code == 302
    assert client.get("/batches/").status_code == 302


def test_wrong_password_shows_error(client, owner):
    response = client.post(reverse("login"), {"username": "owner", "password": "nope"})
    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()


def test_transcript_question_label_is_translated(owner_client, chat):
    assert "Question: </span>" in owner_client.get(chat.get_absolute_url()).text
    owner_client.cookies["django_language"] = "fr"
    body = owner_client.get(chat.get_absolute_url()).text
    assert "Question\u00a0: </span>" in body


def test_page_names_an_out_of_scope_answer_in_the_page_language(owner_client, chat):
    InteractionFactory(
        chat=chat,
        position=1,
        question="Who won the game?",
        answer="Not ours.",
        answer_type="not-gc",
    )

    english = owner_client.get(chat.get_absolute_url()).content.decode()
    french = owner_client.get(chat.get_absolute_url(), HTTP_ACCEPT_LANGUAGE="fr").content.decode()

    assert "Out of scope" in english
    assert "Hors du champ" in french
