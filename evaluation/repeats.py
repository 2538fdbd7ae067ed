"""A question answered k times (a run's `repeats`): its verdicts read as one result.

One place decides what the k verdicts of a question mean, for the batch page, the set's
grid and the API alike (Inspect AI's epochs, promptfoo's --repeat):
- passes out of graded (a row with verdict "ungraded", or not yet graded, is not counted
  as a pass nor as a fail);
- pass@k: at least one of the k answers passed;
- pass^k: all k answers passed (every one graded and passing);
- agreement (`question_results`, `answer_agreement`): the mean pairwise similarity of the
  answered repeats' answers (the grading similarity).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from batches.models import BatchItem, Verdict


@dataclass(frozen=True)
class RepeatResult:
    verdicts: tuple[str, ...]  # one per repeat, in repeat order ("" = not graded yet)

    @property
    def k(self) -> int:
        return len(self.verdicts)

    @property
    def passes(self) -> int:
        return sum(v == Verdict.PASS for v in self.verdicts)

    @property
    def graded(self) -> int:
        return sum(v in (Verdict.PASS, Verdict.FAIL) for v in self.verdicts)

    @property
    def pass_at_k(self) -> bool | None:
        """At least one pass; None while nothing is graded."""
        if self.passes:
            return True
        return False if self.graded else None

    @property
    def pass_all_k(self) -> bool | None:
        """Every repeat passed; None while nothing is graded."""
        if not self.graded:
            return None
        return self.passes == self.k

    @property
    def flaky(self) -> bool:
        """The graded repeats disagree (some pass, some fail)."""
        return 0 < self.passes < self.graded


def repeat_result(verdicts: Sequence[str]) -> RepeatResult:
    return RepeatResult(tuple(v or "" for v in verdicts))


def answer_agreement(answers: Sequence[str]) -> float | None:
    """How much the k answers of a question agree: the mean pairwise similarity of the
    answers (evaluation.grading.answer_similarity, ROUGE-L F1 over words: 1 = the same
    words in the same order). None with fewer than two answers."""
    from evaluation.grading import answer_similarity

    scores = [
        answer_similarity(first, second) or 0.0
        for index, first in enumerate(answers)
        for second in answers[index + 1 :]
    ]
    return round(sum(scores) / len(scores), 4) if scores else None


@dataclass(frozen=True)
class QuestionResult:
    """One question of a run answered k times: its verdicts (RepeatResult) and how much
    its answers agree (over the repeats that were answered)."""

    result: RepeatResult
    agreement: float | None

    @property
    def k(self) -> int:
        return self.result.k

    @property
    def passes(self) -> int:
        return self.result.passes

    @property
    def graded(self) -> int:
        return self.result.graded

    @property
    def pass_at_k(self) -> bool | None:
        return self.result.pass_at_k

    @property
    def pass_all_k(self) -> bool | None:
        return self.result.pass_all_k

    @property
    def flaky(self) -> bool:
        return self.result.flaky


def question_results(items: Iterable) -> dict[int, QuestionResult]:
    """The rows of a batch (BatchItems with `interaction` loaded) grouped by question:
    {question_index: QuestionResult}, verdicts in repeat order. Only answered rows (done,
    with an interaction) count towards the agreement."""
    grouped: dict[int, list] = {}
    for item in items:
        grouped.setdefault(item.question_index, []).append(item)
    results = {}
    for index, rows in grouped.items():
        rows.sort(key=lambda item: item.repeat)
        answers = [
            item.interaction.answer
            for item in rows
            if item.status == BatchItem.Status.DONE and item.interaction is not None
        ]
        results[index] = QuestionResult(
            repeat_result([item.verdict for item in rows]), answer_agreement(answers)
        )
    return results
