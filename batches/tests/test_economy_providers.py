"""Economy mode on Anthropic's message batches and Azure OpenAI's batch API, against the
local fake server speaking each protocol."""

from __future__ import annotations

import pytest

from batches.economy import poll_provider_batches
from batches.events import run_slice
from batches.models import Batch, BatchItem, ProviderBatch
from batches.services import cancel_batch
from batches.tests.test_economy import drive, make, rows
from batches.uploads import ParsedRow
from chats.tests.fake_batch_servers import FakeBatchServer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def batch_server(settings):
    with FakeBatchServer() as server:
        server.configure(settings)
        settings.ECONOMY_POLL_SECONDS = 0
        yield server


def anthropic(owner, parsed):
    return make(owner, parsed, provider="anthropic", model="claude-haiku-5-5")


def test_anthropic_economy_batch_completes_with_no_realtime_call(owner, batch_server, settings):
    settings.ECONOMY_MAX_REQUESTS = 100
    batch = drive(anthropic(owner, rows(300)))
    assert batch.status == Batch.Status.COMPLETED
    assert (batch.processed_items, batch.failed_items) == (300, 0)
    assert batch_server.realtime_calls == 0
    assert len(batch_server.batches) == 3
    ids = batch_server.submitted_custom_ids()
    assert len(set(ids)) == 300
    item = batch.items.select_related("interaction").get(position=3)
    assert item.interaction.answer == "Fake answer (turn 1) to: Question 3?"
    assert item.interaction.output_tokens > 0


def test_anthropic_errors_and_expiry_retried_once_then_failed(owner, batch_server):
    parsed = rows(4)
    parsed[0] = ParsedRow(question="Bad [batch-error]", columns={"question": "x"})
    parsed[1] = ParsedRow(question="Flaky [batch-flaky]", columns={"question": "y"})
    batch_server.expire_next = 1  # the first batch expires whole; the retry answers
    batch = drive(anthropic(owner, parsed))
    assert (batch.processed_items, batch.failed_items) == (3, 1)
    bad = batch.items.get(position=0)
    assert "the fake refuses this one" in bad.error
    assert bad.attempts == 2


def test_anthropic_expired_twice_fails_with_the_reason(owner, batch_server):
    batch_server.expire_next = 2
    batch = drive(anthropic(owner, rows(3)))
    assert batch.failed_items == 3
    assert "expired" in batch.items.first().error


def test_anthropic_cancel_keeps_what_came_back(owner, batch_server):
    batch_server.auto_complete = False
    batch = anthropic(owner, rows(6))
    run_slice(batch_id=batch.pk, seconds=30, runner="test")
    (provider_id,) = batch_server.batches
    batch_server.advance(provider_id, 2)
    cancel_batch(batch=batch)
    poll_provider_batches()
    batch.refresh_from_db()
    assert batch.status == Batch.Status.CANCELLED
    assert batch.processed_items == 2
    assert batch.items.filter(status=BatchItem.Status.CANCELLED).count() == 4
    assert batch.provider_batches.get().provider_status == "ended"


def test_anthropic_worker_killed_after_the_provider_call_finds_its_batch(
    owner, batch_server, monkeypatch
):
    from batches.economy import submit

    batch_server.auto_complete = False
    batch = anthropic(owner, rows(5))
    real = submit._mark_submitted

    def die(*args, **kwargs):
        raise SystemExit("killed")

    monkeypatch.setattr(submit, "_mark_submitted", die)
    with pytest.raises(SystemExit):
        run_slice(batch_id=batch.pk, seconds=30, runner="worker-1")
    monkeypatch.setattr(submit, "_mark_submitted", real)
    batch = drive(batch, slices=1)  # found while in progress (by its request count)
    assert len(batch_server.batches) == 1
    batch_server.finish()
    batch = drive(batch)
    assert batch.processed_items == 5
    assert len(batch_server.batches) == 1


def test_azure_economy_batch_uses_the_deployment(owner, batch_server):
    batch = drive(make(owner, rows(5), provider="azure", model="test-deployment"))
    assert batch.processed_items == 5
    assert batch_server.realtime_calls == 0
    (fake_batch,) = batch_server.batches.values()
    assert fake_batch.requests[0]["url"] == "/chat/completions"
    assert fake_batch.requests[0]["body"]["model"] == "test-deployment"
    assert ProviderBatch.objects.get(batch=batch).provider == "azure"


def test_anthropic_lookup_never_takes_another_submissions_batch(owner, batch_server, monkeypatch):
    """Two submissions of the same size in progress: the one whose id was never saved
    finds its own provider batch, not the other's (newer) one."""
    from batches.economy import submit

    batch_server.auto_complete = False
    lost = anthropic(owner, rows(5))
    real = submit._mark_submitted

    def die(*args, **kwargs):
        raise SystemExit("killed")

    monkeypatch.setattr(submit, "_mark_submitted", die)
    with pytest.raises(SystemExit):
        run_slice(batch_id=lost.pk, seconds=30, runner="worker-1")
    monkeypatch.setattr(submit, "_mark_submitted", real)
    (lost_provider_id,) = batch_server.batches
    other = anthropic(owner, rows(5))
    run_slice(batch_id=other.pk, seconds=30, runner="worker-2")  # a newer batch, same size

    run_slice(batch_id=lost.pk, seconds=30, runner="worker-3")
    assert lost.provider_batches.get().provider_batch_id == lost_provider_id
    assert len(batch_server.batches) == 2


def test_anthropic_judge_wave_and_realtime_retry(owner, batch_server):
    parsed = [
        ParsedRow(
            question=f"Question {i}?",
            columns={"question": f"Question {i}?"},
            expected_answer=f"Fake answer to Question {i}",
        )
        for i in range(3)
    ]
    parsed[2] = ParsedRow(
        question="Bad [batch-error]", columns={"question": "x"}, expected_answer="Fake answer"
    )
    batch = drive(
        make(
            owner,
            parsed,
            provider="anthropic",
            model="claude-haiku-5-5",
            judge_enabled=True,
            economy_retry="realtime",
        )
    )
    assert (batch.processed_items, batch.failed_items) == (3, 0)
    judge_ids = [i for i in batch_server.submitted_custom_ids() if i.endswith("-j")]
    assert len(judge_ids) == 2  # the two rows answered in the provider batch
    assert all(len(i) <= 64 for i in judge_ids)
    # The errored row: answered in real time, and judged beside it in real time.
    assert batch_server.realtime_calls == 2
    assert set(batch.items.values_list("judge_verdict", flat=True)) == {"pass"}
    kinds = set(batch.provider_batches.values_list("kind", flat=True))
    assert kinds == {ProviderBatch.Kind.ANSWER, ProviderBatch.Kind.JUDGE}
