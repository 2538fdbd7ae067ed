"""Celery tasks: thin wrappers over batches.services (ids in, re-fetch, call a service).

The Celery runner: `schedule_slices` is registered with batches.runners at start
(BatchesConfig.ready), so the lifecycle services enqueue slices without importing this
module.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

import batchchat.celery  # noqa: F401 - the configured app, before the tasks bind to one
from batches import economy, services
from batches.events import run_slice
from batches.models import Batch


def schedule_slices(batch_id: int) -> None:
    """Start BATCH_PARALLEL_SLICES slice chains once the transaction commits."""
    for _ in range(max(settings.BATCH_PARALLEL_SLICES, 1)):
        process_batch_slice.delay_on_commit(batch_id)


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def process_batch_slice(batch_id: int) -> None:
    """Run one slice; re-enqueue while work remains, so a chain runs the batch to its end.

    acks_late: a worker killed mid-slice leaves the message to be redelivered, and the
    rows it held are claimed again once their leases expire.
    """
    try:
        result = run_slice(batch_id=batch_id, seconds=settings.BATCH_SLICE_SECONDS, runner="celery")
    except (Batch.DoesNotExist, services.BatchStateError):
        return  # deleted, cancelled or failed meanwhile: the chain ends here
    if result.should_continue:
        # Nothing claimable (rows leased by another worker, or in a provider batch in
        # economy mode): wait before asking again.
        countdown = 0 if result.done or result.failed else 1
        if not (result.done or result.failed) and _is_economy(batch_id):
            countdown = max(settings.ECONOMY_POLL_SECONDS, 1)
        process_batch_slice.apply_async((batch_id,), countdown=countdown)


def _is_economy(batch_id: int) -> bool:
    return Batch.objects.filter(pk=batch_id, mode=Batch.Mode.ECONOMY).exists()


@shared_task(ignore_result=True)
def poll_provider_batches() -> None:
    """Beat: poll the provider batches of cancelled economy batches (active ones are
    polled by their slices)."""
    economy.poll_provider_batches()


@shared_task(ignore_result=True)
def delete_expired_drafts() -> None:
    """Beat: delete upload drafts past their age."""
    services.delete_expired_drafts()


@shared_task(ignore_result=True)
def recover_stalled_batches() -> None:
    """Beat: restart slice chains of active batches that nobody is working on."""
    services.recover_stalled_batches(idle_seconds=settings.CELERY_BEAT_RECOVER_SECONDS)
