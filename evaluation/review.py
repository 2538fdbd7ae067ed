"""Expert review of answers (issue 24): a verdict and notes per row, on the row's
Interaction (chats.Interaction.review_*), so that every row, repeat and run keeps its own.

- `save_review(item=..., verdict=..., notes=..., user=...)`: one row, from review mode or
  the API. A blank verdict and blank notes clear the review.
- `review_items(batch, review_filter=...)`: the rows of review mode, with its filters
  (REVIEW_FILTERS).
- How a review meets the automatic verdicts (pass / fail): REVIEW_AS_VERDICT. `correct`
  is a pass, `incorrect` a fail, and `partly_correct` a fail too: an answer an expert
  found only partly right is not one to ship as is. `cannot_tell` is no verdict: the
  row keeps its automatic verdict and takes no part in agreement.

The spreadsheet round trip is evaluation.review_files; agreement figures are
evaluation.agreement.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from batches.models import Batch, BatchItem, JudgeVerdict, Verdict
from chats.models import Interaction, ReviewVerdict

REVIEW_AS_VERDICT: dict[str, str] = {
    ReviewVerdict.CORRECT: Verdict.PASS,
    ReviewVerdict.PARTLY_CORRECT: Verdict.FAIL,
    ReviewVerdict.INCORRECT: Verdict.FAIL,
}
PASSING_REVIEWS = tuple(k for k, v in REVIEW_AS_VERDICT.items() if v == Verdict.PASS)
FAILING_REVIEWS = tuple(k for k, v in REVIEW_AS_VERDICT.items() if v == Verdict.FAIL)
# Longest notes kept (a pasted essay is cut, not refused).
MAX_NOTES = 10_000

# Review mode's filters: key -> rows kept (over BatchItem).
REVIEWED = ~Q(interaction__review_verdict="")
_REVIEW_PASS = Q(interaction__review_verdict__in=PASSING_REVIEWS)
_REVIEW_FAIL = Q(interaction__review_verdict__in=FAILING_REVIEWS)
REVIEW_FILTERS: dict[str, Q] = {
    "not_reviewed": Q(interaction__review_verdict=""),
    "reviewed": REVIEWED,
    # The review and the automatic verdict say opposite things.
    "disagrees_verdict": (_REVIEW_PASS & Q(verdict=Verdict.FAIL))
    | (_REVIEW_FAIL & Q(verdict=Verdict.PASS)),
    # The AI judge and the reviewer say opposite things.
    "judge_disagrees": (_REVIEW_PASS & Q(judge_verdict=JudgeVerdict.FAIL))
    | (_REVIEW_FAIL & Q(judge_verdict=JudgeVerdict.PASS)),
}


class ReviewError(ValueError):
    """A review that cannot be saved (unknown verdict, row not answered)."""


def clean_verdict(value: str) -> str:
    value = (value or "").strip()
    if value and value not in ReviewVerdict.values:
        raise ReviewError(f"Unknown review verdict '{value}'.")
    return value


def save_review(*, item: BatchItem, verdict: str, notes: str, user) -> Interaction:
    """Record `user`'s review of the row's answer (who and when too); returns the turn."""
    verdict = clean_verdict(verdict)
    interaction = item.interaction
    if interaction is None:
        raise ReviewError("This row has no answer to review yet.")
    notes = (notes or "").strip()[:MAX_NOTES]
    interaction.review_verdict = verdict
    interaction.review_notes = notes
    cleared = not verdict and not notes
    interaction.reviewed_by = None if cleared else user
    interaction.reviewed_at = None if cleared else timezone.now()
    interaction.save(
        update_fields=["review_verdict", "review_notes", "reviewed_by", "reviewed_at", "updated_at"]
    )
    return interaction


@transaction.atomic
def save_reviews(*, changes: list[tuple[Interaction, str, str]], user) -> int:
    """Several reviews in one transaction (the spreadsheet's apply): (turn, verdict,
    notes) each, already validated. Returns how many were saved."""
    now = timezone.now()
    for interaction, verdict, notes in changes:
        cleared = not verdict and not notes
        interaction.review_verdict = verdict
        interaction.review_notes = notes[:MAX_NOTES]
        interaction.reviewed_by = None if cleared else user
        interaction.reviewed_at = None if cleared else now
        interaction.updated_at = now
    Interaction.objects.bulk_update(
        [interaction for interaction, _verdict, _notes in changes],
        ["review_verdict", "review_notes", "reviewed_by", "reviewed_at", "updated_at"],
        batch_size=500,
    )
    return len(changes)


def review_items(batch: Batch, *, review_filter: str = "") -> QuerySet[BatchItem]:
    """The rows review mode walks through: answered rows (done, with a turn), in row order,
    kept by one of REVIEW_FILTERS (none: all)."""
    queryset = (
        batch.items.filter(status=BatchItem.Status.DONE, interaction__isnull=False)
        .select_related("chat", "interaction", "interaction__reviewed_by")
        .order_by("position")
    )
    condition = REVIEW_FILTERS.get(review_filter)
    if condition is not None:
        queryset = queryset.filter(condition)
    return queryset
