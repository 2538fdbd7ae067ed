"""Reads shared by the API, the pages and the admin; a fixed number of queries each."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, QuerySet
from django.utils import timezone

from batches.models import Batch, BatchItem, WorkerHeartbeat


def live_workers() -> QuerySet[WorkerHeartbeat]:
    """`run_worker` processes whose heartbeat is younger than WORKER_HEARTBEAT_TIMEOUT."""
    cutoff = timezone.now() - timedelta(seconds=settings.WORKER_HEARTBEAT_TIMEOUT)
    return WorkerHeartbeat.objects.filter(last_seen__gte=cutoff)


def worker_alive() -> bool:
    """Whether a `run_worker` is alive: then the pages leave the batches to it."""
    return live_workers().exists()


def with_activity(queryset: QuerySet[Batch]) -> QuerySet[Batch]:
    """Annotate what `Batch.activity` needs, inside the same query (no query per batch)."""
    now = timezone.now()
    live_lease = BatchItem.objects.filter(
        batch_id=OuterRef("pk"), status=BatchItem.Status.RUNNING, lease_expires_at__gte=now
    )
    return queryset.annotate(worker_alive=Exists(live_workers()), has_live_lease=Exists(live_lease))


def batches_for(user) -> QuerySet[Batch]:
    """The batches `user` may see: their own; staff see all (with their activity)."""
    queryset = with_activity(Batch.objects.select_related("uploader"))
    if user.is_staff:
        return queryset
    return queryset.filter(uploader=user)


def batch_items(batch: Batch, *, status: str | None = None) -> QuerySet[BatchItem]:
    """A batch's rows in order, with their chat and answer, optionally of one status."""
    queryset = batch.items.select_related("chat", "interaction").order_by("position")
    if status:
        queryset = queryset.filter(status=status)
    return queryset


def item_status_counts(batch: Batch) -> dict[str, int]:
    """Rows of `batch` per status, every status present (0 when none), in one query."""
    counts = dict.fromkeys(BatchItem.Status.values, 0)
    rows = batch.items.order_by().values_list("status").annotate(n=Count("id"))
    for status, n in rows:
        counts[status] = n
    return counts
