"""batch_page: the upload form (with and without htmx) and the list of batches."""

from __future__ import annotations

import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from batches.models import Batch
from batches.tests.factories import BatchFactory
from batches.tests.view_helpers import (
    HX,
    LIST_URL,
    answered,
    completed,
    csv_file,
    real_batch,
    upload_data,
)
from chats.providers.extractive import NOT_FOUND

pytestmark = pytest.mark.django_db


def test_list_shows_only_own_batches(owner_client, owner, other_user):
    real_batch(owner, name="Mine")
    real_batch(other_user, name="Theirs")
    page = owner_client.get(LIST_URL).content.decode()
    assert "Mine" in page
    assert "Theirs" not in page


def test_put_on_batch_page_is_405(owner_client):
    assert owner_client.put(LIST_URL).status_code == 405


def test_page_has_upload_form_with_labels_and_enabled_providers(owner_client):
    page = owner_client.get(LIST_URL).content.decode()
    for field in ("id_name", "id_file", "id_ai_model", "id_search_provider", "id_page_language"):
        assert f'for="{field}"' in page
    assert 'value="extractive::extractive"' in page
    assert 'value="none"' in page
    assert 'hx-headers=\'{"x-csrftoken"' in page


def test_upload_without_js_creates_batch_and_redirects(owner_client, owner):
    response = owner_client.post(
        LIST_URL, upload_data(csv_file("question,url\nWhat is it?,https://a.example/\nWhy?,\n"))
    )
    assert response.status_code == 302
    assert response["Location"] == LIST_URL
    batch = Batch.objects.get(uploader=owner)
    assert (batch.name, batch.total_items, batch.status) == ("My batch", 2, "uploaded")
    assert batch.source_filename == "questions.csv"
    page = owner_client.get(LIST_URL).content.decode()
    assert "was created with 2 questions" in page


def test_upload_with_htmx_returns_fresh_form_and_list_out_of_band(owner_client, owner):
    response = owner_client.post(
        LIST_URL, upload_data(csv_file("question\nOne?\nTwo?\nThree?\n"), name=""), **HX
    )
    assert response.status_code == 200
    body = response.content.decode()
    batch = Batch.objects.get(uploader=owner)
    assert batch.name == "questions"  # empty name: the file name without its extension
    assert body.count('id="batch-upload"') == 1
    assert 'id="batch-list-body" hx-swap-oob="true"' in body
    assert f'id="batch-{batch.pk}"' in body
    assert f'<div hx-swap-oob="beforeend:#batch-drivers"><span id="driver-{batch.pk}"' in body
    assert "<html" not in body
    assert 'id="messages" hx-swap-oob="innerHTML"' in body
    assert "was created with 3 questions" in body


def test_bad_file_shows_parser_message_next_to_file_field(owner_client):
    response = owner_client.post(LIST_URL, upload_data(csv_file("question,body\n,World\n")), **HX)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'aria-invalid="true"' in body
    assert 'id="id_file_error"' in body
    assert 'aria-describedby="id_file_helptext id_file_error"' in body
    assert "question" in body.split('id="id_file_error"')[1].split("</p>")[0].lower()
    assert not Batch.objects.exists()


def test_bad_file_without_js_renders_page_with_error(owner_client):
    response = owner_client.post(LIST_URL, upload_data(csv_file("", name="empty.csv")))
    assert response.status_code == 400
    body = response.content.decode()
    assert "<html" in body
    assert 'id="id_file_error"' in body
    assert not Batch.objects.exists()


def test_unknown_provider_choice_is_refused_on_its_field(owner_client):
    response = owner_client.post(
        LIST_URL, upload_data(csv_file("question\nA?\n"), ai_model="openai::gpt-x"), **HX
    )
    body = response.content.decode()
    assert 'id="id_ai_model_error"' in body
    assert not Batch.objects.exists()


def test_list_progress_bar_has_values_and_numbers(owner_client, owner):
    batch = BatchFactory(uploader=owner, total_items=10, processed_items=3, failed_items=1)
    body = owner_client.get(LIST_URL).content.decode()
    row = body.split(f'id="batch-{batch.pk}"')[1].split("</tr>")[0]
    assert 'data-finished="4" data-total="10"' in row
    assert 'aria-valuenow="40"' in row
    assert "40% · 3 done, 1 failed of 10" in row


