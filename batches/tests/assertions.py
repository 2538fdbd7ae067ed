"""Checks shared by the engine tests (in-process, other processes, workers, Celery): the
batch's counters and interactions agree with its rows."""

from __future__ import annotations

from batches.models import Batch, BatchItem
from chats.models import Interaction


def assert_counters_match_recount(batch: Batch) -> None:
    batch.refresh_from_db()
    items = batch.items
    assert batch.total_items == items.count()
    assert batch.processed_items == items.filter(status=BatchItem.Status.DONE).count()
    assert batch.failed_items == items.filter(status=BatchItem.Status.FAILED).count()
    first_open = items.exclude(status__in=BatchItem.FINISHED_STATUSES).order_by("position").first()
    expected_index = batch.total_items if first_open is None else first_open.position
    assert batch.last_processed_index == expected_index


def assert_one_interaction_per_done_item(batch: Batch) -> None:
    for item in batch.items.select_related("interaction"):
        if item.status == BatchItem.Status.DONE:
            assert item.interaction is not None
            assert item.interaction.chat_id == item.chat_id
            assert item.interaction.question == item.question
        else:
            assert item.interaction is None
    interactions = Interaction.objects.filter(chat__batch_items__batch=batch).distinct()
    assert interactions.count() == batch.items.filter(status=BatchItem.Status.DONE).count()
