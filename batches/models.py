from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from chats.models import Chat, Interaction, Language


class Batch(models.Model):
    """One upload of questions; its rows are BatchItems, each answered in its own Chat."""

    class Status(models.TextChoices):
        UPLOADED = "uploaded", _("Uploaded")
        QUEUED = "queued", _("Queued")
        PROCESSING = "processing", _("Processing")
        COMPLETED = "completed", _("Completed")
        CANCELLED = "cancelled", _("Cancelled")
        FAILED = "failed", _("Failed")

    ACTIVE_STATUSES = (Status.QUEUED, Status.PROCESSING)
    FINISHED_STATUSES = (Status.COMPLETED, Status.CANCELLED, Status.FAILED)

    # The old application's batchId, remembered so that imports are idempotent.
    legacy_id = models.CharField(max_length=64, null=True, blank=True, unique=True)
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=32, default="question")
    ai_provider = models.CharField(max_length=32)
    model = models.CharField(max_length=128, blank=True)
    search_provider = models.CharField(max_length=32)
    page_language = models.CharField(max_length=2, choices=Language.choices, default=Language.EN)
    apply_overrides = models.BooleanField(default=False)
    uploader = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="batches",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UPLOADED)
    # Engine-written counters; after every slice they equal a recount of the items.
    total_items = models.PositiveIntegerField(default=0)
    processed_items = models.PositiveIntegerField(default=0)
    failed_items = models.PositiveIntegerField(default=0)
    last_processed_index = models.PositiveIntegerField(default=0)
    chats = models.ManyToManyField(Chat, through="BatchItem", related_name="batches")
    source_filename = models.CharField(max_length=255, blank=True)
    # Evaluation: the batch this one was made from with "Run again" (same rows, other
    # settings), and whether an AI judge grades its answers (off by default).
    run_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns"
    )
    judge_enabled = models.BooleanField(default=False)
    # The upload's headers in file order. Kept here because PostgreSQL's jsonb does not
    # keep the key order of BatchItem.row, and the export must return the file's order.
    input_columns = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "batches"
        indexes = [
            models.Index(fields=["uploader", "-created_at"], name="batch_uploader_created"),
            models.Index(fields=["status"], name="batch_status"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"

    def get_absolute_url(self) -> str:
        return reverse("batches:detail", args=[self.pk])

    @property
    def finished_count(self) -> int:
        return self.processed_items + self.failed_items

    @property
    def remaining(self) -> int:
        return max(self.total_items - self.finished_count, 0)

    @property
    def progress_percent(self) -> int:
        if not self.total_items:
            return 100 if self.status == self.Status.COMPLETED else 0
        return int(100 * self.finished_count / self.total_items)

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES

    @property
    def can_start(self) -> bool:
        """Start, resume after cancel, or again after a batch-level fault; an active batch
        can be resumed too (start re-enqueues it only when nobody is working on it)."""
        return self.status in (
            self.Status.UPLOADED,
            self.Status.CANCELLED,
            self.Status.FAILED,
            *self.ACTIVE_STATUSES,
        )

    @property
    def can_cancel(self) -> bool:
        return self.is_active or self.status == self.Status.UPLOADED

    @property
    def can_retry(self) -> bool:
        return self.status in self.FINISHED_STATUSES and (
            self.failed_items > 0 or self.status == self.Status.CANCELLED
        )


class JudgeVerdict(models.TextChoices):
    PASS = "pass", _("Pass")
    FAIL = "fail", _("Fail")
    # The judge could not give a verdict (provider error, a reply that does not parse).
    ERROR = "error", _("No verdict")


class BatchItem(models.Model):
    """One uploaded row: its original columns, its chat, and where the engine is with it."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    FINISHED_STATUSES = (Status.DONE, Status.FAILED)

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="items")
    # Rows that share a `chatid` in the upload share one Chat (a multi-turn conversation).
    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="batch_items")
    position = models.PositiveIntegerField()
    # What the engine asks, read from the row's question column (or its alias) at upload.
    question = models.TextField()
    referring_url = models.CharField(max_length=2048, blank=True)
    # Every original column of the upload, by its header, for the export.
    row = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    lease_owner = models.CharField(max_length=64, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # The turn this row produced; set in the same transaction as status=done.
    interaction = models.OneToOneField(
        Interaction,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="batch_item",
    )
    finished_at = models.DateTimeField(null=True, blank=True)
    # Evaluation: what the answer should be (from the upload's expected columns) and the
    # grades of the row's answer against it (batches.grading); null = not graded / no
    # expectation to grade against.
    expected_answer = models.TextField(blank=True)
    expected_citation_url = models.CharField(max_length=2048, blank=True)
    citation_match = models.BooleanField(null=True, blank=True)
    answer_similarity = models.FloatField(null=True, blank=True)
    answer_found = models.BooleanField(null=True, blank=True)
    judge_verdict = models.CharField(
        max_length=8, choices=JudgeVerdict.choices, blank=True, default=""
    )
    judge_notes = models.TextField(blank=True)
    graded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["batch", "position"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "position"], name="unique_batch_position")
        ]
        indexes = [
            models.Index(fields=["batch", "status", "position"], name="item_batch_status_pos"),
            models.Index(fields=["status", "lease_expires_at"], name="item_status_lease"),
            # The engine's "earlier turn of this chat unfinished?" check.
            models.Index(fields=["chat", "position"], name="item_chat_position"),
        ]

    def __str__(self) -> str:
        return f"{self.batch_id} row {self.position} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED_STATUSES

    @property
    def is_failing(self) -> bool:
        """A grader says this answer is wrong (the rows filter's "failing")."""
        return (
            self.citation_match is False
            or self.answer_found is False
            or self.judge_verdict == JudgeVerdict.FAIL
        )

    def lease_expired(self, now=None) -> bool:
        now = now or timezone.now()
        return self.lease_expires_at is None or self.lease_expires_at <= now


class UploadDraft(models.Model):
    """An uploaded file kept on the server between the upload and the column chooser, so
    the second step never trusts a path or file from the client. Deleted when the batch is
    created; drafts older than a day are deleted whenever a new one is saved."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="upload_drafts"
    )
    filename = models.CharField(max_length=255, blank=True)
    data = models.BinaryField()
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.filename} ({self.owner_id})"
