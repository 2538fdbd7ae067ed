"""Economy mode's second waves, against the fake batch servers: the AI judge as a judge
provider batch, and expired or errored rows retried in real time."""

from __future__ import annotations

import pytest

from batches.events import run_slice
from batches.models import Batch, BatchItem, ProviderBatch, ProviderRequest
from batches.services import cancel_batch
from batches.tests.test_economy import drive, make, rows
from batches.uploads import ParsedRow
from chats.services import price_for
from chats.tests.fake_batch_servers import FakeBatchServer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def batch_server(settings):
    with FakeBatchServer() as server:
        server.configure(settings)
        settings.ECONOMY_POLL_SECONDS = 0
        settings.AI_PRICES = {"openai:gpt-4o-mini": (0.15, 0.60)}
        yield server


def expected_rows(n: int, *, expected="Fake answer to Question {i}", chat_key=None):
    return [
        ParsedRow(
            question=f"Question {i}?",
            columns={"question": f"Question {i}?"},
            expected_answer=expected.format(i=i),
            chat_key=chat_key(i) if chat_key else "",
        )
        for i in range(n)
    ]


def judge_ids(server: FakeBatchServer) -> list[str]:
    return [i for i in server.submitted_custom_ids() if i.endswith("-j")]


# --- The AI judge as a second wave ------------------------------------------------------


def test_judge_calls_go_in_a_judge_provider_batch_and_verdicts_are_stored(owner, batch_server):
    parsed = expected_rows(3)
    parsed.append(ParsedRow(question="No expectation?", columns={"question": "x"}))
    parsed[2] = ParsedRow(
        question="Question 2?",
        columns={"question": "Question 2?"},
        expected_answer="Something about passports and visas",
    )
    batch = drive(make(owner, parsed, judge_enabled=True))

    assert batch.status == Batch.Status.COMPLETED
    assert (batch.processed_items, batch.failed_items) == (4, 0)
    assert batch_server.realtime_calls == 0
    kinds = list(batch.provider_batches.values_list("kind", flat=True))
    assert kinds == [ProviderBatch.Kind.ANSWER, ProviderBatch.Kind.JUDGE]
    # One judge call per row with an expected answer, each sent once.
    ids = judge_ids(batch_server)
    assert len(ids) == len(set(ids)) == 3
    judge_batch = batch_server.batches[batch.provider_batches.get(kind="judge").provider_batch_id]
    assert all("<expected>" in json_of(r) for r in judge_batch.requests)
    verdicts = dict(batch.items.values_list("position", "judge_verdict"))
    assert verdicts == {0: "pass", 1: "pass", 2: "fail", 3: ""}
    failing = batch.items.get(position=2)
    assert failing.verdict == "fail" and failing.verdict_reason == "judge"
    assert "Missing:" in failing.judge_notes


def json_of(request: dict) -> str:
    import json

    return json.dumps(request)


def test_judged_rows_cost_their_answer_and_judge_tokens_at_the_batch_price(owner, batch_server):
    parsed = expected_rows(2)
    parsed.append(ParsedRow(question="No expectation?", columns={"question": "x"}))
    batch = drive(make(owner, parsed, judge_enabled=True))
    price = price_for("openai", "gpt-4o-mini")
    judged = ProviderRequest.objects.filter(provider_batch__kind="judge", outcome="judged")
    assert judged.count() == 2
    for request in judged.select_related("item__interaction"):
        item, tokens = request.item, request.result
        assert tokens["input_tokens"] > 0 and tokens["output_tokens"] > 0
        expected = price.cost(
            item.interaction.input_tokens + tokens["input_tokens"],
            item.interaction.output_tokens + tokens["output_tokens"],
            economy=True,
        )
        assert item.cost == pytest.approx(expected)
    plain = batch.items.select_related("interaction").get(position=2)
    assert plain.cost == pytest.approx(
        price.cost(plain.interaction.input_tokens, plain.interaction.output_tokens, economy=True)
    )
    batch.refresh_from_db()
    assert batch.spent == pytest.approx(sum(batch.items.values_list("cost", flat=True)))


def test_a_row_counts_as_done_only_once_its_verdict_is_stored(owner, batch_server):
    batch_server.auto_complete = False
    batch = make(owner, expected_rows(3), judge_enabled=True)
    run_slice(batch_id=batch.pk, seconds=10, runner="test")  # answers submitted
    batch_server.finish()
    run_slice(batch_id=batch.pk, seconds=10, runner="test")  # answers in, judge submitted
    batch.refresh_from_db()
    assert batch.processed_items == 0
    assert batch.items.filter(status=BatchItem.Status.RUNNING).count() == 3
    assert not batch.items.filter(interaction__isnull=False).exists()
    judge_pb = batch.provider_batches.get(kind="judge")
    assert judge_pb.status == ProviderBatch.Status.SUBMITTED
    assert set(batch.items.values_list("lease_owner", flat=True)) == {judge_pb.lease_owner}

    batch_server.finish()
    batch = drive(batch)
    assert (batch.processed_items, batch.status) == (3, Batch.Status.COMPLETED)
    assert set(batch.items.values_list("judge_verdict", flat=True)) == {"pass"}


