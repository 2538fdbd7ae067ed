"""Reads shared by the API, the pages and the admin; a fixed number of queries each."""

from __future__ import annotations

from django.db.models import Case, Count, F, IntegerField, Q, QuerySet, Value, When

from batches.models import Batch, BatchItem, JudgeVerdict

# Rows a grader says are wrong.
FAILING = Q(citation_match=False) | Q(answer_found=False) | Q(judge_verdict=JudgeVerdict.FAIL)
# The rows table's grade filters: "failing_first" keeps every row, failing ones first
# (then the least similar answers); the others keep only the rows they name.
GRADE_FILTERS = ("failing_first", "failing", "passing", "ungraded")


def batches_for(user) -> QuerySet[Batch]:
    """The batches `user` may see: their own; staff see all."""
    queryset = Batch.objects.select_related("uploader")
    if user.is_staff:
        return queryset
    return queryset.filter(uploader=user)


def batch_items(
    batch: Batch, *, status: str | None = None, grade: str | None = None
) -> QuerySet[BatchItem]:
    """A batch's rows in order, with their chat and answer, optionally of one status and
    one of GRADE_FILTERS."""
    queryset = batch.items.select_related("chat", "interaction").order_by("position")
    if status:
        queryset = queryset.filter(status=status)
    if grade == "failing":
        queryset = queryset.filter(FAILING)
    elif grade == "passing":
        queryset = queryset.filter(graded_at__isnull=False).exclude(FAILING)
    elif grade == "ungraded":
        queryset = queryset.filter(graded_at__isnull=True)
    if grade in ("failing_first", "failing"):
        queryset = queryset.annotate(
            failing=Case(
                When(FAILING, then=Value(0)), default=Value(1), output_field=IntegerField()
            )
        ).order_by("failing", F("answer_similarity").asc(nulls_last=True), "position")
    return queryset


def item_status_counts(batch: Batch) -> dict[str, int]:
    """Rows of `batch` per status, every status present (0 when none), in one query."""
    counts = dict.fromkeys(BatchItem.Status.values, 0)
    rows = batch.items.order_by().values_list("status").annotate(n=Count("id"))
    for status, n in rows:
        counts[status] = n
    return counts
