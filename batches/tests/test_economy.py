"""Economy mode against a local server speaking the OpenAI files/batches protocol."""

from __future__ import annotations

import pytest

from batches.economy import poll_provider_batches
from batches.events import run_slice
from batches.models import Batch, BatchItem, ProviderBatch, ProviderRequest
from batches.selectors import batch_stats
from batches.services import cancel_batch, create_batch_run
from batches.uploads import ParsedRow
from chats.models import Interaction
from chats.services import ProviderNotConfigured
from chats.tests.fake_batch_servers import FakeBatchServer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def batch_server(settings):
    with FakeBatchServer() as server:
        server.configure(settings)
        settings.ECONOMY_POLL_SECONDS = 0
        yield server


def rows(n: int, *, text: str = "Question {i}?", chat_key=None) -> list[ParsedRow]:
    return [
        ParsedRow(
            question=text.format(i=i),
            columns={"question": text.format(i=i)},
            chat_key=chat_key(i) if chat_key else "",
        )
        for i in range(n)
    ]


def make(
    owner, parsed, *, provider="openai", model="gpt-4o-mini", search_provider="none", **kwargs
) -> Batch:
    return create_batch_run(
        uploader=owner,
        name="Economy",
        rows=parsed,
        ai_provider=provider,
        model=model,
        search_provider=search_provider,
        mode="economy",
        **kwargs,
    )


def drive(batch: Batch, *, slices: int = 50) -> Batch:
    """Run economy slices until the batch is no longer active (bounded)."""
    for _ in range(slices):
        result = run_slice(batch_id=batch.pk, seconds=30, runner="test")
        if not result.should_continue:
            break
    batch.refresh_from_db()
    return batch


def test_economy_batch_of_2000_rows_is_answered_once_with_no_realtime_call(
    owner, batch_server, settings
):
    settings.ECONOMY_MAX_REQUESTS = 500  # four provider batches
    settings.AI_PRICES = {"openai:gpt-4o-mini": (0.15, 0.60)}
    batch = make(owner, rows(2000))

    batch = drive(batch)

    assert batch.status == Batch.Status.COMPLETED
    assert (batch.processed_items, batch.failed_items) == (2000, 0)
    assert batch_server.realtime_calls == 0
    ids = batch_server.submitted_custom_ids()
    assert len(ids) == len(set(ids)) == 2000
    assert batch.provider_batches.count() == 4
    assert set(batch.provider_batches.values_list("status", flat=True)) == {"ended"}
    assert Interaction.objects.filter(chat__batch_items__batch=batch).count() == 2000
    item = batch.items.select_related("interaction").get(position=7)
    assert item.interaction.answer == "Fake answer (turn 1) to: Question 7?"
    assert item.interaction.input_tokens > 0
    # Cost at the batch price: the real-time price less the shipped batch discount (half).
    stats = batch_stats(batch)
    full = (stats.input_tokens * 0.15 + stats.output_tokens * 0.60) / 1_000_000
    assert stats.estimated_cost == pytest.approx(full * 0.5)
    assert batch.items.filter(cost__isnull=True).count() == 0
    # Bodies are not kept once the results are stored.
    assert not ProviderRequest.objects.exclude(body={}).exists()


def test_worker_killed_between_submit_and_poll_loses_nothing_and_submits_nothing_twice(
    owner, batch_server, monkeypatch
):
    batch_server.auto_complete = False
    batch = make(owner, rows(40))
    run_slice(batch_id=batch.pk, seconds=30, runner="worker-1")
    assert len(batch_server.batches) == 1
    # The "process" dies: nothing in memory survives; a new worker takes over.
    batch_server.finish()
    batch = drive(batch)
    assert batch.status == Batch.Status.COMPLETED
    assert batch.processed_items == 40
    assert len(batch_server.batches) == 1
    assert len(batch_server.submitted_custom_ids()) == 40


