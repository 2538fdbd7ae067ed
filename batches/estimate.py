"""What a batch will cost before it starts: the provider calls it will make.

`projected_calls(batch)` is the one place that does the arithmetic the start step shows
(and the API's `projectedCalls`); a cost estimate builds on it (calls × tokens × prices).

- answers: one call per row (questions × repeats), except the rows the guard's offline
  step blocks at upload (`Batch.upload_guard`), which are answered with a fixed message
  and send nothing;
- the AI judge, when the batch has it on: one call per row it will have something to
  judge (the graders' count: rows with an expected answer), blocked rows excepted;
- the guard's AI check, when GUARD_AI_CHECK is on and the provider is a language model:
  one call per row sent (a retry of an unreadable reply is not counted).

A projection, not a promise: retries, rows blocked only by the answer-time guard, and a
judge that finds an empty answer change the real count a little.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from batches import hooks
from batches.models import Batch
from chats.services import uses_language_model


@dataclass(frozen=True)
class ProjectedCalls:
    questions: int
    repeats: int
    rows: int  # questions × repeats
    blocked_rows: int
    answer_calls: int
    judge_calls: int
    guard_calls: int

    @property
    def total(self) -> int:
        return self.answer_calls + self.judge_calls + self.guard_calls


def projected_calls(batch: Batch) -> ProjectedCalls:
    """The provider calls `batch` will make from the start (module docstring). One query
    when the judge is on (its rows to judge), none otherwise."""
    repeats = max(batch.repeats or 1, 1)
    rows = batch.total_items
    blocked = min(int((batch.upload_guard or {}).get("blocked") or 0), rows)
    sent = rows - blocked
    judge = 0
    if batch.judge_enabled:
        judge = min(hooks.graders().judge_rows(batch), sent)
    guard = sent if settings.GUARD_AI_CHECK and uses_language_model(batch.ai_provider) else 0
    return ProjectedCalls(
        questions=rows // repeats,
        repeats=repeats,
        rows=rows,
        blocked_rows=blocked,
        answer_calls=sent,
        judge_calls=judge,
        guard_calls=guard,
    )
