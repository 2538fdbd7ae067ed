"""Reads shared by the API, the pages and the admin; a fixed number of queries each."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from batches.models import Batch, BatchItem
from chats.models import GuardStatus

# Guard outcomes shown (counted and filtered) on the batch page and in the API.
GUARD_FILTERS = (GuardStatus.BLOCKED, GuardStatus.REDACTED)


def batches_for(user) -> QuerySet[Batch]:
    """The batches `user` may see: their own; staff see all."""
    queryset = Batch.objects.select_related("uploader")
    if user.is_staff:
        return queryset
    return queryset.filter(uploader=user)


def batch_items(
    batch: Batch, *, status: str | None = None, guard: str | None = None
) -> QuerySet[BatchItem]:
    """A batch's rows in order, with their chat and answer, optionally of one status
    and/or one guard outcome (`blocked`, `redacted`)."""
    queryset = batch.items.select_related("chat", "interaction").order_by("position")
    if status:
        queryset = queryset.filter(status=status)
    if guard:
        queryset = queryset.filter(interaction__guard_status=guard)
    return queryset


def guard_counts_for(batch_ids: list[int]) -> dict[int, dict[str, int]]:
    """Rows per guard outcome (blocked, redacted) of each batch, in one query; every
    batch and outcome present (0 when none)."""
    counts = {batch_id: dict.fromkeys(GUARD_FILTERS, 0) for batch_id in batch_ids}
    if not batch_ids:
        return counts
    rows = (
        BatchItem.objects.filter(
            batch_id__in=batch_ids, interaction__guard_status__in=GUARD_FILTERS
        )
        .order_by()
        .values_list("batch_id", "interaction__guard_status")
        .annotate(n=Count("id"))
    )
    for batch_id, outcome, n in rows:
        counts[batch_id][outcome] = n
    return counts


def guard_counts(batch: Batch) -> dict[str, int]:
    """Rows of `batch` per guard outcome (blocked, redacted), in one query."""
    return guard_counts_for([batch.pk])[batch.pk]


def item_status_counts(batch: Batch) -> dict[str, int]:
    """Rows of `batch` per status, every status present (0 when none), in one query."""
    counts = dict.fromkeys(BatchItem.Status.values, 0)
    rows = batch.items.order_by().values_list("status").annotate(n=Count("id"))
    for status, n in rows:
        counts[status] = n
    return counts
