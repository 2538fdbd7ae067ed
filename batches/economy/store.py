"""Economy mode, receiving: provider batches polled, their results stored through the
engine's writer (the same path as real-time rows: interactions, the guard's redacted
copies, grades, counters, in one transaction per group, with the lease check).

1. `poll`: at most once per ECONOMY_POLL_SECONDS per provider batch (a conditional
   UPDATE of `polled_at`, so two pollers never read one batch at once); a cancel asked
   for is sent first; the provider's status and counts are saved and the rows' lease
   renewed;
2. once the provider batch has ended, its output and error files are read: an answer is
   parsed (`complete_answer`) and stored; the AI judge, when on, grades it (a real-time
   call, as in real-time mode); an expired or errored request goes back to pending for a
   new provider batch while the row has attempts left (ECONOMY_MAX_ATTEMPTS), else the
   row fails with the provider's reason; a cancelled batch's rows without an answer are
   cancelled;
3. the ProviderBatch ends (its request bodies cleared). Storing twice is harmless: the
   writer drops results for rows no longer leased to the provider batch.
"""

from __future__ import annotations

import asyncio
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
JUDGE_CONCURRENCY = 8


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
    by_id = {result.custom_id: result for result in results}
    requests = list(pb.requests.select_related("item__chat").filter(outcome="").order_by("pk"))
    batch = Batch.objects.get(pk=pb.batch_id)
    answered = []
    for request in requests:
        result = by_id.get(request.custom_id)
        if result is not None and result.text is not None:
            answer = complete_answer(
                request.fields,
                text=result.text,
                model=result.model,
                input_tokens=result.input_tokens,
                output_tokens=result.output_tokens,
            )
            answered.append((request, answer))
    verdicts = _judge(batch, answered) if batch.judge_enabled else {}
    outcomes: list[Outcome] = []
    now = timezone.now()
    answers = dict((request.pk, answer) for request, answer in answered)
    price = batch_price(batch)
    for request in requests:
        item = request.item
        if request.pk in answers:
            outcomes.append(
                Outcome(
                    item,
                    BatchItem.Status.DONE,
                    answer=answers[request.pk],
                    verdict=verdicts.get(request.pk),
                    cost=answer_cost(price, answers[request.pk].fields, economy=True),
                )
            )
            request.outcome = "answered"
            continue
        result = by_id.get(request.custom_id)
        error = (result.error if result is not None else "") or missing_reason
        request.error = error[:2000]
        if batch.status == Batch.Status.CANCELLED or (result and result.kind == "cancelled"):
            # Cancelled with the batch: back to pending, cancelled below with the batch.
            outcomes.append(Outcome(item, BatchItem.Status.PENDING, given_back=True))
            request.outcome = "cancelled"
        elif item.attempts < settings.ECONOMY_MAX_ATTEMPTS:
            outcomes.append(Outcome(item, BatchItem.Status.PENDING, error=error, rest_until=now))
            request.outcome = "retried"
        else:
            outcomes.append(Outcome(item, BatchItem.Status.FAILED, error=error))
            request.outcome = "failed"
    done, failed = write_outcomes(batch_id=pb.batch_id, owner=pb.lease_owner, outcomes=outcomes)
    ProviderRequest.objects.bulk_update(requests, ["outcome", "error"], batch_size=500)
    pb.requests.update(body={})
    ProviderBatch.objects.filter(pk=pb.pk).update(
        status=ProviderBatch.Status.ENDED, ended_at=timezone.now()
    )
    if Batch.objects.filter(pk=pb.batch_id, status=Batch.Status.CANCELLED).exists():
        BatchItem.objects.filter(batch_id=pb.batch_id).cancel_pending()
        Batch.objects.get(pk=pb.batch_id).recount()
    return done, failed


def _judge(batch: Batch, answered: list) -> dict[int, tuple[str, str]]:
    """The AI judge's verdicts for answered requests that want one (real-time calls)."""
    graders = hooks.graders()
    wanted = [
        (request, answer)
        for request, answer in answered
        if answer.fields.get("answer_type") != "blocked"
        and graders.wants_judge(request.item, answer.fields.get("answer", ""))
    ]
    if not wanted:
        return {}

    async def all_verdicts():
        slots = asyncio.Semaphore(JUDGE_CONCURRENCY)

        async def one(request, answer):
            async with slots:
                return await graders.judge(item=request.item, answer=answer.fields["answer"])

        return await asyncio.gather(*(one(r, a) for r, a in wanted))

    verdicts = run_on_provider_loop(all_verdicts())
    return {request.pk: verdict for (request, _a), verdict in zip(wanted, verdicts, strict=True)}


def fail_provider_batch(pb: ProviderBatch, message: str) -> tuple[int, int]:
    """The provider refused the submission: every row of it fails with its message (or
    goes back for another attempt while it has one)."""
    ProviderBatch.objects.filter(pk=pb.pk).update(error=message[:2000], provider_status="failed")
    pb.refresh_from_db()
    return store_results(pb, [], missing_reason=message)
