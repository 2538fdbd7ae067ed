"""A question answered k times (a run's `repeats`): its verdicts read as one result.

One place decides what the k verdicts of a question mean, for the batch page, the set's
grid and the API alike (Inspect AI's epochs, promptfoo's --repeat):
- passes out of graded (a row with verdict "ungraded", or not yet graded, is not counted
  as a pass nor as a fail);
- pass@k: at least one of the k answers passed;
- pass^k: all k answers passed (every one graded and passing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from batches.models import Verdict


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