def test_worker_killed_between_judge_submission_and_poll_submits_nothing_twice(
    owner, batch_server, monkeypatch
):
    from batches.economy import submit

    batch_server.auto_complete = False
    batch = make(owner, expected_rows(6), judge_enabled=True)
    run_slice(batch_id=batch.pk, seconds=10, runner="worker-1")
    batch_server.finish()
    # The worker dies after the provider took the judge batch, before its id was saved.
    real = submit._mark_submitted

    def die(pb, *args, **kwargs):
        if pb.kind == ProviderBatch.Kind.JUDGE:
            raise SystemExit("killed")
        return real(pb, *args, **kwargs)

    monkeypatch.setattr(submit, "_mark_submitted", die)
    with pytest.raises(SystemExit):
        run_slice(batch_id=batch.pk, seconds=10, runner="worker-1")
    monkeypatch.setattr(submit, "_mark_submitted", real)
    judge_pb = batch.provider_batches.get(kind="judge")
    assert judge_pb.status == ProviderBatch.Status.SUBMITTING and not judge_pb.provider_batch_id
    assert len(batch_server.batches) == 2

    # A new worker, several slices while the judge batch runs, then after it ended.
    for _ in range(3):
        run_slice(batch_id=batch.pk, seconds=10, runner="worker-2")
    assert len(batch_server.batches) == 2
    batch_server.finish()
    batch = drive(batch)

    assert (batch.processed_items, batch.status) == (6, Batch.Status.COMPLETED)
    assert len(batch_server.batches) == 2
    ids = batch_server.submitted_custom_ids()
    assert len(ids) == len(set(ids)) == 12
    judge_pb.refresh_from_db()
    assert judge_pb.provider_batch_id in batch_server.batches
    assert set(batch.items.values_list("judge_verdict", flat=True)) == {"pass"}
    assert batch_server.realtime_calls == 0


def test_an_expired_judge_call_is_the_judges_failure_and_the_answer_is_kept(owner, batch_server):
    batch_server.auto_complete = False
    batch = make(owner, expected_rows(2), judge_enabled=True)
    run_slice(batch_id=batch.pk, seconds=10, runner="test")
    batch_server.finish()
    run_slice(batch_id=batch.pk, seconds=10, runner="test")  # judge batch submitted
    batch_server.expire_next = 1
    batch_server.finish()
    batch = drive(batch)
    assert (batch.processed_items, batch.failed_items) == (2, 0)
    item = batch.items.select_related("interaction").get(position=0)
    assert item.interaction.answer.startswith("Fake answer")
    assert item.judge_verdict == "error"
    assert "completion window expired" in item.judge_notes
    assert len(batch_server.batches) == 2  # the judge is not retried
    assert batch_server.realtime_calls == 0


def test_a_malformed_judge_reply_gives_no_verdict_as_in_real_time(owner, batch_server):
    batch = drive(
        make(owner, expected_rows(1, expected="[malformed] passports"), judge_enabled=True)
    )
    item = batch.items.get()
    assert item.status == BatchItem.Status.DONE
    assert item.judge_verdict == "error" and "JSON" in item.judge_notes


def test_multi_turn_rows_with_the_judge_go_in_answer_and_judge_waves(owner, batch_server):
    parsed = expected_rows(4, chat_key=lambda i: f"c{i % 2}")  # two chats of two turns
    batch = drive(make(owner, parsed, judge_enabled=True))
    assert batch.processed_items == 4
    kinds = list(batch.provider_batches.order_by("pk").values_list("kind", flat=True))
    assert kinds == ["answer", "judge", "answer", "judge"]
    last = batch.items.select_related("interaction").get(position=3)
    assert last.interaction.answer.startswith("Fake answer (turn 2)")
    assert batch_server.realtime_calls == 0


def test_cancel_during_the_judge_wave_keeps_the_answers_unjudged(owner, batch_server):
    from batches.economy import poll_provider_batches

    batch_server.auto_complete = False
    batch = make(owner, expected_rows(3), judge_enabled=True)
    run_slice(batch_id=batch.pk, seconds=10, runner="test")
    batch_server.finish()
    run_slice(batch_id=batch.pk, seconds=10, runner="test")  # judge batch submitted
    cancel_batch(batch=batch)
    poll_provider_batches()
    batch.refresh_from_db()
    assert batch.status == Batch.Status.CANCELLED
    assert batch.processed_items == 3
    assert set(batch.items.values_list("judge_verdict", flat=True)) == {""}
    assert batch.provider_batches.get(kind="judge").status == ProviderBatch.Status.ENDED


