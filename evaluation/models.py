"""Question sets: the questions a team runs again and again, and the runs (batches) of them.

Membership lives here, pointing at batches (`Run.batch`), not in batches pointing here:
batches never imports evaluation, and a foreign key from `batches` to `evaluation` would
make the batches migrations depend on this app's. A run's rows meet their questions by
their question index (`Question.position` = the row's place in the upload), and keep
their own copy of the expectations they were graded against (BatchItem.expected_*), so
a run of an older version still shows what it was asked.

Versions: `QuestionSet.version` counts the changes of expectations; a changed question
records the version it changed in (`Question.version`); each run records the version it
used (`Run.version`).

And the grading work of a batch that runs in the background (`RegradeJob`): "Grade again"
with the AI judge, and judging again the rows the judge gave no verdict.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from chats.models import URL_MAX_LENGTH


class QuestionSet(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="question_sets",
    )
    name = models.CharField(max_length=200)
    version = models.PositiveIntegerField(default=1)
    # sha256 of the current questions and expectations (evaluation.fingerprints): an
    # identical upload finds its set by it.
    fingerprint = models.CharField(max_length=64, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["owner", "fingerprint"], name="set_owner_fingerprint")]

    def __str__(self) -> str:
        return f"{self.name} (v{self.version})"

    def get_absolute_url(self) -> str:
        return reverse("evaluation:set", args=[self.pk])


class Question(models.Model):
    question_set = models.ForeignKey(
        QuestionSet, on_delete=models.CASCADE, related_name="questions"
    )
    position = models.PositiveIntegerField()
    question = models.TextField()
    referring_url = models.CharField(max_length=URL_MAX_LENGTH, blank=True)
    # Rows with the same key are turns of one conversation ("" = a chat of its own).
    chat_key = models.CharField(max_length=64, blank=True)
    expected_answer = models.TextField(blank=True)
    expected_citation_url = models.CharField(max_length=URL_MAX_LENGTH, blank=True)
    expected_outcome = models.CharField(max_length=24, blank=True)
    # Every column of the upload's row, as uploaded.
    columns = models.JSONField(default=dict, blank=True)
    # The set version in which these expectations were set.
    version = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["question_set", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["question_set", "position"], name="unique_set_question_position"
            )
        ]

    def __str__(self) -> str:
        return f"{self.question_set_id} #{self.position + 1}"


class Run(models.Model):
    """A batch as a run of a set (one per batch; deleting the batch deletes its run)."""

    batch = models.OneToOneField("batches.Batch", on_delete=models.CASCADE, related_name="set_run")
    question_set = models.ForeignKey(QuestionSet, on_delete=models.CASCADE, related_name="runs")
    version = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-batch__created_at", "-batch_id"]

    def __str__(self) -> str:
        return f"batch {self.batch_id} of set {self.question_set_id} v{self.version}"


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


class Share(models.Model):
    """A batch or a whole question set shared by its owner with another user, as
    reviewer: they may read, export and review it (evaluation.sharing), nothing else. A
    set's share covers every run of the set, the later ones too."""

    class Role(models.TextChoices):
        REVIEWER = "reviewer", _("Reviewer")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="review_shares"
    )
    batch = models.ForeignKey(
        "batches.Batch", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    question_set = models.ForeignKey(
        QuestionSet, null=True, blank=True, on_delete=models.CASCADE, related_name="shares"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.REVIEWER)
    shared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(batch__isnull=False, question_set__isnull=True)
                | models.Q(batch__isnull=True, question_set__isnull=False),
                name="share_batch_or_set",
            ),
            models.UniqueConstraint(fields=["user", "batch"], name="unique_share_user_batch"),
            models.UniqueConstraint(fields=["user", "question_set"], name="unique_share_user_set"),
        ]

    def __str__(self) -> str:
        target = f"batch {self.batch_id}" if self.batch_id else f"set {self.question_set_id}"
        return f"{target} shared with {self.user_id} ({self.role})"
