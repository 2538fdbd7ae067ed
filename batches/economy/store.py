"""Economy mode, receiving: provider batches polled, their results stored through the
engine's writer (the same path as real-time rows: interactions, the guard's redacted
copies, grades, counters, in one transaction per group, with the lease check).

1. `poll`: at most once per ECONOMY_POLL_SECONDS per provider batch (a conditional
   UPDATE of `polled_at`, so two pollers never read one batch at once); a cancel asked
   for is sent first; the provider's status and counts are saved and the rows' lease
   renewed;
2. once the provider batch has ended, its output and error files are read: an answer is
   parsed (`complete_answer`) and stored; with the AI judge on, an answer it can judge
   is kept instead ("judging": the judge's wave, batches.economy.submit.submit_judges)
   and stored with its verdict when the judge provider batch ends (`_store_verdicts`);
   an expired or errored request goes back to pending while the row has attempts left
   (ECONOMY_MAX_ATTEMPTS): for a new provider batch, or, when the batch retries in real
   time (Batch.economy_retry), marked for a real-time slice; else the row fails with the
   provider's reason; a cancelled batch's rows without an answer are cancelled;
3. the ProviderBatch ends (its request bodies cleared). Storing twice is harmless: the
   writer drops results for rows no longer leased to the provider batch.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from batches import hooks
from batches.costs import answer_cost, batch_price
from batches.engine.writer import Outcome, Writer
from batches.models import Batch, BatchItem, ProviderBatch, ProviderRequest
from chats.services import (
    BatchAPI,
    BatchResult,
    ProviderError,
    TransientProviderError,
    complete_answer,
    run_on_provider_loop,
)

logger = logging.getLogger("batches.economy")

GROUP_ROWS = 500  # rows per writer transaction


def write_outcomes(*, batch_id: int, owner: str, outcomes: list[Outcome]) -> tuple[int, int]:
    """Record outcomes through the engine's writer, in groups; returns (done, failed)."""
    if not outcomes:
        return 0, 0
    multi_turn = (
        BatchItem.objects.filter(batch_id=batch_id).values("chat_id").distinct().count()
        < BatchItem.objects.filter(batch_id=batch_id).count()
    )
    writer = Writer(
        batch_id=batch_id,
        owner=owner,
        db=None,  # write_group runs here, in this thread
        multi_turn=multi_turn,
        rows_in_flight=lambda: 0,
        on_written=lambda: None,
        on_fault=lambda: None,
        on_progress=None,
    )
    done = failed = 0
    for start in range(0, len(outcomes), GROUP_ROWS):
        d, f = writer.write_group(outcomes[start : start + GROUP_ROWS])
        done += d
        failed += f
    return done, failed


def poll(pb: ProviderBatch, api: BatchAPI) -> tuple[int, int]:
    """Poll one submitted provider batch (see the module docstring); (done, failed)."""
    now = timezone.now()
    due = Q(polled_at__isnull=True) | Q(
        polled_at__lte=now - timedelta(seconds=settings.ECONOMY_POLL_SECONDS)
    )
    taken = ProviderBatch.objects.filter(
        due, pk=pb.pk, status=ProviderBatch.Status.SUBMITTED
    ).update(polled_at=now)
    if not taken:
        return 0, 0
    pb.refresh_from_db()
    try:
        if pb.cancel_requested and not pb.cancel_sent:
            try:
                run_on_provider_loop(api.cancel(pb.provider_batch_id))
            except ProviderError as exc:
                # Refused (it has ended meanwhile, say): its results are read below.
                logger.warning("Provider batch %s: cancel refused: %s", pb.local_id, exc)
            ProviderBatch.objects.filter(pk=pb.pk).update(cancel_sent=True)
        state = run_on_provider_loop(api.retrieve(pb.provider_batch_id))
    except TransientProviderError as exc:
        logger.warning("Provider batch %s: poll failed, will retry: %s", pb.local_id, exc)
        return 0, 0
    except ProviderError as exc:
        # The provider no longer knows it (deleted there, another key): its rows are
        # retried in a new provider batch while they have attempts, else fail with this.
        logger.warning("Provider batch %s: lost at the provider: %s", pb.local_id, exc)
        return fail_provider_batch(pb, str(exc))
    ProviderBatch.objects.filter(pk=pb.pk).update(
        provider_status=state.status,
        succeeded_count=state.succeeded,
        failed_count=state.failed,
        output_file_id=state.output_file_id,
        error_file_id=state.error_file_id,
        error=state.error,
    )
    BatchItem.objects.renew_leases(
        owner=pb.lease_owner,
        until=now + timedelta(seconds=settings.ECONOMY_LEASE_SECONDS),
    )
    if not state.ended:
        return 0, 0
    try:
        results = run_on_provider_loop(api.results(pb.provider_batch_id, state))
    except TransientProviderError as exc:
        logger.warning("Provider batch %s: results unreadable, will retry: %s", pb.local_id, exc)
        ProviderBatch.objects.filter(pk=pb.pk).update(polled_at=None)
        return 0, 0
    except ProviderError as exc:
        return fail_provider_batch(pb, str(exc))
    reason = state.error or f"{api.provider.label}: the provider batch ended as {state.status}"
    return store_results(pb, results, missing_reason=reason)


