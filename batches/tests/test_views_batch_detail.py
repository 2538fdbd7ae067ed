"""batch_detail and batch_item_rows: the detail page as a user reads it: rows with answers
and chat links, live rows that follow progress, honest summaries (failures, answers that
found nothing), stats, dates, and the rows table's tools (status filters, search, sort,
paging, uploaded columns, retry)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from batches.models import Batch
from batches.tests.factories import BatchFactory, BatchItemFactory
from batches.tests.view_helpers import HX, LIST_URL, answered, completed, make_rows
from chats.providers.extractive import NOT_FOUND

pytestmark = pytest.mark.django_db


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


def test_rows_of_an_active_batch_poll_and_follow_progress(owner_client, owner):
    batch = BatchFactory(uploader=owner, status=Batch.Status.PROCESSING, total_items=2)
    first = BatchItemFactory(batch=batch, position=0)
    BatchItemFactory(batch=batch, position=1)
    page = owner_client.get(batch.get_absolute_url() + "?status=pending").content.decode()
    rows_url = reverse("batches:item_rows", args=[batch.pk])
    # The progress section is the page's one poll; it carries the rows table's state.
    progress = page.split('<section id="batch-progress"')[1].split(">")[0]
    assert 'hx-trigger="poll" data-poll' in progress and "status=pending" in progress
    assert "data-poll" not in page.split('id="batch-rows-section"')[1].split(">")[0]
    assert "Refresh the rows" not in page

    first.status = "done"
    first.save()
    Batch.objects.filter(pk=batch.pk).update(processed_items=1)
    poll = owner_client.get(rows_url + "?status=pending", **HX)
    assert poll.status_code == 200
    body = poll.content.decode()
    assert "Pending (1)" in body and "Done (1)" in body
    assert 'id="row-0"' not in body and 'id="row-1"' in body

    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.COMPLETED)
    final = owner_client.get(rows_url, **HX)
    assert final.status_code == 286  # htmx stops polling after swapping the final rows
    assert "data-poll" not in final.content.decode()


def test_rows_fragment_without_htmx_redirects_to_the_page(owner_client, owner):
    batch = BatchFactory(uploader=owner)
    response = owner_client.get(reverse("batches:item_rows", args=[batch.pk]) + "?q=x")
    assert response.status_code == 302
    assert response["Location"] == batch.get_absolute_url() + "?q=x"


def test_start_from_the_detail_page_makes_the_rows_poll(owner_client, owner):
    batch = BatchFactory(uploader=owner, total_items=1)
    BatchItemFactory(batch=batch, position=0)
    page = owner_client.get(batch.get_absolute_url()).content.decode()
    assert "data-poll" not in page.split('<section id="batch-progress"')[1].split(">")[0]
    response = owner_client.post(
        reverse("batches:start", args=[batch.pk]),
        HTTP_HX_TARGET="batch-progress",
        HTTP_HX_CURRENT_URL=f"http://testserver{batch.get_absolute_url()}?status=pending&q=Q",
        **HX,
    )
    body = response.content.decode()
    section = body.split('id="batch-rows-section"')[1].split(">")[0]
    assert 'hx-swap-oob="true"' in section
    # The progress section polls, with the rows table's state of the page it came from.
    progress = body.split('<section id="batch-progress"')[1].split(">")[0]
    assert "data-poll" in progress
    assert "status=pending" in progress and "q=Q" in progress


def test_cancel_from_the_detail_page_swaps_in_the_final_rows(owner_client, owner):
    batch = BatchFactory(uploader=owner, status=Batch.Status.PROCESSING, total_items=3)
    answered(batch, 0)
    for position in (1, 2):
        BatchItemFactory(batch=batch, position=position)
    response = owner_client.post(
        reverse("batches:cancel", args=[batch.pk]),
        HTTP_HX_TARGET="batch-progress",
        HTTP_HX_CURRENT_URL=f"http://testserver{batch.get_absolute_url()}",
        **HX,
    )
    rows = response.content.decode().split('id="batch-rows-section"')[1]
    assert "data-poll" not in response.content.decode()  # finished: no more polling
    assert "Pending (0)" in rows and "Cancelled (2)" in rows and "Done (1)" in rows
    assert 'data-status="cancelled"' in rows


def test_completed_with_failures_says_so_with_a_split_bar(owner_client, owner):
    batch = completed(owner, total_items=26, processed_items=14, failed_items=12)
    body = owner_client.get(LIST_URL).content.decode()
    row = body.split(f'id="batch-{batch.pk}"')[1].split("</tr>")[0]
    assert "Completed with 12 failed" in row
    assert "status-completed-failures" in row
    assert "seg seg-failed" in row and "seg seg-answered" in row
    assert "14 done, 12 failed of 26" in row
    detail = owner_client.get(batch.get_absolute_url()).content.decode()
    assert "Completed with 12 failed" in detail
    assert "BLOCKED SEGMENT" not in detail  # the guard's place is a template comment


def test_failures_and_stats_in_french(owner_client, owner):
    start = timezone.now() - timedelta(hours=1)
    batch = completed(
        owner,
        total_items=26,
        processed_items=14,
        failed_items=12,
        started_at=start,
        finished_at=start + timedelta(minutes=3, seconds=4),
    )
    owner_client.cookies["django_language"] = "fr"
    assert "Terminé avec 12 échecs" in owner_client.get(LIST_URL).text
    page = owner_client.get(batch.get_absolute_url()).text
    assert "Terminé avec 12 échecs" in page and "Échouées\u00a0: 12" in page
    assert "Durée" in page and "3 min 04 s" in page


def test_not_found_answers_are_counted_shown_and_filtered(owner_client, owner):
    batch = completed(owner, total_items=3, processed_items=3)
    answered(batch, 0, question="Covered?", answer="Cancel it from the batch page.")
    answered(batch, 1, question="Outside?", answer=NOT_FOUND["en"])
    answered(batch, 2, question="Empty?", answer="")
    french = completed(owner, total_items=1, processed_items=1, page_language="fr")
    answered(french, 0, answer=NOT_FOUND["fr"])

    listing = owner_client.get(LIST_URL).content.decode()
    row = listing.split(f'id="batch-{batch.pk}"')[1].split("</tr>")[0]
    assert "2 answers found nothing" in row and "seg seg-not-found" in row
    assert "1 answer found nothing" in listing.split(f'id="batch-{french.pk}"')[1]

    detail = owner_client.get(batch.get_absolute_url()).content.decode()
    assert "Not found (2)" in detail and "Found nothing: 2" in detail and "Answered: 1" in detail
    only = owner_client.get(batch.get_absolute_url() + "?status=not_found").content.decode()
    assert "Outside?" in only and "Empty?" in only and "Covered?" not in only


def test_prompt_overrides_do_not_apply_to_the_extractive_answerer(owner_client, owner):
    extractive = BatchFactory(uploader=owner, apply_overrides=True)
    model = BatchFactory(uploader=owner, ai_provider="openai", apply_overrides=True)
    assert "this answerer uses no prompt" in owner_client.get(extractive.get_absolute_url()).text
    page = owner_client.get(model.get_absolute_url()).text
    assert "this answerer uses no prompt" not in page and "applied" in page


def test_cancel_is_not_offered_before_start_and_cancelled_says_when(owner_client, owner):
    uploaded = BatchFactory(uploader=owner)
    assert reverse("batches:cancel", args=[uploaded.pk]) not in owner_client.get(LIST_URL).text
    moment = datetime(2026, 12, 1, 14, 5, tzinfo=UTC)
    cancelled = BatchFactory(
        uploader=owner, status="cancelled", started_at=moment, finished_at=moment
    )
    page = owner_client.get(cancelled.get_absolute_url()).text
    assert "· cancelled <time" in page and "· finished" not in page


def test_dates_have_one_unambiguous_format_per_language(owner_client, owner):
    batch = BatchFactory(uploader=owner, created_at=datetime(2026, 12, 1, 14, 5, tzinfo=UTC))
    assert "1 Dec 2026, 14:05" in owner_client.get(LIST_URL).text
    assert "1 Dec 2026, 14:05" in owner_client.get(batch.get_absolute_url()).text
    owner_client.cookies["django_language"] = "fr"
    assert "1 déc. 2026, 14:05" in owner_client.get(LIST_URL).text


def test_duration_tokens_and_estimated_cost(owner_client, owner, settings):
    settings.AI_PRICES = {"openai:gpt-4o-mini": (0.15, 0.60)}
    start = timezone.now() - timedelta(hours=2)
    batch = completed(
        owner,
        ai_provider="openai",
        model="gpt-4o-mini",
        total_items=2,
        processed_items=2,
        started_at=start,
        finished_at=start + timedelta(hours=1, minutes=2, seconds=5),
    )
    answered(batch, 0)
    answered(batch, 1)  # 100 in / 20 out each (factory)
    page = owner_client.get(batch.get_absolute_url()).text
    assert "1 h 02 min 05 s" in page
    assert "Tokens in / out" in page and "200 / 40" in page
    assert "0.0001 USD" in page  # (200 * 0.15 + 40 * 0.60) / 1e6 = 0.000054


def test_extractive_counts_are_labelled_as_words_without_a_cost(owner_client, owner, settings):
    settings.AI_PRICES = {"extractive": (1.0, 1.0)}
    batch = completed(owner, total_items=1, processed_items=1)
    answered(batch, 0)
    page = owner_client.get(batch.get_absolute_url()).text
    assert "Words read / written" in page and "Words (read / written)" in page
    assert "Tokens (in / out)" not in page and "Estimated cost" not in page


def test_rows_search_sort_and_page_jump(owner_client, owner):
    batch = completed(owner, total_items=120, processed_items=120)
    for position in range(120):
        answered(
            batch,
            position,
            question=f"Question {position} about {'invoices' if position % 40 == 0 else 'files'}?",
            latency_ms=position,
        )
    url = batch.get_absolute_url()
    found = owner_client.get(url + "?q=invoices").text
    assert "3 rows contain “invoices”" in found
    assert "Question 40 about invoices?" in found and "Question 1 about" not in found

    slowest = owner_client.get(url + "?sort=-latency").text
    assert slowest.index('id="row-119"') < slowest.index('id="row-118"')
    assert 'id="row-0"' not in slowest  # on page 3 when the slowest come first

    page = owner_client.get(url + "?page=2").text
    assert 'aria-current="page" class="current-page">2<' in page
    assert f'href="{url}?page=3"' in page and f'href="{url}">1<' in page
    assert 'id="jump-page"' in page and 'max="3"' in page
    assert 'id="row-50"' in page


def test_detail_and_rows_queries_do_not_grow(owner_client, owner):
    small = completed(owner, total_items=2)
    for position in range(2):
        answered(small, position)
    big = completed(owner, total_items=60)
    for position in range(60):
        answered(big, position)
    counts = []
    for batch in (small, big):
        with CaptureQueriesContext(connection) as queries:
            owner_client.get(batch.get_absolute_url() + "?q=Question&sort=-latency&col=team")
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_uploaded_columns_can_be_shown(owner_client, owner):
    batch = completed(owner, total_items=1, input_columns=["question", "department", "expected"])
    answered(batch, 0, row={"question": "Q?", "department": "Support", "expected": "Yes"})
    plain = owner_client.get(batch.get_absolute_url()).text
    assert 'name="col" value="department"' in plain and 'value="question"' not in plain
    assert "Support" not in plain
    shown = owner_client.get(batch.get_absolute_url() + "?col=department&col=nope").text
    assert '<th scope="col" class="context-col">department</th>' in shown
    assert ">Support</td>" in shown and "nope</th>" not in shown


def test_failed_rows_have_retry_buttons_and_checkboxes_when_finished(owner_client, owner):
    batch = completed(owner, total_items=2, processed_items=1, failed_items=1)
    answered(batch, 0)
    failed = BatchItemFactory(batch=batch, position=1, status="failed", error="Timeout")
    page = owner_client.get(batch.get_absolute_url()).text
    assert f'name="item" value="{failed.pk}"' in page
    assert f'name="items" value="{failed.pk}"' in page
    assert 'id="retry-selected"' in page
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.PROCESSING)
    running = owner_client.get(batch.get_absolute_url()).text
    assert f'name="item" value="{failed.pk}"' not in running  # the table polls meanwhile


def test_the_labels_naming_a_row_are_translated_once_and_filled_in_per_row(owner_client, owner):
    batch = completed(owner, total_items=2, processed_items=1, failed_items=1)
    BatchItemFactory(batch=batch, position=0, status="done")
    failed = BatchItemFactory(batch=batch, position=1, status="failed", error="Timeout")
    english = owner_client.get(batch.get_absolute_url()).text
    assert 'aria-label="Select row 2"' in english
    assert f'value="{failed.pk}" class="secondary outline retry-one">Retry' in english
    assert '<span class="visually-hidden"> row 2</span>' in english
    assert '<span class="visually-hidden"> for row 1</span>' in english
    french = owner_client.get(batch.get_absolute_url(), HTTP_ACCEPT_LANGUAGE="fr").text
    assert 'aria-label="Sélectionner la ligne 2"' in french
    assert '<span class="visually-hidden"> ligne 2</span>' in french
    assert '<span class="visually-hidden"> de la ligne 1</span>' in french


def test_fill_in_renders_as_blocktranslate_would():
    from batches.templatetags.batch_tags import fill_in

    assert fill_in(1234, "for row %(row)s") == "for row 1234"
    assert fill_in("<b>", "%(ms)s ms") == "&lt;b&gt; ms"  # the value escaped
    assert fill_in(3, "l'<i>%(row)s</i>") == "l'<i>3</i>"  # the translation trusted


def test_scores_follow_the_page_language():
    from django.utils import translation

    from evaluation.templatetags.evaluation import score

    with translation.override("en"):
        assert score(0.14) == "0.14"
    with translation.override("fr"):
        assert score(0.14) == "0,14"
    assert score(None) == "—"


@pytest.mark.parametrize(
    "error, kind",
    [
        ("OpenAI: the provider did not answer within 30 s", "timeout"),
        ("Compatible: could not connect to the provider (connection failed or dropped)", "refused"),
        (
            "OpenAI: the provider kept answering 429 Too Many Requests after 5 attempts.",
            "rate_limited",
        ),
        ("OpenAI: the provider answered 503 Service Unavailable", "provider_error"),
        ("OpenAI: the request was refused (400 Bad Request): bad input", "provider_error"),
        ("Unexpected error: ValueError: x", ""),
    ],
)
def test_error_kinds_of_stored_messages(error, kind):
    from batches.errors import error_kind

    assert error_kind(error) == kind


def test_failed_row_shows_a_translated_explanation_beside_the_english_error(owner_client, owner):
    batch = completed(owner, total_items=2, processed_items=1, failed_items=1)
    answered(batch, 0)
    error = "OpenAI: the provider did not answer within 30 s"
    BatchItemFactory(batch=batch, position=1, status="failed", error=error)
    page = owner_client.get(batch.get_absolute_url()).text
    assert error in page and "The provider took too long to answer." in page
    owner_client.cookies["django_language"] = "fr"
    page = owner_client.get(batch.get_absolute_url()).text
    assert error in page  # stored messages stay English
    assert "Le fournisseur a mis trop de temps à répondre." in page
