"""The Celery tasks called in-process, each twice: a message may be delivered again (acks_late
after a lost worker, beat and a user both restarting a batch), and the second run must ask
the provider nothing more and leave the same state."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from batches import services, tasks
from batches.models import Batch, BatchItem
from chats.models import Interaction

pytestmark = pytest.mark.django_db(transaction=True)

BROKER_URL = "redis://127.0.0.1:6379/15"  # selects the Celery runner; nothing is sent


class EnqueuedSlices:
    """Stands in for the slice task where code enqueues it, and records the batch ids."""

    def __init__(self) -> None:
        self.batch_ids: list[int] = []

    def apply_async(self, args=(), kwargs=None, **options) -> None:
        self.batch_ids.append(args[0])

    def delay_on_commit(self, batch_id: int) -> None:
        self.batch_ids.append(batch_id)


@pytest.fixture
def slice_task(monkeypatch):
    """The real slice task, to call; a recorder wherever the code enqueues the next one."""
    task = tasks.process_batch_slice
    monkeypatch.setattr(tasks, "process_batch_slice", EnqueuedSlices())
    return task


@pytest.fixture
def enqueued(slice_task) -> EnqueuedSlices:
    return tasks.process_batch_slice


def state_of(batch: Batch) -> tuple:
    batch.refresh_from_db()
    return (
        batch.status,
        batch.processed_items,
        batch.failed_items,
        batch.last_processed_index,
        list(batch.items.order_by("position").values_list("status", "attempts")),
        Interaction.objects.filter(chat__batch_items__batch=batch).count(),
    )


def test_a_slice_delivered_twice_answers_each_row_once(
    fake_ai, make_batch, settings, slice_task, enqueued
):
    settings.BATCH_SLICE_SECONDS = 30
    batch = services.start_batch(batch=make_batch(5))

    slice_task(batch.pk)
    after_first = state_of(batch)
    slice_task(batch.pk)

    assert after_first[0] == Batch.Status.COMPLETED
    assert after_first[4] == [(BatchItem.Status.DONE, 1)] * 5
    assert state_of(batch) == after_first
    assert len(fake_ai.requests) == 5
    assert enqueued.batch_ids == []  # nothing left: the chain ends


def test_a_slice_for_a_cancelled_or_deleted_batch_ends_the_chain(
    fake_ai, make_batch, slice_task, enqueued
):
    cancelled = services.cancel_batch(batch=services.start_batch(batch=make_batch(3)))
    deleted = make_batch(2)
    services.delete_batch(batch=deleted)
    before = state_of(cancelled)

    for _ in range(2):
        slice_task(cancelled.pk)
        slice_task(deleted.pk)

    assert state_of(cancelled) == before
    assert fake_ai.requests == []
    assert enqueued.batch_ids == []


def test_recovering_twice_restarts_a_stalled_batch_once(fake_ai, make_batch, settings, enqueued):
    settings.CELERY_BROKER_URL = BROKER_URL
    settings.BATCH_PARALLEL_SLICES = 2
    settings.CELERY_BEAT_RECOVER_SECONDS = 60
    stalled = services.start_batch(batch=make_batch(3))
    fresh = services.start_batch(batch=make_batch(3))
    Batch.objects.filter(pk=stalled.pk).update(
        status=Batch.Status.PROCESSING, updated_at=timezone.now() - timedelta(minutes=10)
    )
    enqueued.batch_ids.clear()  # the starts' own chains
    before = state_of(stalled)

    tasks.recover_stalled_batches()
    tasks.recover_stalled_batches()

    assert enqueued.batch_ids == [stalled.pk, stalled.pk]  # BATCH_PARALLEL_SLICES chains
    assert fresh.pk not in enqueued.batch_ids
    assert state_of(stalled)[1:] == before[1:]
    assert fake_ai.requests == []
