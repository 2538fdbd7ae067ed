"""One log line per batch event, with the batch id and its counts.

Events: `started` (the first slice of a queued batch), `slice` (a slice that finished
rows), `throttled` (rows resting after a rate limit), `provider_down` (an outage pauses
it), `completed`, `failed`, `cancelled`.
Plain logs read `batch 12 slice: runner=worker done=8 failed=0 remaining=92 ...`; with
LOG_FORMAT=json every field is a key of its own.

`run_slice` is how every runner (the worker, the pages, the API, Celery, run_batch) calls
the engine, so the events are the same whoever drives the batch. With several runners on
one batch, a transition (completed) may be seen, and logged, by more than one of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from batches import economy, engine
from batches.engine import SliceResult
from batches.models import Batch, BatchItem

logger = logging.getLogger("batchchat.batches")


def log_batch_event(event: str, *, batch_id: int, level: int = logging.INFO, **fields) -> None:
    details = " ".join(f"{key}={value}" for key, value in fields.items())
    logger.log(
        level,
        "batch %s %s: %s",
        batch_id,
        event,
        details,
        extra={"event": event, "batch_id": batch_id, **fields},
    )


def resting_rows(batch_id: int) -> int:
    """Rows waiting out a rate limit (429/5xx): pending with a retry time ahead."""
    return BatchItem.objects.filter(batch_id=batch_id).resting().count()


def run_slice(
    *,
    batch_id: int,
    seconds: float,
    runner: str,
    concurrency: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> SliceResult:
    """`process_for_duration` (same arguments), plus the batch's event lines. Raises what
    it raises."""
    before, mode = Batch.objects.filter(pk=batch_id).values_list("status", "mode").first() or (
        None,
        None,
    )
    # Through the package: what tests replace. An economy batch's slice submits to and
    # polls the provider's batch API (batches.economy).
    process = economy.process_economy if mode == Batch.Mode.ECONOMY else engine.process_for_duration
    result = process(
        batch_id=batch_id,
        seconds=seconds,
        concurrency=concurrency,
        should_stop=should_stop,
        on_progress=on_progress,
    )
    counts = {"runner": runner, "done": result.done, "failed": result.failed}
    if before in (Batch.Status.UPLOADED, Batch.Status.QUEUED):
        log_batch_event("started", batch_id=batch_id, **counts, remaining=result.remaining)
    if result.done or result.failed:
        log_batch_event(
            "slice", batch_id=batch_id, **counts, remaining=result.remaining, status=result.status
        )
    if result.status in Batch.ACTIVE_STATUSES:
        throttle = Batch.objects.filter(pk=batch_id).values_list("throttle", flat=True).first()
        resting = resting_rows(batch_id)
        throttle = dict(throttle or {})
        outage = throttle.pop("outage", None)
        if outage:
            # The provider does not answer (its circuit breaker is open): rows wait.
            log_batch_event(
                "provider_down",
                batch_id=batch_id,
                level=logging.WARNING,
                runner=runner,
                reason=outage.get("reason"),
                remaining=result.remaining,
            )
        if throttle.get("limit") or throttle.get("until") or resting:
            # The provider's rate limit holds the batch back (published by the engine:
            # a pause until a time, or fewer calls in flight), or rows wait out a 429.
            throttle = throttle or {}
            log_batch_event(
                "throttled",
                batch_id=batch_id,
                level=logging.WARNING,
                runner=runner,
                resting=resting,
                remaining=result.remaining,
                limit=throttle.get("limit"),
                until=throttle.get("until"),
            )
    if before in Batch.ACTIVE_STATUSES and result.status not in Batch.ACTIVE_STATUSES:
        batch = Batch.objects.filter(pk=batch_id).first()
        if batch is not None:
            totals = {
                "runner": runner,
                "total": batch.total_items,
                "done": batch.processed_items,
                "failed": batch.failed_items,
            }
            if result.status == Batch.Status.FAILED:
                log_batch_event(
                    "failed", batch_id=batch_id, level=logging.ERROR, **totals, error=batch.error
                )
            else:
                log_batch_event(str(result.status), batch_id=batch_id, **totals)
    return result
