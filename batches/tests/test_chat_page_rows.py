"""A batch row's chat page: titled by batch and row; a row without an answer shows its
question, status and error and offers a retry instead of a follow-up."""

from __future__ import annotations

import pytest
from django.urls import reverse

from batches.models import Batch
from batches.tests.factories import BatchFactory, BatchItemFactory
from chats.tests.factories import ChatFactory, InteractionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def failed_row(owner):
    batch = BatchFactory(uploader=owner, name="Support questions", status="completed")
    return BatchItemFactory(
        batch=batch,
        position=4,
        status="failed",
        question="How do I reset my password?",
        error="OpenAI: the provider answered 500 five times.",
    )


def test_failed_row_shows_question_status_error_and_retry(owner_client, failed_row):
    page = owner_client.get(failed_row.chat.get_absolute_url()).text
    assert "How do I reset my password?" in page
    assert "OpenAI: the provider answered 500 five times." in page
    assert "status-failed" in page
    assert reverse("batches:retry_items", args=[failed_row.batch_id]) in page
    assert f'name="item" value="{failed_row.pk}"' in page
    assert "has not been processed" not in page
    assert "Ask a follow-up" not in page  # retry first


def test_retry_from_the_chat_page_queues_the_row_and_shows_the_batch(owner_client, failed_row):
    chat_url = failed_row.chat.get_absolute_url()
    page = owner_client.get(chat_url).text
    batch_url = reverse("batches:detail", args=[failed_row.batch_id])
    assert f'name="next" value="{batch_url}"' in page
    response = owner_client.post(
        reverse("batches:retry_items", args=[failed_row.batch_id]),
        {"item": failed_row.pk, "next": batch_url},
    )
    assert response.status_code == 302 and response["Location"] == batch_url
    failed_row.refresh_from_db()
    assert failed_row.status == "pending"
    assert Batch.objects.get(pk=failed_row.batch_id).status == "queued"
    page = owner_client.get(chat_url).text
    assert "waiting for its turn" in page


def test_follow_up_is_refused_while_a_row_has_no_answer(owner_client, failed_row):
    response = owner_client.post(
        reverse("chats:ask", args=[failed_row.chat.chat_id]), {"question": "Hello?"}
    )
    assert response.status_code == 409
    assert not failed_row.chat.interactions.exists()


def test_chat_is_titled_by_batch_name_and_row(owner_client, owner):
    batch = BatchFactory(uploader=owner, name="Support questions")
    item = BatchItemFactory(batch=batch, position=2, status="done")
    item.interaction = InteractionFactory(chat=item.chat, position=0)
    item.save()
    page = owner_client.get(item.chat.get_absolute_url()).text
    assert "<h1>Support questions · row 3</h1>" in page
    assert "<title>Support questions · row 3 · BatchChat</title>" in page
    assert "Ask a follow-up" in page

    chat = ChatFactory(uploader=owner)
    for position in (5, 6):
        BatchItemFactory(batch=batch, chat=chat, position=position, status="pending")
    assert "Support questions · rows 6–7" in owner_client.get(chat.get_absolute_url()).text


def test_extractive_chat_counts_words_and_overrides_do_not_apply(owner_client, owner):
    chat = ChatFactory(uploader=owner, apply_overrides=True)
    InteractionFactory(chat=chat, position=0, input_tokens=300, output_tokens=40)
    page = owner_client.get(chat.get_absolute_url()).text
    assert "Words: 300 read / 40 written" in page and "Tokens:" not in page
    assert "prompt overrides do not apply" in page


def test_failed_row_chat_in_french(owner_client, failed_row):
    owner_client.cookies["django_language"] = "fr"
    page = owner_client.get(failed_row.chat.get_absolute_url()).text
    assert "Relancer cette ligne" in page and "Lignes sans réponse" in page
    assert "Support questions · ligne 5" in page


def test_chat_page_queries_stay_fixed_with_rows(owner_client, owner, django_assert_max_num_queries):
    batch = BatchFactory(uploader=owner)
    chat = ChatFactory(uploader=owner)
    for position in range(12):
        item = BatchItemFactory(batch=batch, chat=chat, position=position, status="done")
        item.interaction = InteractionFactory(chat=chat, position=position)
        item.save()
    with django_assert_max_num_queries(6):
        owner_client.get(chat.get_absolute_url())
