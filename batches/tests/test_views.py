"""The batch pages: BatchPage (upload + list), detail, actions, the inline driver."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.template.loader import render_to_string
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from batches.ingest import ParsedRow
from batches.models import Batch, BatchItem
from batches.services import create_batch_run
from batches.tests.factories import BatchFactory, BatchItemFactory
from chats.tests.factories import InteractionFactory

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}
LIST_URL = "/batches/"


def csv_file(text: str, name: str = "questions.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode("utf-8"), content_type="text/csv")


def upload_data(file, **overrides) -> dict:
    data = {
        "name": "My batch",
        "file": file,
        "ai_model": "extractive::extractive",
        "search_provider": "none",
        "page_language": "en",
    }
    data.update(overrides)
    return data


def real_batch(user, n: int = 3, **kwargs) -> Batch:
    rows = [
        ParsedRow(question=f"Question {i}?", columns={"question": f"Question {i}?"})
        for i in range(n)
    ]
    return create_batch_run(
        uploader=user,
        name=kwargs.pop("name", "Real batch"),
        rows=rows,
        ai_provider="extractive",
        search_provider="none",
        **kwargs,
    )


# --- Access ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [LIST_URL, "/batches/rows/", "/batches/1/", "/batches/1/progress/", "/batches/1/delete/"],
)
def test_anonymous_is_sent_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize(
    "name, method",
    [
        ("detail", "get"),
        ("progress", "get"),
        ("start", "post"),
        ("process", "post"),
        ("cancel", "post"),
        ("retry", "post"),
        ("delete", "get"),
        ("delete", "post"),
    ],
)
def test_another_users_batch_is_404(client, other_user, owner, name, method):
    batch = real_batch(owner)
    client.force_login(other_user)
    response = getattr(client, method)(reverse(f"batches:{name}", args=[batch.pk]), **HX)
    assert response.status_code == 404
    assert Batch.objects.filter(pk=batch.pk, status="uploaded").exists()


def test_another_users_download_is_404(client, other_user, owner):
    batch = real_batch(owner)
    client.force_login(other_user)
    assert client.get(reverse("batches:download", args=[batch.pk, "csv"])).status_code == 404


def test_staff_sees_every_batch(client, staff_user, owner):
    batch = real_batch(owner, name="Owner's batch")
    client.force_login(staff_user)
    assert "Owner&#x27;s batch" in client.get(LIST_URL).content.decode()
    assert client.get(batch.get_absolute_url()).status_code == 200


def test_list_shows_only_own_batches(owner_client, owner, other_user):
    real_batch(owner, name="Mine")
    real_batch(other_user, name="Theirs")
    page = owner_client.get(LIST_URL).content.decode()
    assert "Mine" in page
    assert "Theirs" not in page


@pytest.mark.parametrize(
    "name, method",
    [("start", "get"), ("cancel", "get"), ("retry", "get"), ("process", "get"), ("rows", "post")],
)
def test_wrong_method_is_405(owner_client, owner, name, method):
    batch = real_batch(owner)
    args = [] if name == "rows" else [batch.pk]
    response = getattr(owner_client, method)(reverse(f"batches:{name}", args=args))
    assert response.status_code == 405


def test_put_on_batch_page_is_405(owner_client):
    assert owner_client.put(LIST_URL).status_code == 405


# --- BatchUpload -------------------------------------------------------------------------


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


# --- BatchList polling -------------------------------------------------------------------


def test_rows_of_active_batch_poll_every_two_seconds(owner_client, owner):
    batch = real_batch(owner)
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.PROCESSING)
    response = owner_client.get("/batches/rows/", **HX)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'hx-trigger="every 2s"' in body
    assert 'role="progressbar"' in body or "<progress" in body


def test_rows_poll_stops_with_286_when_nothing_is_active(owner_client, owner):
    batch = real_batch(owner)
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.COMPLETED)
    response = owner_client.get("/batches/rows/", **HX)
    assert response.status_code == 286
    body = response.content.decode()
    assert "every 2s" not in body
    assert f'id="batch-{batch.pk}"' in body
    assert 'id="batch-announcer" hx-swap-oob="innerHTML"' in body


def test_rows_without_htmx_redirect_to_page(owner_client):
    response = owner_client.get("/batches/rows/")
    assert response.status_code == 302


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


# --- Actions -----------------------------------------------------------------------------


def test_start_without_js_redirects_back(owner_client, owner):
    batch = real_batch(owner)
    response = owner_client.post(reverse("batches:start", args=[batch.pk]), {"next": LIST_URL})
    assert response.status_code == 302
    assert response["Location"] == LIST_URL
    batch.refresh_from_db()
    assert batch.status == Batch.Status.QUEUED


def test_start_ignores_foreign_next_url(owner_client, owner):
    batch = real_batch(owner)
    response = owner_client.post(
        reverse("batches:start", args=[batch.pk]), {"next": "https://evil.example/"}
    )
    assert response["Location"] == batch.get_absolute_url()


def test_start_with_htmx_returns_list_with_driver_and_polling(owner_client, owner):
    batch = real_batch(owner)
    response = owner_client.post(
        reverse("batches:start", args=[batch.pk]), HTTP_HX_TARGET="batch-list-body", **HX
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="batch-list-body"' in body
    # The driver is replaced out of band: it lives outside the polled rows.
    driver = body.split(f'<form id="driver-{batch.pk}"')[1].split(">")[0]
    assert 'hx-swap-oob="true"' in driver
    assert f'hx-post="{reverse("batches:process", args=[batch.pk])}"' in body
    assert "Keep this page open: processing runs from this page." in body
    assert 'hx-trigger="every 2s"' in body
    assert "started" in body


def test_start_from_detail_returns_progress_fragment(owner_client, owner):
    batch = real_batch(owner)
    response = owner_client.post(
        reverse("batches:start", args=[batch.pk]), HTTP_HX_TARGET="batch-progress", **HX
    )
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="batch-progress"')
    assert reverse("batches:progress", args=[batch.pk]) in body
    section = body.split("</section>")[0]
    assert "driver-" not in section  # a poll of the section must not restart the driver
    assert f'<form id="driver-{batch.pk}" class="driver"' in body


def test_cancel_then_state_error_is_reported(owner_client, owner):
    batch = real_batch(owner)
    owner_client.post(reverse("batches:cancel", args=[batch.pk]))
    batch.refresh_from_db()
    assert batch.status == Batch.Status.CANCELLED
    assert batch.items.filter(status=BatchItem.Status.CANCELLED).count() == 3
    response = owner_client.post(reverse("batches:cancel", args=[batch.pk]), **HX)
    assert response.status_code == 200
    assert "cannot be cancelled" in response.content.decode()


def test_retry_failed_requeues(owner_client, owner):
    batch = real_batch(owner, n=2)
    batch.items.update(status=BatchItem.Status.FAILED, error="boom")
    Batch.objects.filter(pk=batch.pk).update(status="completed", failed_items=2)
    owner_client.post(reverse("batches:retry", args=[batch.pk]))
    batch.refresh_from_db()
    assert batch.status == Batch.Status.QUEUED
    assert batch.items.filter(status=BatchItem.Status.PENDING).count() == 2


def test_delete_asks_for_confirmation_without_js(owner_client, owner):
    batch = real_batch(owner, name="Doomed")
    page = owner_client.get(reverse("batches:delete", args=[batch.pk]))
    assert page.status_code == 200
    assert "Delete the batch “Doomed”?" in page.content.decode()
    assert Batch.objects.filter(pk=batch.pk).exists()
    response = owner_client.post(reverse("batches:delete", args=[batch.pk]))
    assert response.status_code == 302
    assert not Batch.objects.filter(pk=batch.pk).exists()


def test_delete_with_htmx_from_list_returns_list(owner_client, owner):
    batch = real_batch(owner, name="Doomed")
    response = owner_client.post(
        reverse("batches:delete", args=[batch.pk]), HTTP_HX_TARGET="batch-list-body", **HX
    )
    body = response.content.decode()
    assert 'id="batch-list-body"' in body
    assert f'id="batch-{batch.pk}"' not in body
    assert "was deleted" in body
    assert f'<span id="driver-{batch.pk}" hidden hx-swap-oob="true">' in body


def test_delete_with_htmx_from_detail_redirects_to_list(owner_client, owner):
    batch = real_batch(owner)
    response = owner_client.post(
        reverse("batches:delete", args=[batch.pk]), HTTP_HX_TARGET="batch-progress", **HX
    )
    assert response.status_code == 204
    assert response["HX-Redirect"] == LIST_URL


# --- Inline driver -----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_process_runs_slices_until_done_then_stops_driving(owner_client, owner, settings):
    settings.BATCH_CONCURRENCY = 2
    batch = real_batch(owner, n=3)
    owner_client.post(reverse("batches:start", args=[batch.pk]))
    url = reverse("batches:process", args=[batch.pk])
    for _ in range(5):
        response = owner_client.post(url, **HX)
        assert response.status_code == 200
        batch.refresh_from_db()
        if batch.status == Batch.Status.COMPLETED:
            break
    assert batch.status == Batch.Status.COMPLETED
    assert batch.processed_items == 3
    body = response.content.decode()
    assert f'<span id="driver-{batch.pk}" hidden></span>' in body
    assert "hx-post" not in body


@pytest.mark.django_db(transaction=True)
def test_process_without_js_runs_a_slice_and_redirects(owner_client, owner):
    batch = real_batch(owner, n=2)
    owner_client.post(reverse("batches:start", args=[batch.pk]))
    response = owner_client.post(reverse("batches:process", args=[batch.pk]), {"next": LIST_URL})
    assert response.status_code == 302
    assert response["Location"] == LIST_URL
    batch.refresh_from_db()
    assert batch.finished_count == 2


def test_process_of_inactive_batch_does_nothing(owner_client, owner):
    batch = real_batch(owner)
    response = owner_client.post(reverse("batches:process", args=[batch.pk]), **HX)
    assert response.status_code == 200
    assert "hx-post" not in response.content.decode()
    batch.refresh_from_db()
    assert batch.status == Batch.Status.UPLOADED


def test_active_batch_resumes_driving_on_page_load(owner_client, owner):
    batch = real_batch(owner)
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.PROCESSING)
    for url, polled in (
        (LIST_URL, 'id="batch-rows"'),
        (batch.get_absolute_url(), 'id="batch-progress"'),
    ):
        body = owner_client.get(url).content.decode()
        assert f'<form id="driver-{batch.pk}" class="driver"' in body
        assert 'hx-trigger="load, retry"' in body
        # Outside the fragment that polls itself, so polling does not restart it.
        polled_fragment = body.split(polled)[1].split("</section>")[0].split("</tbody>")[0]
        assert "driver-" not in polled_fragment


def test_celery_runner_only_polls(owner_client, owner, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/15"
    batch = real_batch(owner)
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.PROCESSING)
    body = owner_client.get(LIST_URL).content.decode()
    assert 'hx-trigger="every 2s"' in body
    assert f'id="driver-{batch.pk}" hidden' in body
    assert "Keep this page open" not in body


# --- Detail ------------------------------------------------------------------------------


def make_rows(batch, n, status="done"):
    for i in range(n):
        item = BatchItemFactory(batch=batch, position=i, status=status)
        if status == "done":
            item.interaction = InteractionFactory(chat=item.chat, position=0, answer=f"Answer {i}")
            item.save()


def test_detail_shows_rows_with_answers_and_chat_links(owner_client, owner):
    batch = BatchFactory(uploader=owner, total_items=2, processed_items=2, status="completed")
    make_rows(batch, 2)
    body = owner_client.get(batch.get_absolute_url()).content.decode()
    item = batch.items.first()
    assert "Answer 0" in body
    assert item.chat.get_absolute_url() in body
    assert "https://example.org/doc" in body  # citation link
    assert "100 / 20" in body  # tokens in / out
    assert "All (2)" in body and "Done (2)" in body and "Failed (0)" in body


def test_detail_filters_by_status(owner_client, owner):
    batch = BatchFactory(uploader=owner, total_items=3)
    BatchItemFactory(batch=batch, position=0, status="done", question="Fine question")
    BatchItemFactory(
        batch=batch, position=1, status="failed", error="Provider said no", question="Bad question"
    )
    body = owner_client.get(batch.get_absolute_url() + "?status=failed").content.decode()
    assert "Bad question" in body and "Provider said no" in body
    assert "Fine question" not in body
    assert 'aria-current="true">Failed (1)' in body


def test_detail_paginates_with_fixed_queries_per_page(owner_client, owner):
    small = BatchFactory(uploader=owner)
    make_rows(small, 3)
    big = BatchFactory(uploader=owner)
    make_rows(big, 60)
    with CaptureQueriesContext(connection) as few:
        owner_client.get(small.get_absolute_url())
    with CaptureQueriesContext(connection) as many:
        response = owner_client.get(big.get_absolute_url())
    assert len(many) == len(few)
    body = response.content.decode()
    assert "Page 1 of 2" in body
    assert body.count('<tr id="row-') == 50
    page2 = owner_client.get(big.get_absolute_url() + "?page=2").content.decode()
    assert page2.count('<tr id="row-') == 10


def test_progress_polls_while_active_and_stops_with_286(owner_client, owner):
    batch = real_batch(owner)
    url = reverse("batches:progress", args=[batch.pk])
    Batch.objects.filter(pk=batch.pk).update(status="processing")
    response = owner_client.get(url, **HX)
    assert response.status_code == 200
    assert 'hx-trigger="every 2s"' in response.content.decode()
    Batch.objects.filter(pk=batch.pk).update(status="completed")
    response = owner_client.get(url, **HX)
    assert response.status_code == 286
    body = response.content.decode()
    assert "every 2s" not in body
    assert 'id="batch-announcer" hx-swap-oob="innerHTML">Batch status: Completed.' in body


def test_download_streams_export(owner_client, owner):
    batch = BatchFactory(uploader=owner, total_items=1, processed_items=1, status="completed")
    make_rows(batch, 1)
    response = owner_client.get(reverse("batches:download", args=[batch.pk, "csv"]))
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    assert text.startswith("batch_id,batch_name,row,chat_id")
    assert "Answer 0" in text


def test_download_unknown_format_is_404(owner_client, owner):
    batch = BatchFactory(uploader=owner)
    assert owner_client.get(f"/batches/{batch.pk}/download/pdf/").status_code == 404


def test_pages_are_translated_to_french(owner_client, owner):
    real_batch(owner)
    owner_client.cookies["django_language"] = "fr"
    body = owner_client.get(LIST_URL, HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert '<html lang="fr">' in body
    assert "Nouveau lot" in body
    assert "Démarrer" in body


def test_not_found_page_is_styled_and_says_what_to_do(client, other_user, owner, settings):
    settings.DEBUG = False
    batch = real_batch(owner)
    client.force_login(other_user)
    response = client.get(batch.get_absolute_url())
    assert response.status_code == 404
    body = response.content.decode()
    assert "Page not found" in body and "Go to your batches" in body
    assert "pico.min.css" in body


def test_server_error_page_renders_without_a_request():
    body = render_to_string("500.html")
    assert "Something went wrong" in body and "Try again" in body
