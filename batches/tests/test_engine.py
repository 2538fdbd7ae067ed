"""The batch engine against the real database and a fake provider at the network boundary."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from batchchat.tests.waiting import wait_until
from batches import engine, runners, services
from batches.engine import claims, slices, status, writer
from batches.engine.caller import CallerThread
from batches.engine.claims import claim_share
from batches.engine.process import finish_slice
from batches.models import Batch, BatchItem
from batches.tests.assertions import (
    assert_counters_match_recount,
    assert_one_interaction_per_done_item,
)
from batches.uploads import ParsedRow
from chats import aio
from chats.models import Interaction

pytestmark = pytest.mark.django_db(transaction=True)


def test_slice_answers_every_row_once_and_completes(fake_ai, make_batch):
    batch = make_batch(12)

    result = engine.process_for_duration(batch_id=batch.pk, seconds=30, concurrency=4)

    assert (result.done, result.failed, result.remaining) == (12, 0, 0)
    assert result.status == Batch.Status.COMPLETED
    batch.refresh_from_db()
    assert batch.started_at and batch.finished_at
    assert set(batch.items.values_list("status", flat=True)) == {BatchItem.Status.DONE}
    assert_one_interaction_per_done_item(batch)
    assert_counters_match_recount(batch)
    assert len(fake_ai.requests) == 12
    answer = batch.items.get(position=3).interaction.answer
    assert "Question 3?" in answer


def test_deadline_stops_taking_rows_and_the_next_slice_resumes(fake_ai, make_batch):
    fake_ai.latency = 0.2
    batch = make_batch(10)

    first = engine.process_for_duration(batch_id=batch.pk, seconds=0.1, concurrency=2)

    # Rows already claimed at the deadline are finished, no new ones are taken.
    assert first.done <= 4
    assert first.remaining == 10 - first.done
    assert first.status == Batch.Status.PROCESSING
    assert not batch.items.filter(status=BatchItem.Status.RUNNING).exists()
    assert_counters_match_recount(batch)

    second = engine.process_for_duration(batch_id=batch.pk, seconds=30, concurrency=5)
    assert second.done == 10 - first.done
    assert second.status == Batch.Status.COMPLETED
    assert_one_interaction_per_done_item(batch)


def test_multi_turn_chat_rows_run_in_order_with_history(fake_ai, make_batch):
    rows = [
        ParsedRow(question=f"Turn {i}", chat_key="conversation-a" if i % 2 == 0 else "", columns={})
        for i in range(6)
    ]
    batch = make_batch(rows=rows)

    engine.process_for_duration(batch_id=batch.pk, seconds=30, concurrency=6)

    shared = batch.items.filter(position__in=[0, 2, 4]).order_by("position")
    chat_ids = {item.chat_id for item in shared}
    assert len(chat_ids) == 1
    turns = Interaction.objects.filter(chat_id=chat_ids.pop()).order_by("position")
    assert [t.question for t in turns] == ["Turn 0", "Turn 2", "Turn 4"]
    assert [item.interaction.position for item in shared] == [0, 1, 2]
    # The third turn was asked with the first two as history.
    third_request = next(
        r for r in fake_ai.requests if r.body["messages"][-1]["content"].endswith("Turn 4")
    )
    user_turns = [m["content"] for m in third_request.body["messages"] if m["role"] == "user"]
    assert len(user_turns) == 3


def test_concurrent_callers_never_complete_a_row_twice(fake_ai, make_batch):
    fake_ai.latency = 0.02
    batch = make_batch(40)
    results = []

    def call():
        try:
            results.append(
                engine.process_for_duration(batch_id=batch.pk, seconds=30, concurrency=4)
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(r.done for r in results) == 40
    assert_one_interaction_per_done_item(batch)
    assert_counters_match_recount(batch)
    assert len(fake_ai.requests) == 40
    per_chat = Interaction.objects.filter(chat__batch_items__batch=batch).values("chat")
    assert all(row["n"] == 1 for row in per_chat.annotate(n=Count("id")))


def test_expired_lease_of_a_dead_worker_is_taken_over(fake_ai, make_batch):
    batch = make_batch(3)
    services.start_batch(batch=batch)
    # A worker claimed row 1 and died: its lease expired a moment ago.
    BatchItem.objects.filter(batch=batch, position=1).update(
        status=BatchItem.Status.RUNNING,
        lease_owner="dead-host:1:abc",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
        attempts=1,
    )
    # Row 2 is held by a live worker elsewhere: not ours to take.
    BatchItem.objects.filter(batch=batch, position=2).update(
        status=BatchItem.Status.RUNNING,
        lease_owner="live-host:2:def",
        lease_expires_at=timezone.now() + timedelta(minutes=5),
    )

    result = engine.process_for_duration(batch_id=batch.pk, seconds=30, concurrency=2)

    assert result.done == 2
    assert result.remaining == 1
    assert result.status == Batch.Status.PROCESSING
    taken_over = batch.items.get(position=1)
    assert taken_over.status == BatchItem.Status.DONE
    assert taken_over.attempts == 2
    assert batch.items.get(position=2).status == BatchItem.Status.RUNNING


def test_a_result_whose_lease_was_lost_is_dropped(fake_ai, make_batch, monkeypatch):
    batch = make_batch(1)
    item = batch.items.get()
    original = slices.answer

    def steal():
        try:
            BatchItem.objects.filter(pk=item.pk).update(lease_owner="thief")
        finally:
            connection.close()

    async def steal_then_answer(turn, **kwargs):
        # Another worker takes the row over while we are waiting for the provider.
        await asyncio.to_thread(steal)
        return await original(turn, **kwargs)

    monkeypatch.setattr(slices, "answer", steal_then_answer)

    result = engine.process_for_duration(batch_id=batch.pk, seconds=30, concurrency=1)

    assert result.done == 0
    item.refresh_from_db()
    assert item.status == BatchItem.Status.RUNNING and item.lease_owner == "thief"
    assert item.interaction is None
    # The interaction was never stored: nothing to double count.
    assert not Interaction.objects.filter(chat=item.chat).exists()
    assert_counters_match_recount(batch)


def test_unconfigured_provider_fails_the_batch_and_burns_no_rows(settings, make_batch, fake_ai):
    batch = make_batch(4)
    settings.COMPATIBLE_BASE_URL = ""

    result = engine.process_for_duration(batch_id=batch.pk, seconds=30, concurrency=2)

    batch.refresh_from_db()
    assert result.status == Batch.Status.FAILED
    assert "COMPATIBLE_BASE_URL" in batch.error
    assert set(batch.items.values_list("status", flat=True)) == {BatchItem.Status.PENDING}
    assert set(batch.items.values_list("attempts", flat=True)) == {0}
    assert fake_ai.requests == []
    with pytest.raises(services.BatchStateError):
        engine.process_for_duration(batch_id=batch.pk, seconds=1)

    # Fixed configuration: starting again resumes the same rows.
    settings.COMPATIBLE_BASE_URL = fake_ai.openai_base_url
    services.start_batch(batch=batch)
    result = engine.process_for_duration(batch_id=batch.pk, seconds=30, concurrency=2)
    assert (result.status, result.done) == (Batch.Status.COMPLETED, 4)


def test_provider_faults_fail_rows_with_reasons_and_retry_completes_them(
    fake_ai, make_batch, settings
):
    fake_ai.fault_rate = 0.3
    fake_ai.fault_kinds = ("429", "500", "hang")
    fake_ai.hang_seconds = 3
    settings.PROVIDER_TIMEOUT = 0.5
    settings.PROVIDER_MAX_ATTEMPTS = 1
    settings.BATCH_ROW_MAX_ATTEMPTS = 1  # no resting: a fault fails its row at once
    batch = make_batch(30)

    result = engine.process_for_duration(batch_id=batch.pk, seconds=60, concurrency=8)

    batch.refresh_from_db()
    assert result.status == Batch.Status.COMPLETED
    assert result.done + result.failed == 30
    assert result.failed > 0
    failed = list(batch.items.filter(status=BatchItem.Status.FAILED))
    assert all(item.error for item in failed)
    assert_counters_match_recount(batch)
    assert_one_interaction_per_done_item(batch)

    fake_ai.fault_rate = 0.0
    services.retry_failed(batch=batch)
    batch.refresh_from_db()
    assert batch.status == Batch.Status.QUEUED
    assert batch.failed_items == 0
    retried = engine.process_for_duration(batch_id=batch.pk, seconds=60, concurrency=8)
    assert retried.done == len(failed)
    assert retried.status == Batch.Status.COMPLETED
    assert_one_interaction_per_done_item(batch)
    assert_counters_match_recount(batch)


def test_rate_limited_rows_rest_and_are_answered_later(fake_ai, make_batch, settings):
    settings.PROVIDER_MAX_ATTEMPTS = 1  # the pipeline gives up at once: the engine waits
    settings.BATCH_ROW_MAX_ATTEMPTS = 3
    fake_ai.fail_next(2, "429", retry_after=0.3)
    batch = make_batch(1)
    started = time.monotonic()

    result = engine.process_for_duration(batch_id=batch.pk, seconds=10, concurrency=2)

    assert (result.done, result.failed, result.status) == (1, 0, Batch.Status.COMPLETED)
    assert time.monotonic() - started >= 0.6  # waited out Retry-After twice
    item = batch.items.get()
    assert (item.attempts, item.error) == (3, "")
    assert len(fake_ai.requests) == 3


def test_a_row_fails_after_its_attempts_with_the_reason(fake_ai, make_batch, settings):
    settings.PROVIDER_MAX_ATTEMPTS = 1
    settings.BATCH_ROW_MAX_ATTEMPTS = 2
    fake_ai.fail_next(5, "429", retry_after=0.1)
    batch = make_batch(1)

    result = engine.process_for_duration(batch_id=batch.pk, seconds=10, concurrency=1)

    item = batch.items.get()
    assert (result.failed, item.status, item.attempts) == (1, BatchItem.Status.FAILED, 2)
    assert "429" in item.error
    assert len(fake_ai.requests) == 2


@pytest.mark.slow  # the fake's 30 s Retry-After pauses the key that long
def test_a_resting_row_waits_for_the_next_slice(fake_ai, make_batch, settings):
    settings.PROVIDER_MAX_ATTEMPTS = 1
    fake_ai.fail_next(1, "429", retry_after=30)
    batch = make_batch(1)

    first = engine.process_for_duration(batch_id=batch.pk, seconds=0.5, concurrency=1)

    assert (first.done, first.remaining, first.status) == (0, 1, Batch.Status.PROCESSING)
    item = batch.items.get()
    assert item.status == BatchItem.Status.PENDING and "429" in item.error
    assert item.resting_until > timezone.now() + timedelta(seconds=20)
    # Too early: the row is still resting, nothing is asked.
    engine.process_for_duration(batch_id=batch.pk, seconds=0.1, concurrency=1)
    assert len(fake_ai.requests) == 1
    # Once its rest is over, the next slice answers it.
    BatchItem.objects.filter(pk=item.pk).update(resting_until=timezone.now())
    second = engine.process_for_duration(batch_id=batch.pk, seconds=5, concurrency=1)
    assert (second.done, second.status) == (1, Batch.Status.COMPLETED)


def test_cancel_stops_new_provider_calls_and_records_rows_in_flight(fake_ai, make_batch):
    fake_ai.latency = 0.3
    batch = make_batch(40)
    results = []

    def run():
        try:
            results.append(
                engine.process_for_duration(batch_id=batch.pk, seconds=60, concurrency=4)
            )
        finally:
            connection.close()

    worker = threading.Thread(target=run)
    worker.start()
    wait_until(
        lambda: batch.items.filter(status=BatchItem.Status.DONE).exists(),
        timeout=10,
        interval=0.02,
        message="no row was answered",
    )

    services.cancel_batch(batch=batch)
    requests_at_cancel = len(fake_ai.requests)
    in_flight_at_cancel = batch.items.filter(status=BatchItem.Status.RUNNING).count()
    worker.join(timeout=30)

    batch.refresh_from_db()
    assert batch.status == Batch.Status.CANCELLED
    # Only rows already in flight may still reach the provider.
    assert len(fake_ai.requests) - requests_at_cancel <= in_flight_at_cancel
    assert not batch.items.filter(status=BatchItem.Status.PENDING).exists()
    assert not batch.items.filter(status=BatchItem.Status.RUNNING).exists()
    assert batch.items.filter(status=BatchItem.Status.CANCELLED).count() > 0
    assert_counters_match_recount(batch)
    assert_one_interaction_per_done_item(batch)
    with pytest.raises(services.BatchStateError):
        engine.process_for_duration(batch_id=batch.pk, seconds=1)

    # Resume: cancelled rows run again, done rows are not repeated.
    done_before = batch.processed_items
    services.start_batch(batch=batch)
    result = engine.process_for_duration(batch_id=batch.pk, seconds=60, concurrency=8)
    assert result.done == 40 - done_before
    assert result.status == Batch.Status.COMPLETED
    assert len(fake_ai.requests) == 40


def test_no_provider_call_starts_after_cancel_returns(fake_ai, make_batch, monkeypatch):
    """Rows start back to back (one in flight, short calls): after cancel_batch returns,
    at most the one call already under way reaches the provider. The slice reads the
    status in the background (here once a second), so cancel_batch waits out how stale
    a read may be. Rows are claimed 50 at a time: claimed rows do not see the cancel."""
    monkeypatch.setattr(claims, "CLAIM_MIN", 50)
    monkeypatch.setattr(status, "STATUS_READ_SECONDS", 1.0)
    monkeypatch.setattr(status, "STATUS_FENCE_SECONDS", 1.5)
    fake_ai.latency = 0.01
    batch = make_batch(300)
    worker = threading.Thread(
        target=lambda: (
            engine.process_for_duration(batch_id=batch.pk, seconds=60, concurrency=1),
            connection.close(),
        )
    )
    worker.start()
    wait_until(
        lambda: len(fake_ai.requests) >= 5,
        timeout=10,
        interval=0.01,
        message="fewer than 5 provider calls",
    )
    services.cancel_batch(batch=batch)
    requests_at_cancel = len(fake_ai.requests)
    worker.join(timeout=30)
    assert len(fake_ai.requests) - requests_at_cancel <= 1
    batch.refresh_from_db()
    assert batch.status == Batch.Status.CANCELLED
    assert_counters_match_recount(batch)


def test_state_errors(fake_ai, make_batch):
    batch = make_batch(2)
    with pytest.raises(services.BatchStateError):
        services.retry_failed(batch=batch)
    engine.process_for_duration(batch_id=batch.pk, seconds=30)
    batch.refresh_from_db()
    assert batch.status == Batch.Status.COMPLETED
    with pytest.raises(services.BatchStateError):
        services.cancel_batch(batch=batch)
    with pytest.raises(services.BatchStateError):
        services.start_batch(batch=batch)
    again = engine.process_for_duration(batch_id=batch.pk, seconds=30)
    assert (again.done, again.remaining, again.status) == (0, 0, Batch.Status.COMPLETED)


def test_delete_batch_removes_items_and_chats(fake_ai, make_batch):
    batch = make_batch(3)
    engine.process_for_duration(batch_id=batch.pk, seconds=30)
    chat_ids = list(batch.items.values_list("chat_id", flat=True))

    services.delete_batch(batch=batch)

    assert not Batch.objects.filter(pk=batch.pk).exists()
    assert not BatchItem.objects.filter(chat_id__in=chat_ids).exists()
    assert not Interaction.objects.filter(chat_id__in=chat_ids).exists()


def test_stalled_batches_are_found_only_without_live_leases(fake_ai, make_batch):
    stalled = make_batch(2)
    busy = make_batch(2)
    fresh = make_batch(2)
    long_ago = timezone.now() - timedelta(minutes=10)
    for batch in (stalled, busy, fresh):
        services.start_batch(batch=batch)
    Batch.objects.filter(pk__in=[stalled.pk, busy.pk]).update(
        status=Batch.Status.PROCESSING, updated_at=long_ago
    )
    BatchItem.objects.filter(batch=busy, position=0).update(
        status=BatchItem.Status.RUNNING,
        lease_owner="x",
        lease_expires_at=timezone.now() + timedelta(minutes=1),
    )

    assert services.stalled_batch_ids(idle_seconds=60) == [stalled.pk]


def test_deleting_a_batch_mid_slice_ends_the_slice_cleanly(fake_ai, make_batch):
    fake_ai.latency = 0.2
    batch = make_batch(20)
    errors = []

    def run():
        try:
            engine.process_for_duration(batch_id=batch.pk, seconds=30, concurrency=2)
        except services.BatchStateError as exc:
            errors.append(str(exc))
        finally:
            connection.close()

    worker = threading.Thread(target=run)
    worker.start()
    # Mid-slice: rows are being answered, most are still to come (20 rows, 2 at a time).
    wait_until(
        lambda: batch.items.filter(status=BatchItem.Status.DONE).exists(),
        timeout=10,
        interval=0.02,
        message="the slice answered no row",
    )
    services.delete_batch(batch=batch)
    worker.join(timeout=30)

    assert not worker.is_alive()
    assert errors == ["This batch was deleted while it was being processed."]
    assert not BatchItem.objects.filter(batch_id=batch.pk).exists()


def test_an_active_batch_with_every_row_finished_is_completed_by_the_next_slice(
    fake_ai, make_batch
):
    # A runner died after recording the last row, before completing the batch.
    batch = make_batch(2)
    engine.process_for_duration(batch_id=batch.pk, seconds=30)
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.PROCESSING, finished_at=None)

    assert batch.pk in services.stalled_batch_ids(idle_seconds=0)
    result = engine.process_for_duration(batch_id=batch.pk, seconds=1)

    assert (result.status, result.done, result.remaining) == (Batch.Status.COMPLETED, 0, 0)
    assert len(fake_ai.requests) == 2


def test_a_failed_turn_fails_its_later_turns_and_retry_runs_them_in_order(
    fake_ai, make_batch, settings
):
    settings.PROVIDER_MAX_ATTEMPTS = 1
    rows = [ParsedRow(question=f"Turn {i}", chat_key="c", columns={}) for i in range(3)]
    batch = make_batch(rows=rows)
    fake_ai.fail_next(1, "400")

    result = engine.process_for_duration(batch_id=batch.pk, seconds=30, concurrency=3)

    assert (result.failed, result.status) == (3, Batch.Status.COMPLETED)
    later = batch.items.get(position=2)
    assert "earlier turn of this conversation (row 1)" in later.error
    assert_counters_match_recount(batch)

    services.retry_failed(batch=batch)
    engine.process_for_duration(batch_id=batch.pk, seconds=30, concurrency=3)

    chat = batch.items.get(position=0).chat
    turns = list(chat.interactions.order_by("position").values_list("question", flat=True))
    assert turns == ["Turn 0", "Turn 1", "Turn 2"]
    assert_counters_match_recount(batch)


def test_retry_gives_rows_their_attempts_back(fake_ai, make_batch, settings):
    settings.PROVIDER_MAX_ATTEMPTS = 1
    settings.BATCH_ROW_MAX_ATTEMPTS = 1
    fake_ai.fail_next(1, "429", retry_after=0.01)
    batch = make_batch(1)
    engine.process_for_duration(batch_id=batch.pk, seconds=30)
    assert batch.items.get().attempts == 1

    services.retry_failed(batch=batch)

    assert batch.items.get().attempts == 0


def test_starting_an_active_batch_enqueues_only_when_nobody_works_on_it(
    fake_ai, make_batch, settings, monkeypatch
):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/15"
    enqueued = []
    monkeypatch.setitem(runners.schedulers, "celery", enqueued.append)
    batch = make_batch(2)

    services.start_batch(batch=batch)
    assert enqueued == [batch.pk]
    BatchItem.objects.filter(batch=batch, position=0).update(
        status=BatchItem.Status.RUNNING,
        lease_owner="live",
        lease_expires_at=timezone.now() + timedelta(minutes=1),
    )
    services.start_batch(batch=batch)
    services.start_batch(batch=batch)
    assert enqueued == [batch.pk]  # a worker holds a lease: no extra chains

    BatchItem.objects.filter(batch=batch).update(
        status=BatchItem.Status.PENDING, lease_owner="", lease_expires_at=None
    )
    services.start_batch(batch=batch)
    assert enqueued == [batch.pk, batch.pk]  # nobody on it: its chains were lost


def test_rows_given_back_after_a_cancel_end_cancelled_and_a_resume_runs_them(fake_ai, make_batch):
    batch = make_batch(4)
    services.start_batch(batch=batch)
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.PROCESSING)
    work = slices.Slice(
        batch_id=batch.pk,
        deadline=time.monotonic() + 30,
        concurrency=4,
        multi_turn=False,
        db=CallerThread(),
    )
    claimed = []
    while more := work.claims.claim():  # near the end a claim takes half of what is left
        claimed += more
    assert len(claimed) == 4

    services.cancel_batch(batch=batch)
    # The slice starts with these rows claimed: the first sees the cancel before calling
    # the provider, the others are given back unstarted.
    work.claims.queue.extend(claimed)
    work.db.serve(asyncio.run_coroutine_threadsafe(work.run(), aio.loop()))
    result = finish_slice(batch.pk, done=work.done, failed=work.failed)

    assert result.status == Batch.Status.CANCELLED
    assert set(batch.items.values_list("status", flat=True)) == {BatchItem.Status.CANCELLED}
    assert set(batch.items.values_list("attempts", flat=True)) == {0}
    assert fake_ai.requests == []
    services.start_batch(batch=batch)
    assert engine.process_for_duration(batch_id=batch.pk, seconds=30).done == 4


def test_a_claim_near_the_end_leaves_half_of_the_rows_to_other_workers(fake_ai, make_batch):
    """Fewer than two claims' worth left: a claim takes half, so another worker on the
    batch is not idle while this slice holds the last rows unstarted."""
    batch = make_batch(10)
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.PROCESSING)

    def new_slice() -> slices.Slice:
        return slices.Slice(
            batch_id=batch.pk,
            deadline=time.monotonic() + 30,
            concurrency=8,
            multi_turn=False,
            db=CallerThread(),
        )

    first, second = new_slice(), new_slice()

    assert len(first.claims.claim()) == 5
    assert first.claims.left_behind
    assert len(second.claims.claim()) == 3
    assert batch.items.filter(status=BatchItem.Status.PENDING).count() == 2
    assert claim_share(16, 8) == 8
    assert claim_share(1, 8) == 1


def test_no_new_row_starts_while_the_writer_is_behind(fake_ai, make_batch, monkeypatch):
    """Answers come faster than a slow writer records them: new rows wait once
    BACKLOG_ROWS results are waiting, so memory stays bounded; every row is recorded."""
    monkeypatch.setattr(writer, "BACKLOG_ROWS", 5)
    monkeypatch.setattr(writer, "GROUP_ROWS_MAX", 3)
    batch = make_batch(40)
    waiting = []
    write_group = writer.Writer.write_group

    def slow_write_group(self, group):
        waiting.append(len(self.pending))
        time.sleep(0.05)
        return write_group(self, group)

    monkeypatch.setattr(writer.Writer, "write_group", slow_write_group)
    result = engine.process_for_duration(batch_id=batch.pk, seconds=60, concurrency=4)
    assert result.done == 40 and result.status == Batch.Status.COMPLETED
    # At most the backlog plus the rows already in flight when it was reached.
    assert max(waiting) <= 5 + 4
    assert_counters_match_recount(batch)