def store_results(
    pb: ProviderBatch, results: list[BatchResult], *, missing_reason: str
) -> tuple[int, int]:
    """Store an ended provider batch's results (see the module docstring)."""
    if pb.kind == ProviderBatch.Kind.JUDGE:
        return _store_verdicts(pb, results, missing_reason=missing_reason)
    by_id = {result.custom_id: result for result in results}
    requests = list(pb.requests.select_related("item__chat").filter(outcome="").order_by("pk"))
    batch = Batch.objects.get(pk=pb.batch_id)
    graders = hooks.graders()
    judged = batch.judge_enabled and graders.judge_request is not None
    outcomes: list[Outcome] = []
    now = timezone.now()
    price = batch_price(batch)
    for request in requests:
        item = request.item
        result = by_id.get(request.custom_id)
        if result is not None and result.text is not None:
            reply = {
                "text": result.text,
                "model": result.model,
                "input_tokens": result.input_tokens,
                "output_tokens": result.output_tokens,
            }
            answer = complete_answer(request.fields, **reply)
            text = answer.fields.get("answer", "")
            if (
                judged
                and answer.fields.get("answer_type") != "blocked"
                and graders.wants_judge(item, text)
            ):
                # The judge's wave (submit.submit_judges): the row stays with this
                # provider batch's lease until its verdict is stored with the answer.
                request.outcome, request.result = "judging", reply
                continue
            outcomes.append(
                Outcome(
                    item,
                    BatchItem.Status.DONE,
                    answer=answer,
                    cost=answer_cost(price, answer.fields, economy=True),
                )
            )
            request.outcome = "answered"
            continue
        error = (result.error if result is not None else "") or missing_reason
        request.error = error[:2000]
        if batch.status == Batch.Status.CANCELLED or (result and result.kind == "cancelled"):
            # Cancelled with the batch: back to pending, cancelled below with the batch.
            outcomes.append(Outcome(item, BatchItem.Status.PENDING, given_back=True))
            request.outcome = "cancelled"
        elif item.attempts < settings.ECONOMY_MAX_ATTEMPTS:
            realtime = batch.economy_retry == Batch.EconomyRetry.REALTIME
            outcomes.append(
                Outcome(
                    item,
                    BatchItem.Status.PENDING,
                    error=error,
                    rest_until=now,
                    realtime_retry=realtime,
                )
            )
            request.outcome = "realtime" if realtime else "retried"
        else:
            outcomes.append(Outcome(item, BatchItem.Status.FAILED, error=error))
            request.outcome = "failed"
    done, failed = write_outcomes(batch_id=pb.batch_id, owner=pb.lease_owner, outcomes=outcomes)
    ProviderRequest.objects.bulk_update(requests, ["outcome", "error", "result"], batch_size=500)
    return _end(pb, done, failed)


def _end(pb: ProviderBatch, done: int, failed: int) -> tuple[int, int]:
    """The provider batch has ended: its request bodies go; a cancelled batch's pending
    rows are cancelled."""
    pb.requests.update(body={})
    ProviderBatch.objects.filter(pk=pb.pk).update(
        status=ProviderBatch.Status.ENDED, ended_at=timezone.now()
    )
    if Batch.objects.filter(pk=pb.batch_id, status=Batch.Status.CANCELLED).exists():
        BatchItem.objects.filter(batch_id=pb.batch_id).cancel_pending()
        Batch.objects.get(pk=pb.batch_id).recount()
    return done, failed


