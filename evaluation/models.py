"""Grading work of a batch that runs in the background: "Grade again" with the AI judge,
and judging again the rows the judge gave no verdict."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class RegradeJob(models.Model):
    """One "Grade again" of a batch: the rows to grade, how many are done, and its state.

    Rows are graded in position order in chunks (`evaluation.regrade.advance`); `last_position`
    is the last row graded, so a job interrupted anywhere resumes where it stopped."""

    class Status(models.TextChoices):
        RUNNING = "running", _("Grading")
        DONE = "done", _("Graded")
        CANCELLED = "cancelled", _("Cancelled")

    batch = models.ForeignKey("batches.Batch", on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RUNNING)
    # Only the rows the judge gave no verdict (judge_verdict=error), not every answered row.
    only_no_verdict = models.BooleanField(default=False)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    last_position = models.IntegerField(default=-1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["batch", "status"], name="regrade_batch_status")]

    def __str__(self) -> str:
        return f"regrade {self.pk} of batch {self.batch_id} ({self.status})"

    @property
    def active(self) -> bool:
        return self.status == self.Status.RUNNING

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else 100
