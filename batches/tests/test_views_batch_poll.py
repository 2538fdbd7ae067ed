"""The batch page's one poll (batch_progress with the page's tokens) and the list's poll:
204 when nothing changed, the progress section alone when only it changed, the rows'
counts or the whole rows section when they changed, the grades only with the rows; a
fixed, small number of queries whatever the size of the batch (issue 28, item 5)."""

from __future__ import annotations

import html
import re

import pytest
from django.core.cache import cache
from django.db import connection
from django.db.models import F
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from batches.models import Batch, BatchItem
from batches.tests.view_helpers import HX, LIST_URL, real_batch
from chats.tests.factories import InteractionFactory

pytestmark = pytest.mark.django_db

ROWS_SECTION = 'id="batch-rows-section" hx-swap-oob="true"'
ROW_FILTERS = 'id="batch-row-filters" hx-swap-oob="true"'
GRADES = 'id="batch-grades" hx-swap-oob="true"'


def poll_url(body: str, element: str = "batch-progress") -> str:
    """The poll URL an element of a page (or of a poll's answer) carries."""
    found = re.search(rf'id="{element}"[^>]*hx-get="([^"]+)"', body)
    assert found, f"#{element} does not poll"
    return html.unescape(found.group(1))


def running(owner, n: int = 3) -> Batch:
    batch = real_batch(owner, n)
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.PROCESSING)
    batch.refresh_from_db()
    return batch


def finish_row(batch: Batch, position: int) -> None:
    """What the engine's writer does for a row answered: the row, then the counters."""
    now = timezone.now()
    BatchItem.objects.filter(batch=batch, position=position).update(
        status=BatchItem.Status.DONE, finished_at=now
    )
    Batch.objects.filter(pk=batch.pk).update(
        processed_items=F("processed_items") + 1, updated_at=now
    )


def test_the_poll_answers_204_while_nothing_changed(owner_client, owner):
    batch = running(owner)
    url = poll_url(owner_client.get(batch.get_absolute_url()).text)
    for _ in range(2):
        response = owner_client.get(url, **HX)
        assert response.status_code == 204
        assert response.content == b""


def test_a_finished_row_on_the_page_redraws_the_rows_and_the_grades(owner_client, owner):
    batch = running(owner)
    url = poll_url(owner_client.get(batch.get_absolute_url()).text)
    finish_row(batch, 0)
    response = owner_client.get(url, **HX)
    assert response.status_code == 200
    body = response.text
    assert body.lstrip().startswith('<section id="batch-progress"')
    assert ROWS_SECTION in body and "Done (1)" in body and "Pending (2)" in body
    assert '<tr id="row-0" data-status="done">' in body
    assert GRADES in body
    # The new section carries the new state: asked again, nothing changed.
    assert owner_client.get(poll_url(body), **HX).status_code == 204


def test_a_row_finished_off_the_page_redraws_only_the_counts(owner_client, owner):
    batch = running(owner, 60)
    page = owner_client.get(batch.get_absolute_url() + "?page=2").text
    url = poll_url(page)
    assert "page=2" in url  # the poll keeps the table's state
    finish_row(batch, 0)  # on page 1
    body = owner_client.get(url, **HX).text
    assert ROW_FILTERS in body and "Done (1)" in body
    assert ROWS_SECTION not in body and "<table" not in body
    assert GRADES in body


def test_a_change_of_the_progress_alone_leaves_rows_and_grades_out(owner_client, owner):
    batch = running(owner)
    url = poll_url(owner_client.get(batch.get_absolute_url()).text)
    # The engine published a rate limit: the progress section says so; no row moved.
    Batch.objects.filter(pk=batch.pk).update(throttle={"limit": 4, "concurrency": 8})
    response = owner_client.get(url, **HX)
    assert response.status_code == 200
    body = response.text
    assert 'id="batch-progress"' in body
    assert "batch-rows-section" not in body and "batch-row-filters" not in body
    assert GRADES not in body


def test_the_final_poll_swaps_in_everything_and_stops(owner_client, owner):
    batch = running(owner)
    url = poll_url(owner_client.get(batch.get_absolute_url()).text)
    BatchItem.objects.filter(batch=batch).update(status=BatchItem.Status.DONE)
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.COMPLETED, processed_items=3)
    response = owner_client.get(url, **HX)
    assert response.status_code == 286
    body = response.text
    assert "data-poll" not in body
    assert ROWS_SECTION in body and "Done (3)" in body
    assert 'id="batch-evaluation"' in body  # evaluation's block, out of band


def poll_queries(client, url: str) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as captured:
        status = client.get(url, **HX).status_code
    return status, len(captured)


