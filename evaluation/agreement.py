"""How far the automatic verdicts and the AI judge agree with the expert reviewers.

`review_summaries(batch_ids)` (one query for any number of batches) and
`review_summary_of(items)` (any rows, e.g. a set's runs) give, per batch:

- reviewed n of N: N is the rows with an answer (done), n those with a review verdict;
- the share of each review verdict among the reviewed rows;
- for the automatic verdict and for the AI judge: the rows where both it and the
  reviewer say pass or fail, the confusion counts (reviewer × machine), the percent
  agreement and Cohen's kappa.

The review is read as a verdict by evaluation.review.REVIEW_AS_VERDICT: correct = pass,
partly correct and incorrect = fail; "cannot tell" (and a row the machine left
ungraded, or the judge gave no verdict) is left out of that comparison.

Cohen's kappa = (p_o - p_e) / (1 - p_e), p_o the observed agreement and p_e the agreement
expected by chance from each side's pass and fail shares. When p_e = 1 (both sides gave
one same answer to every row) kappa is undefined: None, shown as "—".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import Count, QuerySet
from django.utils.translation import gettext as _

from batches.models import BatchItem, JudgeVerdict, Verdict
from chats.models import ReviewVerdict
from evaluation.review import REVIEW_AS_VERDICT

PASS, FAIL = Verdict.PASS.value, Verdict.FAIL.value


@dataclass
class Agreement:
    """Reviewer (rows) × machine (columns) pass/fail counts."""

    pass_pass: int = 0  # reviewer pass, machine pass
    pass_fail: int = 0  # reviewer pass, machine fail
    fail_pass: int = 0  # reviewer fail, machine pass
    fail_fail: int = 0

    def add(self, reviewer: str, machine: str, n: int) -> None:
        name = f"{reviewer}_{machine}"
        setattr(self, name, getattr(self, name) + n)

    @property
    def compared(self) -> int:
        return self.pass_pass + self.pass_fail + self.fail_pass + self.fail_fail

    @property
    def agreed(self) -> int:
        return self.pass_pass + self.fail_fail

    @property
    def percent(self) -> float | None:
        """Observed agreement, 0-100 (one decimal); None when nothing is compared."""
        return round(100 * self.agreed / self.compared, 1) if self.compared else None

    @property
    def kappa(self) -> float | None:
        n = self.compared
        if not n:
            return None
        observed = self.agreed / n
        reviewer_pass = (self.pass_pass + self.pass_fail) / n
        machine_pass = (self.pass_pass + self.fail_pass) / n
        chance = reviewer_pass * machine_pass + (1 - reviewer_pass) * (1 - machine_pass)
        if chance >= 1:
            return None
        return round((observed - chance) / (1 - chance), 4)

    def as_dict(self) -> dict:
        return {
            "compared": self.compared,
            "agreed": self.agreed,
            "percent": self.percent,
            "kappa": self.kappa,
            "confusion": {
                "reviewerPassMachinePass": self.pass_pass,
                "reviewerPassMachineFail": self.pass_fail,
                "reviewerFailMachinePass": self.fail_pass,
                "reviewerFailMachineFail": self.fail_fail,
            },
        }


@dataclass
class ReviewSummary:
    answered: int = 0
    reviewed: int = 0
    verdicts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ReviewVerdict.values, 0))
    automatic: Agreement = field(default_factory=Agreement)
    judge: Agreement = field(default_factory=Agreement)

    @property
    def shares(self) -> list[tuple[str, str, int, float]]:
        """(value, label, count, percent of the reviewed rows) per review verdict."""
        return [
            (
                value,
                label,
                self.verdicts[value],
                round(100 * self.verdicts[value] / self.reviewed, 1) if self.reviewed else 0.0,
            )
            for value, label in ReviewVerdict.choices
        ]

    def as_dict(self) -> dict:
        return {
            "answered": self.answered,
            "reviewed": self.reviewed,
            "verdicts": {
                value: {"count": count, "percent": percent}
                for value, _label, count, percent in self.shares
            },
            "automatic": self.automatic.as_dict(),
            "judge": self.judge.as_dict(),
        }


def _add(summary: ReviewSummary, review: str, verdict: str, judge: str, n: int) -> None:
    summary.answered += n
    if not review:
        return
    summary.reviewed += n
    summary.verdicts[review] = summary.verdicts.get(review, 0) + n
    reviewer = REVIEW_AS_VERDICT.get(review)
    if reviewer is None:
        return
    if verdict in (PASS, FAIL):
        summary.automatic.add(reviewer, verdict, n)
    if judge in (JudgeVerdict.PASS, JudgeVerdict.FAIL):
        summary.judge.add(reviewer, judge, n)


def _grouped(items: QuerySet[BatchItem], *keys: str):
    return (
        items.filter(status=BatchItem.Status.DONE, interaction__isnull=False)
        .order_by()
        .values_list(*keys, "interaction__review_verdict", "verdict", "judge_verdict")
        .annotate(n=Count("id"))
    )


def review_summaries(batch_ids: Iterable[int]) -> dict[int, ReviewSummary]:
    """ReviewSummary per batch id, in one query."""
    ids = list(batch_ids)
    summaries = {batch_id: ReviewSummary() for batch_id in ids}
    if not ids:
        return summaries
    for batch_id, review, verdict, judge, n in _grouped(
        BatchItem.objects.filter(batch_id__in=ids), "batch_id"
    ):
        _add(summaries[batch_id], review, verdict, judge, n)
    return summaries


def review_summary_of(items: QuerySet[BatchItem]) -> ReviewSummary:
    """One ReviewSummary over any rows (e.g. every run of a question set), one query."""
    summary = ReviewSummary()
    for review, verdict, judge, n in _grouped(items):
        _add(summary, review, verdict, judge, n)
    return summary


def set_review_summary(question_set) -> ReviewSummary:
    """Over every run of a question set (for the set page)."""
    return review_summary_of(BatchItem.objects.filter(batch__set_run__question_set=question_set))


def agreement_rows(summary: ReviewSummary) -> list[tuple[str, str, object]]:
    """The agreement table's rows (evaluation/_review_summary.html): the automatic verdict
    and the AI judge, each against the reviewers."""
    return [
        ("automatic", _("Automatic verdict"), summary.automatic),
        ("judge", _("AI judge"), summary.judge),
    ]