def test_worker_killed_after_the_provider_call_before_saving_its_id(
    owner, batch_server, monkeypatch
):
    """The provider has the batch but we never saved its id: the restarted worker finds
    it by the local id in its metadata instead of submitting again."""
    from batches.economy import submit

    batch_server.auto_complete = False
    batch = make(owner, rows(30))
    real = submit._mark_submitted

    def die(*args, **kwargs):
        raise SystemExit("killed")

    monkeypatch.setattr(submit, "_mark_submitted", die)
    with pytest.raises(SystemExit):
        run_slice(batch_id=batch.pk, seconds=30, runner="worker-1")
    pb = ProviderBatch.objects.get(batch=batch)
    assert pb.status == ProviderBatch.Status.SUBMITTING and not pb.provider_batch_id
    monkeypatch.setattr(submit, "_mark_submitted", real)

    batch_server.finish()
    batch = drive(batch)
    assert batch.status == Batch.Status.COMPLETED
    assert batch.processed_items == 30
    assert len(batch_server.batches) == 1  # found, not sent again
    pb.refresh_from_db()
    assert pb.provider_batch_id == next(iter(batch_server.batches))


def test_expired_rows_are_retried_once_then_fail_with_the_reason(owner, batch_server):
    batch_server.expire_next = 2  # the first batch and its retry both expire
    batch = make(owner, rows(5))
    batch = drive(batch)
    assert batch.status == Batch.Status.COMPLETED
    assert batch.failed_items == 5
    assert len(batch_server.batches) == 2
    item = batch.items.get(position=0)
    assert "completion window expired" in item.error
    assert item.attempts == 2


def test_expired_rows_retried_once_succeed(owner, batch_server):
    batch_server.expire_next = 1
    batch = drive(make(owner, rows(5)))
    assert (batch.processed_items, batch.failed_items) == (5, 0)
    ids = batch_server.submitted_custom_ids()
    assert sorted(ids)[-1].endswith("-a2") and len(ids) == 10


def test_partial_errors_retried_once_then_failed_with_the_providers_reason(owner, batch_server):
    parsed = rows(6)
    parsed[1] = ParsedRow(question="Bad [batch-error]", columns={"question": "x"})
    parsed[2] = ParsedRow(question="Flaky [batch-flaky]", columns={"question": "y"})
    batch = drive(make(owner, parsed))
    assert batch.status == Batch.Status.COMPLETED
    assert (batch.processed_items, batch.failed_items) == (5, 1)
    bad = batch.items.get(position=1)
    assert bad.status == BatchItem.Status.FAILED
    assert "the fake refuses this one" in bad.error
    assert bad.attempts == 2
    flaky = batch.items.get(position=2)
    assert flaky.status == BatchItem.Status.DONE
    assert batch_server.realtime_calls == 0


def test_cancel_while_in_progress_cancels_the_provider_batch_and_keeps_what_came_back(
    owner, batch_server
):
    batch_server.auto_complete = False
    batch = make(owner, rows(10))
    run_slice(batch_id=batch.pk, seconds=30, runner="test")
    (provider_id,) = batch_server.batches
    batch_server.advance(provider_id, 4)  # four answered before the cancel

    cancel_batch(batch=batch)
    poll_provider_batches()

    batch.refresh_from_db()
    assert batch_server.batches[provider_id].cancelling
    assert batch.status == Batch.Status.CANCELLED
    assert batch.processed_items == 4
    assert batch.items.filter(status=BatchItem.Status.CANCELLED).count() == 6
    pb = batch.provider_batches.get()
    assert pb.status == ProviderBatch.Status.ENDED and pb.provider_status == "cancelled"


def test_multi_turn_rows_go_in_waves(owner, batch_server):
    parsed = rows(6, chat_key=lambda i: f"c{i % 2}")  # two chats of three turns
    batch = drive(make(owner, parsed))
    assert batch.processed_items == 6
    assert len(batch_server.batches) == 3  # one wave per turn
    last = batch.items.select_related("interaction").get(position=5)
    assert last.interaction.answer.startswith("Fake answer (turn 3)")


def test_economy_needs_a_provider_with_a_batch_api(owner, batch_server):
    with pytest.raises(ProviderNotConfigured) as caught:
        make(owner, rows(2), provider="compatible", model="local-model")
    assert caught.value.field == "mode"
    assert not Batch.objects.exists()


