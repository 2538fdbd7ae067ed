"""Economy mode: a batch's answer calls go to the provider's batch API (OpenAI and Azure
OpenAI files + batches, Anthropic message batches) at the batch price, results within
24 hours.

`process_economy` is what a slice is for an economy batch (batches.events.run_slice
routes to it, so the worker, Celery, the pages, the API and run_batch drive economy
batches as they drive any other):

1. the batch moves to processing as in real time; a provider without a batch API, or
   not configured, fails the batch (no row burnt);
2. submissions a dead worker left half-done are recovered (`submit.recover`);
3. the batch's submitted provider batches are polled (`store.poll`) and the results of
   ended ones stored;
4. with the AI judge on, answers that came back wait for their verdict: their judge
   calls are submitted in judge provider batches (`submit.submit_judges`, the second
   wave);
5. rows whose request expired or errored, in a batch that retries in real time
   (`Batch.economy_retry`), are answered by a real-time slice of those rows only
   (`engine.process.realtime_slice` with `realtime_retry=True`);
6. eligible rows are claimed, prepared and submitted in provider batches within the
   provider's limits (`submit.submit_next`), until none is left or the deadline;
7. the counters are recounted and a batch with no row left is completed (finish_slice).

Rows in a provider batch are `running`, leased to it (`ProviderBatch.lease_owner`) for
ECONOMY_LEASE_SECONDS, so no other runner takes them (a judged row moves to its judge
provider batch's lease); multi-turn chats go in waves (a chat's next turn is claimed once
its previous one is stored, with its verdict when the judge is on).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from batches.economy.store import poll, settle_judging
from batches.economy.submit import recover, submit_judges, submit_next
from batches.engine.process import (
    SliceResult,
    begin_slice,
    fail_batch,
    finish_slice,
    realtime_slice,
)
from batches.errors import BatchStateError
from batches.models import Batch, ProviderBatch, ProviderRequest
from chats.services import (
    ProviderError,
    ProviderNotConfigured,
    batch_api,
    check_chat_settings,
    supports_batch_api,
)

logger = logging.getLogger("batches.economy")

__all__ = [
    "check_economy",
    "poll_provider_batches",
    "process_economy",
    "request_cancel",
    "supports_batch_api",
]


def check_economy(ai_provider: str) -> None:
    """Raise ProviderError unless `ai_provider` has a batch API (economy mode)."""
    if not supports_batch_api(ai_provider):
        batch_api(ai_provider)  # raises ProviderError with the message


def process_economy(
    *,
    batch_id: int,
    seconds: float,
    concurrency: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> SliceResult:
    """One slice of an economy batch (see the module docstring); the arguments of
    process_for_duration (`concurrency` is unused: the provider decides)."""
    deadline = time.monotonic() + max(seconds, 0.0)
    now = timezone.now()
    batch = begin_slice(batch_id, now=now)
    done = failed = 0
    fatal = None
    if batch.status == Batch.Status.PROCESSING:
        try:
            check_chat_settings(
                ai_provider=batch.ai_provider,
                model=batch.model,
                search_provider=batch.search_provider,
            )
            api = batch_api(batch.ai_provider)
        except (ProviderNotConfigured, ProviderError) as exc:
            fatal = str(exc)
        else:
            try:
                done, failed = _work(batch, api, deadline, should_stop, on_progress)
            except ProviderNotConfigured as exc:
                fatal = str(exc)
    try:
        if fatal:
            fail_batch(batch_id, fatal)
        return finish_slice(batch_id, done=done, failed=failed)
    except Batch.DoesNotExist:
        raise BatchStateError("This batch was deleted while it was being processed.") from None


def _work(batch, api, deadline, should_stop, on_progress) -> tuple[int, int]:
    recover(batch=batch, api=api)
    done = failed = 0
    for pb in batch.provider_batches.filter(status=ProviderBatch.Status.SUBMITTED):
        d, f = poll(pb, api)
        done, failed = done + d, failed + f

    def go_on() -> bool:
        return (
            time.monotonic() < deadline
            and not (should_stop and should_stop())
            and Batch.objects.filter(pk=batch.pk).active().exists()
        )

    while go_on():
        sent, d, f = submit_judges(batch=batch, api=api)
        done, failed = done + d, failed + f
        if not sent:
            break
    if go_on() and batch.items.filter(realtime_retry=True).unfinished().exists():
        # Rows retried in real time: a real-time slice of those rows only (the engine's
        # claims, leases, writer, judge and real-time price).
        fatal, d, f = realtime_slice(
            batch, deadline=deadline, should_stop=should_stop, realtime_retry=True
        )
        done, failed = done + d, failed + f
        if fatal:
            raise ProviderNotConfigured(fatal)
    counts = batch.items.aggregate(rows=Count("id"), chats=Count("chat", distinct=True))
    multi_turn = counts["chats"] < counts["rows"]
    while go_on():
        sent, d, f = submit_next(batch=batch, api=api, multi_turn=multi_turn)
        done, failed = done + d, failed + f
        if not (sent or d or f):
            break
    if on_progress is not None and (done or failed):
        on_progress(done, failed)
    return done, failed


def request_cancel(batch: Batch) -> int:
    """Ask for the batch's open provider batches to be cancelled (inside cancel_batch's
    transaction); the poller sends the cancel and stores what came back."""
    return batch.provider_batches.filter(status__in=ProviderBatch.OPEN_STATUSES).update(
        cancel_requested=True
    )


def poll_provider_batches() -> int:
    """Poll the submitted provider batches of batches that are not active (cancelled,
    failed: their results are still kept), recover their half-done submissions, and store
    unjudged the answers that wait for a judge wave such a batch no longer sends. Active
    batches are polled by their slices. Returns the rows stored."""
    stored = 0
    open_batches = set(
        ProviderBatch.objects.filter(status__in=ProviderBatch.OPEN_STATUSES)
        .exclude(batch__status__in=Batch.ACTIVE_STATUSES)
        .values_list("batch_id", flat=True)
        .distinct()
    )
    # Answers that came back and wait for a judge wave that an inactive batch never sends.
    open_batches.update(
        ProviderRequest.objects.filter(outcome="judging")
        .filter(provider_batch__batch__status__in=(Batch.Status.CANCELLED, Batch.Status.FAILED))
        .values_list("provider_batch__batch_id", flat=True)
        .distinct()
    )
    for batch in Batch.objects.filter(pk__in=list(open_batches)):
        try:
            api = batch_api(batch.ai_provider)
            recover(batch=batch, api=api)
            for pb in batch.provider_batches.filter(status=ProviderBatch.Status.SUBMITTED):
                done, failed = poll(pb, api)
                stored += done + failed
            if batch.status in (Batch.Status.CANCELLED, Batch.Status.FAILED):
                # (A paused batch sends its judge wave once it resumes.)
                done, failed = settle_judging(batch)
                stored += done + failed
            if stored:
                with transaction.atomic():
                    Batch.objects.select_for_update().get(pk=batch.pk).recount()
        except (ProviderNotConfigured, ProviderError):
            logger.exception("Batch %s: its provider batches cannot be polled", batch.pk)
    return stored