def test_queries_per_poll_are_few_and_do_not_grow_with_the_batch(owner_client, owner):
    counts = []
    for size in (3, 120):
        batch = running(owner, size)
        url = poll_url(owner_client.get(batch.get_absolute_url()).text)
        unchanged = poll_queries(owner_client, url)
        finish_row(batch, 0)
        changed = poll_queries(owner_client, url)
        finish_row(batch, 1)
        counts.append((unchanged, changed))
    (small_same, small_changed), (big_same, big_changed) = counts
    assert small_same == big_same == (204, 3)  # session, user, batch
    assert small_changed == big_changed
    assert small_changed[0] == 200 and small_changed[1] <= 10


def test_the_list_poll_answers_204_until_a_batch_on_it_changes(owner_client, owner):
    batch = running(owner)
    url = poll_url(owner_client.get(LIST_URL).text, "batch-rows")
    assert owner_client.get(url, **HX).status_code == 204
    with CaptureQueriesContext(connection) as captured:
        owner_client.get(url, **HX)
    assert len(captured) <= 5  # session, user, count, page (and no grades)
    finish_row(batch, 0)
    response = owner_client.get(url, **HX)
    assert response.status_code == 200
    assert f'id="batch-{batch.pk}"' in response.text
    assert owner_client.get(poll_url(response.text, "batch-rows"), **HX).status_code == 204


def test_the_pages_and_polls_watching_a_running_batch_share_its_grade_summary(owner_client, owner):
    batch = running(owner)
    url = poll_url(owner_client.get(batch.get_absolute_url()).text)
    cache.clear()  # the page's summary, shared too: the first poll reads it anew
    other_tab = Client()
    other_tab.force_login(owner)
    finish_row(batch, 0)
    first = poll_queries(owner_client, url)
    finish_row(batch, 1)  # another change: the other tab's poll sees a new token
    second = poll_queries(other_tab, url)
    assert first[0] == second[0] == 200
    assert second[1] == first[1] - 1  # no second grade summary
    assert GRADES in other_tab.get(url, **HX).text


def test_a_finished_batch_reads_its_grade_summary_anew(owner_client, owner):
    batch = running(owner)
    url = poll_url(owner_client.get(batch.get_absolute_url()).text)
    BatchItem.objects.filter(batch=batch).update(status=BatchItem.Status.DONE)
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.COMPLETED, processed_items=3)
    with CaptureQueriesContext(connection) as captured:
        assert owner_client.get(url, **HX).status_code == 286
    assert any("citation_checked" in query["sql"] for query in captured)


def test_the_kept_rows_table_follows_its_rows_and_its_viewer(
    owner_client, owner, django_user_model
):
    """The rendered rows are kept under their state (detail.html, table-body): a row
    answered, retried or reviewed since, and who may retry, each draw it anew."""
    from evaluation.review import save_review

    batch = running(owner)
    url = batch.get_absolute_url()
    assert '<tr id="row-0" data-status="pending">' in owner_client.get(url).text
    finish_row(batch, 0)
    assert '<tr id="row-0" data-status="done">' in owner_client.get(url).text
    BatchItem.objects.filter(batch=batch, position=1).update(
        status=BatchItem.Status.FAILED, error="timeout"
    )
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.COMPLETED)
    owner_page = owner_client.get(url).text
    assert 'class="secondary outline retry-one"' in owner_page  # the owner may retry
    staff = Client()
    staff.force_login(django_user_model.objects.create_user("reader", is_staff=True))
    assert "retry-one" not in staff.get(url).text  # staff only read another's batch
    item = batch.items.get(position=0)
    item.interaction = InteractionFactory(chat=item.chat, position=0, answer="An answer")
    item.save()
    assert "review-note" not in owner_client.get(url).text
    save_review(item=item, verdict="incorrect", notes="", user=owner)
    assert 'data-review="incorrect"' in owner_client.get(url).text


def test_the_rows_counts_are_read_once_at_the_same_counters(owner_client, owner):
    """The status tabs' and guard outcomes' counts move with the rows' counters: everyone
    watching a running batch at the same counters shares one reading; new counters, new
    counts."""
    batch = running(owner, 60)
    url = poll_url(owner_client.get(batch.get_absolute_url() + "?page=2").text)
    finish_row(batch, 0)
    assert "Done (1)" in owner_client.get(url, **HX).text  # read, and kept
    other = Client()
    other.force_login(owner)
    with CaptureQueriesContext(connection) as captured:
        body = other.get(url, **HX).text  # another viewer, the same counters
    assert "Done (1)" in body and "Pending (59)" in body
    counted = [q["sql"] for q in captured if "GROUP BY" in q["sql"]]
    assert counted == []
    finish_row(batch, 1)
    assert "Done (2)" in other.get(url, **HX).text
