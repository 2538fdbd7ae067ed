"""Reads shared by the API, the pages and the admin; a fixed number of queries each."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from batches.models import Batch, BatchItem


def batches_for(user) -> QuerySet[Batch]:
    """The batches `user` may see: their own; staff see all (see may_act_on for actions)."""
    queryset = Batch.objects.select_related("uploader")
    if user.is_staff:
        return queryset
    return queryset.filter(uploader=user)


def may_act_on(user, batch: Batch) -> bool:
    """The one rule for actions (start, resume, process, cancel, retry, delete), used by the
    pages, the API and the templates: the batch's owner, or a superuser. Other staff may
    read every batch (support, audits) but change none that is not theirs, as in the
    admin, where they hold no change permission."""
    if user.is_superuser:
        return True
    return batch.uploader_id is not None and batch.uploader_id == user.pk


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