def test_list_queries_do_not_grow_with_batches(owner_client, owner):
    for _ in range(3):
        real_batch(owner)
    with CaptureQueriesContext(connection) as few:
        owner_client.get(LIST_URL)
    for _ in range(12):
        real_batch(owner)
    with CaptureQueriesContext(connection) as many:
        owner_client.get(LIST_URL)
    assert len(many) == len(few)


def test_actions_follow_state(owner_client, owner):
    uploaded = real_batch(owner, name="U")
    done = BatchFactory(
        uploader=owner, status="completed", total_items=2, processed_items=1, failed_items=1
    )
    body = owner_client.get(LIST_URL).content.decode()
    uploaded_row = body.split(f'id="batch-{uploaded.pk}"')[1].split("</tr>")[0]
    done_row = body.split(f'id="batch-{done.pk}"')[1].split("</tr>")[0]
    assert reverse("batches:start", args=[uploaded.pk]) in uploaded_row
    # Not started: nothing to cancel (it can be deleted).
    assert reverse("batches:cancel", args=[uploaded.pk]) not in uploaded_row
    assert reverse("batches:download", args=[uploaded.pk, "csv"]) not in uploaded_row
    assert reverse("batches:start", args=[done.pk]) not in done_row
    assert reverse("batches:retry", args=[done.pk]) in done_row
    for fmt in ("csv", "json", "xlsx"):
        assert reverse("batches:download", args=[done.pk, fmt]) in done_row
    assert "hx-confirm=" in done_row


def test_celery_runner_only_polls(owner_client, owner, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/15"
    batch = real_batch(owner)
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.PROCESSING)
    body = owner_client.get(LIST_URL).content.decode()
    assert 'hx-trigger="poll" data-poll' in body
    assert f'id="driver-{batch.pk}" hidden' in body
    assert "Keep this page open" not in body


def test_pages_are_translated_to_french(owner_client, owner):
    real_batch(owner)
    owner_client.cookies["django_language"] = "fr"
    body = owner_client.get(LIST_URL, HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert '<html lang="fr">' in body
    assert "Nouveau lot" in body
    assert "Démarrer" in body


def test_list_queries_stay_fixed_with_not_found_counts(owner_client, owner):
    for _ in range(2):
        answered(completed(owner, total_items=1), 0, answer=NOT_FOUND["en"])
    with CaptureQueriesContext(connection) as few:
        owner_client.get(LIST_URL)
    for _ in range(6):
        answered(completed(owner, total_items=1, page_language="fr"), 0)
    with CaptureQueriesContext(connection) as many:
        owner_client.get(LIST_URL)
    assert len(many) == len(few)


def test_upload_form_hint_names_the_columns_the_error_names(owner_client):
    from batches.uploads import ACCEPTED_QUESTION_HEADERS

    page = owner_client.get(LIST_URL).text
    assert ACCEPTED_QUESTION_HEADERS in page
    response = owner_client.post(
        LIST_URL,
        {
            "file": io.BytesIO(b"title\nx\n"),
            "ai_model": "extractive::extractive",
            "search_provider": "none",
            "page_language": "en",
        },
    )
    # A file without such a column opens the column chooser, which names them too.
    assert "Choose the columns" in response.text
    assert ACCEPTED_QUESTION_HEADERS in response.text


def test_upload_form_explains_the_local_index(owner_client, settings, tmp_path):
    settings.LOCAL_SEARCH_INDEX = str(tmp_path / "index.sqlite3")
    page = owner_client.get(LIST_URL).text
    assert "“Local documents (offline)” searches" in page
    assert "index_documents FOLDER" in page


def test_upload_form_and_errors_in_french(owner_client):
    owner_client.cookies["django_language"] = "fr"
    page = owner_client.get(LIST_URL).text
    assert "Sans recherche" in page and "Documents locaux (hors ligne)" in page
    upload = io.BytesIO(b"")
    upload.name = "vide.csv"
    response = owner_client.post(
        LIST_URL,
        {
            "file": upload,
            "ai_model": "extractive::extractive",
            "search_provider": "none",
            "page_language": "fr",
        },
    )
    error = response.text.split('id="id_file_error"')[1].split("</p>")[0]
    assert "est vide" in error  # Django's own message for an empty file, in French
    # A file without a question column opens the column chooser, in French too.
    chooser = owner_client.post(
        LIST_URL,
        {
            "file": io.BytesIO(b"titre\nx\n"),
            "ai_model": "extractive::extractive",
            "search_provider": "none",
            "page_language": "fr",
        },
    ).text
    assert "Aucune colonne" in chooser