def test_blocked_rows_are_answered_locally_and_not_sent(owner, batch_server):
    parsed = rows(3)
    parsed[0] = ParsedRow(question="My SIN is 046 454 286, what now?", columns={"question": "x"})
    batch = drive(make(owner, parsed))
    assert batch.processed_items == 3
    assert len(batch_server.submitted_custom_ids()) == 2
    blocked = batch.items.select_related("interaction").get(position=0)
    assert blocked.interaction.answer_type == "blocked"


def test_2000_rows_with_the_worker_killed_while_storing_results(
    owner, batch_server, settings, monkeypatch
):
    """Killed mid-way through storing the provider batches' results: a new worker stores
    the rest, every row answered once, nothing submitted twice."""
    from batches.economy import store

    settings.ECONOMY_MAX_REQUESTS = 500
    batch_server.auto_complete = False
    batch = make(owner, rows(2000))
    run_slice(batch_id=batch.pk, seconds=30, runner="worker-1")
    assert len(batch_server.batches) == 4
    batch_server.finish()
    real = store.write_outcomes
    calls = []

    def dies_on_second_provider_batch(**kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise SystemExit("killed")
        return real(**kwargs)

    monkeypatch.setattr(store, "write_outcomes", dies_on_second_provider_batch)
    with pytest.raises(SystemExit):
        run_slice(batch_id=batch.pk, seconds=30, runner="worker-1")
    monkeypatch.setattr(store, "write_outcomes", real)
    # The poll of the provider batch that was being stored is due again at once.
    batch = drive(batch)
    assert batch.status == Batch.Status.COMPLETED
    assert (batch.processed_items, batch.failed_items) == (2000, 0)
    assert Interaction.objects.filter(chat__batch_items__batch=batch).count() == 2000
    assert len(batch_server.submitted_custom_ids()) == 2000
    assert batch_server.realtime_calls == 0


def test_worker_killed_while_preparing_gives_the_rows_back(owner, batch_server, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from batches.economy import submit

    batch = make(owner, rows(8))
    real = submit._record

    def die(*args, **kwargs):
        raise SystemExit("killed")

    monkeypatch.setattr(submit, "_record", die)
    with pytest.raises(SystemExit):
        run_slice(batch_id=batch.pk, seconds=30, runner="worker-1")
    monkeypatch.setattr(submit, "_record", real)
    assert batch_server.batches == {}
    # Later than a lease: the half-made submission is dropped and its rows go back.
    past = timezone.now() - timedelta(hours=1)
    ProviderBatch.objects.filter(batch=batch).update(created_at=past)
    BatchItem.objects.filter(batch=batch).update(lease_expires_at=past)
    batch = drive(batch)
    assert batch.processed_items == 8
    assert len(batch_server.batches) == 1
    assert ProviderBatch.objects.filter(batch=batch).count() == 1


def test_the_worker_drives_an_economy_batch_and_a_new_worker_finishes_it(owner, batch_server):
    from batches.services import start_batch
    from batches.worker import Worker

    batch_server.auto_complete = False
    batch = start_batch(batch=make(owner, rows(12)))
    Worker(slice_seconds=5, poll_seconds=0.01).run_once()
    assert len(batch_server.batches) == 1
    batch_server.finish()
    # A new worker (the first one is gone, nothing of it in memory).
    worker = Worker(slice_seconds=5, poll_seconds=0.01)
    for _ in range(5):
        worker.run_once()
        batch.refresh_from_db()
        if batch.status == Batch.Status.COMPLETED:
            break
    assert batch.status == Batch.Status.COMPLETED and batch.processed_items == 12
    assert len(batch_server.batches) == 1


def test_the_worker_and_celery_beat_poll_a_cancelled_batchs_provider_batches(owner, batch_server):
    from batches import tasks
    from batches.worker import Worker

    batch_server.auto_complete = False
    first, second = make(owner, rows(3)), make(owner, rows(3))
    for batch in (first, second):
        run_slice(batch_id=batch.pk, seconds=10, runner="test")
    for provider_id in batch_server.batches:
        batch_server.advance(provider_id, 3)
    cancel_batch(batch=first)
    cancel_batch(batch=second)
    tasks.poll_provider_batches()  # Celery beat's task, called directly
    first.refresh_from_db()
    assert first.processed_items == 3
    Worker(slice_seconds=5, poll_seconds=0.01).run_once()
    second.refresh_from_db()
    assert second.processed_items == 3
    assert all(b.cancelling for b in batch_server.batches.values())


def test_rows_in_a_provider_batch_do_not_hide_a_stalled_batch(owner, batch_server):
    """Rows leased to a provider batch are not a runner's live lease: with nobody polling,
    the batch waits for a worker (pages) and Celery beat re-enqueues it."""
    from batches.services import stalled_batch_ids, start_batch

    batch_server.auto_complete = False
    batch = start_batch(batch=make(owner, rows(3)))
    run_slice(batch_id=batch.pk, seconds=10, runner="test")
    assert batch.items.filter(status=BatchItem.Status.RUNNING).count() == 3
    assert not batch.items.live_leases().exists()
    assert batch.pk in stalled_batch_ids(idle_seconds=-1)


def test_a_provider_batch_lost_at_the_provider_is_retried_then_fails(owner, batch_server):
    batch_server.auto_complete = False
    batch = make(owner, rows(3))
    run_slice(batch_id=batch.pk, seconds=10, runner="test")
    batch_server.batches.clear()  # deleted at the provider: retrieve answers 404
    run_slice(batch_id=batch.pk, seconds=10, runner="test")  # lost: its rows sent again
    assert len(batch_server.batches) == 1
    batch_server.batches.clear()
    batch = drive(batch)
    assert batch.status == Batch.Status.COMPLETED and batch.failed_items == 3
    assert "404 Not Found" in batch.items.first().error


def test_celery_slice_of_an_economy_batch_waits_a_poll_interval_and_runs_twice_harmlessly(
    owner, batch_server, settings, monkeypatch
):
    from batches import tasks

    settings.ECONOMY_POLL_SECONDS = 30
    batch_server.auto_complete = False
    enqueued = []

    class Recorder:
        def apply_async(self, args=(), kwargs=None, countdown=None, **options):
            enqueued.append((args[0], countdown))

    task = tasks.process_batch_slice
    monkeypatch.setattr(tasks, "process_batch_slice", Recorder())
    batch = make(owner, rows(4))
    task(batch.pk)  # submits
    task(batch.pk)  # delivered again: nothing more is submitted, nothing to do yet
    assert len(batch_server.batches) == 1
    assert len(batch_server.submitted_custom_ids()) == 4
    assert enqueued[-1] == (batch.pk, 30)  # the next look after a poll interval


def test_rows_keep_their_lease_while_a_long_preparation_runs(owner, batch_server, settings):
    """A slow search (longer than a lease) does not let the rows' lease run out."""
    import time as _time

    from chats.search import SEARCH_PROVIDERS
    from chats.search.base import SearchProvider

    settings.BATCH_LEASE_SECONDS = 3
    seen = []

    class Slow(SearchProvider):
        key = "slow"
        label = "Slow"

        def missing_setting(self):
            return None

        def search(self, query, *, language, limit):
            _time.sleep(5)
            leases = BatchItem.objects.filter(status=BatchItem.Status.RUNNING)
            seen.append(all(not item.lease_expired() for item in leases))
            return []

    SEARCH_PROVIDERS["slow"] = f"{__name__}.Slow"
    try:
        globals()["Slow"] = Slow
        batch = make(owner, rows(1), search_provider="slow")
        batch = drive(batch)
    finally:
        SEARCH_PROVIDERS.pop("slow")
    assert batch.processed_items == 1
    assert seen == [True]


def test_retry_failed_resubmits_and_delete_removes_the_provider_batches(owner, batch_server):
    from batches.services import delete_batch, retry_failed

    batch_server.expire_next = 2
    batch = drive(make(owner, rows(2)))
    assert batch.failed_items == 2
    retry_failed(batch=batch)
    batch = drive(batch)
    assert (batch.processed_items, batch.failed_items) == (2, 0)
    assert len(batch_server.batches) == 3
    delete_batch(batch=batch)
    assert not ProviderBatch.objects.exists() and not ProviderRequest.objects.exists()