def test_cancel_before_the_judge_wave_stores_the_answers_unjudged(owner, batch_server):
    from batches.economy import poll_provider_batches

    batch_server.auto_complete = False
    batch = make(owner, expected_rows(2), judge_enabled=True)
    run_slice(batch_id=batch.pk, seconds=10, runner="test")
    (provider_id,) = batch_server.batches
    batch_server.advance(provider_id, 2)
    cancel_batch(batch=batch)
    poll_provider_batches()
    batch.refresh_from_db()
    assert (batch.status, batch.processed_items) == (Batch.Status.CANCELLED, 2)
    assert not batch.provider_batches.filter(kind="judge").exists()
    assert not ProviderRequest.objects.filter(outcome="judging").exists()


# --- Expired or errored rows retried in real time ----------------------------------------


def test_expired_rows_are_retried_once_in_real_time(owner, batch_server):
    batch_server.expire_next = 1
    batch = drive(make(owner, rows(5), economy_retry="realtime"))
    assert batch.status == Batch.Status.COMPLETED
    assert (batch.processed_items, batch.failed_items) == (5, 0)
    assert len(batch_server.batches) == 1  # no second provider batch
    assert batch_server.realtime_calls == 5
    item = batch.items.select_related("interaction").get(position=0)
    assert item.attempts == 2
    assert item.interaction.answer == "Fake answer (turn 1) to: Question 0?"
    # At the real-time price.
    price = price_for("openai", "gpt-4o-mini")
    assert item.cost == pytest.approx(
        price.cost(item.interaction.input_tokens, item.interaction.output_tokens)
    )
    assert set(
        ProviderRequest.objects.filter(provider_batch__batch=batch).values_list(
            "outcome", flat=True
        )
    ) == {"realtime"}


def test_errored_rows_are_retried_in_real_time_and_the_rest_make_no_realtime_call(
    owner, batch_server
):
    parsed = rows(6)
    parsed[1] = ParsedRow(question="Bad [batch-error]", columns={"question": "x"})
    batch = drive(make(owner, parsed, economy_retry="realtime"))
    assert (batch.processed_items, batch.failed_items) == (6, 0)
    assert batch_server.realtime_calls == 1
    assert len(batch_server.batches) == 1
    bad = batch.items.select_related("interaction").get(position=1)
    assert bad.interaction.answer.startswith("Fake answer")
    assert batch.items.filter(realtime_retry=True).count() == 1


def test_a_row_retried_in_real_time_never_goes_in_a_provider_batch_after_a_restart(
    owner, batch_server, monkeypatch
):
    """Killed after the expired results were stored, before the real-time retry ran: the
    next slices answer those rows in real time, never in a new provider batch."""
    import batches.economy as economy

    batch_server.expire_next = 1
    batch = make(owner, rows(4), economy_retry="realtime")

    def die(*args, **kwargs):
        raise SystemExit("killed")

    real = economy.realtime_slice
    monkeypatch.setattr(economy, "realtime_slice", die)
    with pytest.raises(SystemExit):
        drive(batch)
    assert batch.items.filter(realtime_retry=True, status=BatchItem.Status.PENDING).count() == 4
    monkeypatch.setattr(economy, "realtime_slice", real)
    batch = drive(batch)
    assert (batch.processed_items, batch.failed_items) == (4, 0)
    assert len(batch_server.batches) == 1
    assert len(batch_server.submitted_custom_ids()) == 4
    assert batch_server.realtime_calls == 4


def test_a_row_that_fails_its_real_time_retry_fails_with_the_reason(owner, batch_server):
    batch_server.expire_next = 1
    batch_server.fail_next(1, "400")  # served to the next real-time call: the retry's
    batch = drive(make(owner, rows(1), economy_retry="realtime"))
    item = batch.items.get()
    assert (batch.status, item.status) == (Batch.Status.COMPLETED, BatchItem.Status.FAILED)
    assert "refused (400 Bad Request)" in item.error  # the real-time call's reason
    assert batch_server.realtime_calls == 1
    assert len(batch_server.batches) == 1


def test_retry_failed_sends_a_realtime_retried_row_to_a_provider_batch_again(owner, batch_server):
    from batches.services import retry_failed

    batch_server.expire_next = 1
    batch = drive(make(owner, rows(2), economy_retry="realtime"))
    BatchItem.objects.filter(batch=batch).update(status=BatchItem.Status.FAILED)
    batch.recount()
    batch.refresh_from_db()
    retry_failed(batch=batch)
    assert not batch.items.filter(realtime_retry=True).exists()
    batch = drive(batch)
    assert batch.processed_items == 2
    assert len(batch_server.batches) == 2