def _store_verdicts(
    pb: ProviderBatch, results: list[BatchResult], *, missing_reason: str
) -> tuple[int, int]:
    """Store an ended judge provider batch: each row's answer (kept on its answer
    request) with the judge's verdict, through the writer and the graders as a real-time
    row with its judge. A judge call that expired or errored is the judge's failure, as
    in real time ("no verdict", the provider's reason); one cancelled with the batch
    leaves the answer unjudged. The row's cost is its answer's and its judge's tokens at
    the batch price."""
    by_id = {result.custom_id: result for result in results}
    requests = list(
        pb.requests.select_related("item__chat", "answer_request").filter(outcome="").order_by("pk")
    )
    batch = Batch.objects.get(pk=pb.batch_id)
    graders = hooks.graders()
    price = batch_price(batch)
    outcomes: list[Outcome] = []
    sources = []
    for request in requests:
        source = request.answer_request
        answer = complete_answer(source.fields, **source.result)
        cost = answer_cost(price, answer.fields, economy=True)
        result = by_id.get(request.custom_id)
        verdict = None
        if result is not None and result.text is not None:
            verdict = graders.judge_reply(text=result.text)
            request.outcome = "judged"
            request.result = {
                "input_tokens": result.input_tokens,
                "output_tokens": result.output_tokens,
            }
            judge_cost = answer_cost(price, request.result, economy=True)
            if cost is not None and judge_cost is not None:
                cost += judge_cost
        elif batch.status == Batch.Status.CANCELLED or (result and result.kind == "cancelled"):
            request.outcome = "cancelled"
        else:
            error = (result.error if result is not None else "") or missing_reason
            verdict = graders.judge_reply(text=None, error=error)
            request.outcome, request.error = "failed", error[:2000]
        outcomes.append(
            Outcome(request.item, BatchItem.Status.DONE, answer=answer, verdict=verdict, cost=cost)
        )
        source.outcome = "answered"
        sources.append(source)
    done, failed = write_outcomes(batch_id=pb.batch_id, owner=pb.lease_owner, outcomes=outcomes)
    ProviderRequest.objects.bulk_update(requests, ["outcome", "error", "result"], batch_size=500)
    ProviderRequest.objects.bulk_update(sources, ["outcome"], batch_size=500)
    return _end(pb, done, failed)


def settle_judging(batch: Batch) -> tuple[int, int]:
    """A cancelled or failed batch sends no judge wave: its answers still waiting for one
    are stored unjudged ("Grade again" can judge them)."""
    waiting = list(
        ProviderRequest.objects.filter(provider_batch__batch=batch, outcome="judging")
        .exclude(judge_requests__isnull=False)
        .select_related("item__chat", "provider_batch")
        .order_by("pk")
    )
    price = batch_price(batch)
    done = failed = 0
    by_owner: dict[str, list[ProviderRequest]] = {}
    for request in waiting:
        by_owner.setdefault(request.provider_batch.lease_owner, []).append(request)
    for owner, requests in by_owner.items():
        outcomes = []
        for request in requests:
            answer = complete_answer(request.fields, **request.result)
            cost = answer_cost(price, answer.fields, economy=True)
            outcomes.append(Outcome(request.item, BatchItem.Status.DONE, answer=answer, cost=cost))
            request.outcome = "answered"
        d, f = write_outcomes(batch_id=batch.pk, owner=owner, outcomes=outcomes)
        done, failed = done + d, failed + f
        ProviderRequest.objects.bulk_update(requests, ["outcome"], batch_size=500)
    return done, failed


def fail_provider_batch(pb: ProviderBatch, message: str) -> tuple[int, int]:
    """The provider refused the submission: every row of it fails with its message (or
    goes back for another attempt while it has one)."""
    ProviderBatch.objects.filter(pk=pb.pk).update(error=message[:2000], provider_status="failed")
    pb.refresh_from_db()
    return store_results(pb, [], missing_reason=message)
