"""`process_for_duration`: the engine's entry point, and what it returns."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from batches.costs import batch_price, per_row_cost
from batches.engine.caller import CallerThread
from batches.engine.slices import Slice
from batches.errors import BatchStateError
from batches.estimate import refresh_estimate
from batches.models import Batch
from chats.services import ProviderNotConfigured, check_chat_settings, provider_loop


@dataclass(frozen=True)
class SliceResult:
    """What one call of process_for_duration did, and where the batch stands after it."""

    batch_id: int
    status: str
    done: int  # rows that finished done during this slice
    failed: int  # rows that finished failed during this slice
    remaining: int  # rows of the batch not finished (pending, running, cancelled)

    @property
    def should_continue(self) -> bool:
        """Whether a background runner should schedule another slice."""
        return self.status in Batch.ACTIVE_STATUSES and self.remaining > 0


def begin_slice(batch_id: int, *, now) -> Batch:
    """Step 1 of a slice (real-time or economy): the batch moved to processing (started
    now if it never was); cancelled or failed: BatchStateError."""
    batch = Batch.objects.get(pk=batch_id)
    if batch.status in (Batch.Status.CANCELLED, Batch.Status.FAILED):
        raise BatchStateError(
            f"This batch is {batch.get_status_display().lower()}; start it again to resume."
        )
    Batch.objects.filter(pk=batch_id).mark_processing(now=now)
    Batch.objects.filter(pk=batch_id, started_at__isnull=True).update(started_at=now)
    batch.refresh_from_db()
    return batch


def process_for_duration(
    *,
    batch_id: int,
    seconds: float,
    concurrency: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> SliceResult:
    """Process rows of a batch for about `seconds`; safe to call from many places at once.

    `concurrency` rows are in flight at once (default BATCH_CONCURRENCY). A long-running
    caller (run_batch, a worker) passes a long `seconds` with `should_stop` (polled before
    each row starts; rows in flight then finish) rather than many short slices, each of
    which ends by waiting for its slowest row. `on_progress(done, failed)` is called in
    this thread after every group of rows is recorded.

    1. move an uploaded/queued batch to processing (cancelled or failed: BatchStateError);
    2. check the providers are configured, or fail the batch without burning rows;
    3. run a slice (see Slice) on the provider loop, serving its database work here;
       rows in flight at the deadline are finished, not dropped;
    4. recount the counters and last_processed_index, and complete the batch when no
       row is left.
    """
    now = timezone.now()
    batch = begin_slice(batch_id, now=now)

    fatal = None
    done = failed = 0
    if batch.status == Batch.Status.PROCESSING:
        try:
            check_chat_settings(
                ai_provider=batch.ai_provider,
                model=batch.model,
                search_provider=batch.search_provider,
            )
        except ProviderNotConfigured as exc:
            fatal = str(exc)
        else:
            fatal, done, failed = realtime_slice(
                batch,
                deadline=time.monotonic() + max(seconds, 0.0),
                concurrency=concurrency,
                should_stop=should_stop,
                on_progress=on_progress,
            )
    try:
        if fatal:
            fail_batch(batch_id, fatal)
        return finish_slice(batch_id, done=done, failed=failed)
    except Batch.DoesNotExist:
        raise BatchStateError("This batch was deleted while it was being processed.") from None


def realtime_slice(
    batch: Batch,
    *,
    deadline: float,
    concurrency: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    realtime_retry: bool | None = None,
) -> tuple[str | None, int, int]:
    """Step 3 of process_for_duration for a processing batch whose providers are
    configured: a Slice until `deadline` (time.monotonic()); (fatal, done, failed).
    Economy mode runs it with `realtime_retry=True` for the rows it retries in real time."""
    # Only batches with multi-turn chats pay for the "earlier turn unfinished" check.
    counts = batch.items.aggregate(rows=Count("id"), chats=Count("chat", distinct=True))
    price = batch_price(batch)
    if batch.budget is not None and price is not None and not batch.estimate:
        # Made from the pages (the API and run_batch estimate at create): the
        # budget check needs a row's estimated cost before rows are measured.
        refresh_estimate(batch)
    db = CallerThread()
    work = Slice(
        batch_id=batch.pk,
        deadline=deadline,
        concurrency=max(int(concurrency or settings.BATCH_CONCURRENCY), 1),
        multi_turn=counts["chats"] < counts["rows"],
        db=db,
        should_stop=should_stop,
        on_progress=on_progress,
        provider=batch.ai_provider,
        model=batch.model,
        judge_enabled=batch.judge_enabled,
        price=price,
        budget=None if batch.budget is None or price is None else float(batch.budget),
        per_call=per_row_cost(batch),
        spent=batch.spent,
        extra_per_call=float((batch.estimate or {}).get("extra_cost_per_row") or 0),
        realtime_retry=realtime_retry,
    )
    db.serve(asyncio.run_coroutine_threadsafe(work.run(), provider_loop()))
    return work.fatal, work.done, work.failed


def fail_batch(batch_id: int, message: str) -> None:
    """A batch-level fault (provider not configured): stop the batch, burn no rows."""
    with transaction.atomic():
        batch = Batch.objects.select_for_update().get(pk=batch_id)
        if batch.is_active:
            batch.mark_failed(message)


def finish_slice(batch_id: int, *, done: int, failed: int) -> SliceResult:
    """After a slice, under the batch lock: rows given back after a cancel are cancelled
    too, the counters are recounted, and a batch with no row left is completed."""
    with transaction.atomic():
        batch = Batch.objects.select_for_update().get(pk=batch_id)
        if batch.status == Batch.Status.CANCELLED:
            # Rows released after the cancel (claimed, not started) are cancelled too.
            batch.items.cancel_pending()
        batch.recount(answers=False)  # the writer kept them, in the rows' transactions
        unfinished = batch.items.unfinished().exists()
        # A batch paused by its budget as its last rows finished has nothing left: done.
        if (batch.is_active or batch.is_paused) and not unfinished:
            batch.mark_completed()
    return SliceResult(
        batch_id=batch_id, status=batch.status, done=done, failed=failed, remaining=batch.remaining
    )
