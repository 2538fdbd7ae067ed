"""retry_items: retry one row or chosen rows of a batch (service and page action)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from batches.models import Batch, BatchItem
from batches.services import BatchStateError, retry_items
from batches.tests.factories import BatchFactory, BatchItemFactory
from chats.tests.factories import ChatFactory

pytestmark = pytest.mark.django_db


def finished_batch(owner, statuses, **kwargs):
    batch = BatchFactory(
        uploader=owner,
        status=kwargs.pop("status", Batch.Status.COMPLETED),
        total_items=len(statuses),
        **kwargs,
    )
    items = [
        BatchItemFactory(
            batch=batch, position=i, status=status, error="boom" * (status == "failed")
        )
        for i, status in enumerate(statuses)
    ]
    return batch, items


def test_retry_one_failed_row_queues_it_and_the_batch(owner):
    batch, items = finished_batch(owner, ["done", "failed", "failed"])
    assert retry_items(batch=batch, item_ids=[items[1].pk]) == 1
    batch.refresh_from_db()
    statuses = list(batch.items.order_by("position").values_list("status", "error"))
    assert statuses == [("done", ""), ("pending", ""), ("failed", "boom")]
    assert batch.status == Batch.Status.QUEUED
    assert batch.finished_at is None
    assert batch.failed_items == 1  # recounted


def test_done_pending_and_foreign_rows_are_not_retried(owner, other_user):
    batch, items = finished_batch(owner, ["done", "failed"])
    foreign, foreign_items = finished_batch(other_user, ["failed"])
    with pytest.raises(BatchStateError):
        retry_items(batch=batch, item_ids=[items[0].pk, foreign_items[0].pk])
    assert BatchItem.objects.get(pk=foreign_items[0].pk).status == "failed"
    assert BatchItem.objects.get(pk=items[0].pk).status == "done"
    batch.refresh_from_db()
    assert batch.status == Batch.Status.COMPLETED


def test_a_multi_turn_chat_is_retried_whole_in_order(owner):
    batch = BatchFactory(uploader=owner, status=Batch.Status.COMPLETED, total_items=3)
    chat = ChatFactory(uploader=owner)
    first = BatchItemFactory(batch=batch, chat=chat, position=0, status="failed")
    second = BatchItemFactory(batch=batch, chat=chat, position=1, status="failed")
    other = BatchItemFactory(batch=batch, position=2, status="failed")
    assert retry_items(batch=batch, item_ids=[second.pk]) == 2
    assert BatchItem.objects.get(pk=first.pk).status == "pending"
    assert BatchItem.objects.get(pk=second.pk).status == "pending"
    assert BatchItem.objects.get(pk=other.pk).status == "failed"


def test_cancelled_rows_of_a_cancelled_batch_can_be_retried(owner):
    batch, items = finished_batch(owner, ["done", "cancelled", "cancelled"], status="cancelled")
    assert retry_items(batch=batch, item_ids=[items[1].pk, items[2].pk]) == 2
    batch.refresh_from_db()
    assert batch.status == Batch.Status.QUEUED


def test_page_retries_one_row_and_returns_to_next(owner_client, owner):
    batch, items = finished_batch(owner, ["failed", "failed"])
    next_url = batch.get_absolute_url() + "?status=failed"
    response = owner_client.post(
        reverse("batches:retry_items", args=[batch.pk]),
        {"item": items[0].pk, "items": [items[1].pk], "next": next_url},
    )
    assert response.status_code == 302 and response["Location"] == next_url
    # The single row's button wins over the ticked boxes.
    assert [i.status for i in batch.items.order_by("position")] == ["pending", "failed"]


def test_page_retries_selected_rows(owner_client, owner):
    batch, items = finished_batch(owner, ["failed", "failed", "done"])
    owner_client.post(
        reverse("batches:retry_items", args=[batch.pk]), {"items": [items[0].pk, items[1].pk]}
    )
    assert [i.status for i in batch.items.order_by("position")] == ["pending", "pending", "done"]
    page = owner_client.get(batch.get_absolute_url()).content.decode()
    assert "2 rows of" in page and "are queued again" in page


def test_page_without_a_choice_says_so(owner_client, owner):
    batch, _items = finished_batch(owner, ["failed"])
    response = owner_client.post(reverse("batches:retry_items", args=[batch.pk]), follow=True)
    assert "Choose at least one row to retry." in response.content.decode()


def test_page_retry_of_another_users_batch_is_404(client, owner, other_user):
    batch, items = finished_batch(owner, ["failed"])
    client.force_login(other_user)
    response = client.post(reverse("batches:retry_items", args=[batch.pk]), {"item": items[0].pk})
    assert response.status_code == 404
    assert BatchItem.objects.get(pk=items[0].pk).status == "failed"


def test_page_retry_needs_post(owner_client, owner):
    batch, _items = finished_batch(owner, ["failed"])
    assert owner_client.get(reverse("batches:retry_items", args=[batch.pk])).status_code == 405
