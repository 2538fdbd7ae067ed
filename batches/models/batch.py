"""Batches and their rows: `Batch`, `BatchItem`, the verdicts a row can carry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.humanize.templatetags.humanize import intcomma
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from batches.querysets import BatchItemQuerySet, BatchQuerySet
from chats.models import URL_MAX_LENGTH, AnswerType, Chat, ChatSettings, Interaction

# What a row may expect of its answer (BatchItem.expected_outcome): one of the answer
# types, or only that it is not blocked (a blocking column saying "Don't block").
NOT_BLOCKED = "not-blocked"
EXPECTED_OUTCOMES = (*AnswerType.values, NOT_BLOCKED)


class Batch(ChatSettings):
    """One upload of questions; its rows are BatchItems, each answered in its own Chat."""

    class Status(models.TextChoices):
        UPLOADED = "uploaded", _("Uploaded")
        QUEUED = "queued", _("Queued")
        PROCESSING = "processing", _("Processing")
        COMPLETED = "completed", _("Completed")
        CANCELLED = "cancelled", _("Cancelled")
        FAILED = "failed", _("Failed")
        # Stopped by the engine for a reason the owner can lift (`pause_reason`): no row
        # starts; raising the budget resumes it (batches.costs.set_budget).
        PAUSED = "paused", _("Paused")

    class PauseReason(models.TextChoices):
        BUDGET = "budget", _("budget reached")

    ACTIVE_STATUSES = (Status.QUEUED, Status.PROCESSING)
    FINISHED_STATUSES = (Status.COMPLETED, Status.CANCELLED, Status.FAILED)

    class Mode(models.TextChoices):
        REALTIME = "realtime", _("Real time")
        # The answer calls go to the provider's batch API (batches.economy): half price,
        # results within 24 hours.
        ECONOMY = "economy", _("Economy (provider batch API)")

    class EconomyRetry(models.TextChoices):
        # Economy mode: where a row whose provider batch request came back expired or
        # errored gets its one retry (batches.economy.store).
        BATCH = "batch", _("In a new provider batch")
        REALTIME = "realtime", _("In real time (at the real-time price)")

    ACTIVITY_PROCESSING = "processing"
    ACTIVITY_WAITING = "waiting_for_worker"

    # The old application's batchId, remembered so that imports are idempotent.
    legacy_id = models.CharField(max_length=64, null=True, blank=True, unique=True)
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=32, default="question")
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
    # Of the done rows: answers that found nothing (chats.prompts.not_found_q), answers the
    # guard blocked, and the answers' tokens. Counters like processed_items, kept by the
    # engine's writer in the same transaction as the rows (and by `recount`), so that the
    # pages and their polls read them instead of aggregating the rows at every request.
    not_found_items = models.PositiveIntegerField(default=0)
    blocked_items = models.PositiveIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    chats = models.ManyToManyField(Chat, through="BatchItem", related_name="batches")
    source_filename = models.CharField(max_length=255, blank=True)
    # Evaluation: the batch this one was made from with "Run again" (same rows, other
    # settings), and whether an AI judge grades its answers (off by default).
    run_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns"
    )
    judge_enabled = models.BooleanField(default=False)
    # How many times each question is answered (1–10): k rows, k chats, per question.
    repeats = models.PositiveSmallIntegerField(default=1)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.REALTIME)
    economy_retry = models.CharField(
        max_length=16, choices=EconomyRetry.choices, default=EconomyRetry.BATCH
    )
    # The upload's headers in file order. Kept here because PostgreSQL's jsonb does not
    # keep the key order of BatchItem.row, and the export must return the file's order.
    input_columns = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    # The offline guard at upload (batches.upload_guard): {"blocked": n, "redacted": m}
    # rows as the batch was created; {} for batches made before it.
    upload_guard = models.JSONField(default=dict, blank=True)
    # Written by the engine while a provider's quota holds the batch back, {} otherwise:
    # {"until": epoch seconds or null, "in_flight": n, "limit": n or null, "concurrency": n}.
    throttle = models.JSONField(default=dict, blank=True)
    # Cost (batches.costs): the most the owner will spend (AI_PRICE_CURRENCY; null: no
    # limit), what the rows' answers cost so far (engine-written: the sum of the rows'
    # `cost`, kept here so that the budget check reads one row, not an aggregate), why
    # the batch is paused, and the estimate made before start (batches.estimate).
    budget = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    spent = models.FloatField(default=0)
    pause_reason = models.CharField(max_length=16, choices=PauseReason.choices, blank=True)
    estimate = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = BatchQuerySet.as_manager()

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
        # A batch page asks it for each of its links (filters, sorts, pages): reversed once.
        cached = self.__dict__.get("_absolute_url")
        if cached is None or cached[0] != self.pk:
            cached = self.__dict__["_absolute_url"] = (
                self.pk,
                reverse("batches:detail", args=[self.pk]),
            )
        return cached[1]

    @property
    def is_economy(self) -> bool:
        return self.mode == self.Mode.ECONOMY

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
    def activity(self) -> str:
        """What is happening to an active batch, as the pages and the API say it:
        'processing' when a `run_worker` is alive, someone holds a live lease on one of
        its rows (a page, a script, a Celery task), or it moved within the heartbeat
        timeout (the gap between two slices); else 'waiting_for_worker': nothing will move
        it until a worker starts or its page is opened. '' for a batch that is not active.

        Reads the `worker_alive` / `has_live_lease` annotations of
        `selectors.with_activity` when present (lists: no query per batch), else asks.
        """
        if not self.is_active:
            return ""
        now = timezone.now()
        grace = timedelta(seconds=settings.WORKER_HEARTBEAT_TIMEOUT)
        if self.status == self.Status.PROCESSING and self.updated_at >= now - grace:
            return self.ACTIVITY_PROCESSING
        worker_alive = getattr(self, "worker_alive", None)
        if worker_alive is None:
            from batches.models.runtime import WorkerHeartbeat  # beside it: no import cycle

            worker_alive = WorkerHeartbeat.objects.filter(last_seen__gte=now - grace).exists()
        if worker_alive:
            return self.ACTIVITY_PROCESSING
        has_live_lease = getattr(self, "has_live_lease", None)
        if has_live_lease is None:
            has_live_lease = self.items.live_leases(now).exists()
        return self.ACTIVITY_PROCESSING if has_live_lease else self.ACTIVITY_WAITING

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
        """Offered on pages while the batch runs (or is paused); an uploaded batch is
        simply not started (or deleted). The API may still cancel an uploaded batch
        (cancel_batch)."""
        return self.is_active or self.is_paused

    @property
    def is_paused(self) -> bool:
        return self.status == self.Status.PAUSED

    @property
    def budget_reached(self) -> bool:
        return self.is_paused and self.pause_reason == self.PauseReason.BUDGET

    @property
    def status_reason(self) -> str:
        """Why a paused batch is paused, as people read it ("budget reached"); ''."""
        return self.get_pause_reason_display() if self.is_paused and self.pause_reason else ""

    @property
    def answered_items(self) -> int:
        return max(self.processed_items - self.not_found_items - self.blocked_items, 0)

    @property
    def has_problems(self) -> bool:
        return bool(self.failed_items or self.not_found_items)

    @property
    def status_label(self) -> str:
        """The status as people read it: an active batch says whether anything works on
        it (see `activity`); a completed batch with failed rows says so."""
        if self.activity == self.ACTIVITY_PROCESSING:
            return str(_("Processing"))
        if self.activity == self.ACTIVITY_WAITING:
            return str(_("Waiting for a worker"))
        if self.is_paused and self.pause_reason:
            return gettext("Paused: %(reason)s") % {"reason": self.status_reason}
        if self.status == self.Status.COMPLETED and self.failed_items:
            return ngettext(
                "Completed with %(count)s failed",
                "Completed with %(count)s failed",
                self.failed_items,
            ) % {"count": intcomma(self.failed_items)}
        return self.get_status_display()

    @property
    def status_class(self) -> str:
        """CSS class of the status badge (completed with failures is a warning)."""
        if self.status == self.Status.COMPLETED and self.failed_items:
            return "completed-failures"
        return self.status

    @property
    def finished_label(self) -> str:
        """What the end time means: finished, cancelled or stopped by a fault."""
        return {
            self.Status.COMPLETED: gettext("finished"),
            self.Status.CANCELLED: gettext("cancelled"),
            self.Status.FAILED: gettext("stopped"),
        }.get(self.status, gettext("finished"))

    def _share(self, count: int) -> int:
        """Whole percent of the bar (drawn with the w-0 ... w-100 CSS classes: the
        Content-Security-Policy allows no style attributes); a row that counts shows."""
        if not self.total_items or not count:
            return 0
        return max(1, round(100 * count / self.total_items))

    @property
    def bar_segments(self) -> list[tuple[str, int, int]]:
        """(kind, percent of the bar, rows) for the progress bar, in drawing order."""
        return [
            ("answered", self._share(self.answered_items), self.answered_items),
            ("not-found", self._share(self.not_found_items), self.not_found_items),
            ("blocked", self._share(self.blocked_items), self.blocked_items),
            ("failed", self._share(self.failed_items), self.failed_items),
        ]

    @property
    def can_retry(self) -> bool:
        return self.status in self.FINISHED_STATUSES and (
            self.failed_items > 0 or self.status == self.Status.CANCELLED
        )

    @property
    def outage(self) -> dict | None:
        """While the provider does not answer (its circuit breaker open, as the running
        slice last published): `reason` ("connection", "timeout", "server-error"),
        `since` and `last_success` (datetimes; None when no answer was seen)."""
        outage = (self.throttle or {}).get("outage")
        if not outage or not self.is_active:
            return None

        def when(value: float | None):
            return datetime.fromtimestamp(value, tz=UTC) if value else None

        return {
            "reason": outage.get("reason", ""),
            "since": when(outage.get("since")),
            "last_success": when(outage.get("last_success")),
        }

    @property
    def throttle_wait_seconds(self) -> int | None:
        """Seconds until the provider's rate limit lets rows go again, when waiting."""
        until = (self.throttle or {}).get("until")
        if not until or not self.is_active:
            return None
        left = until - timezone.now().timestamp()
        return max(int(left + 0.999), 1) if left > 0 else None

    # --- state transitions: call inside a transaction that locked this batch ---------------
    def _move(self, status: str, *, error: str = "", finished: bool) -> None:
        self.status = status
        self.error = error
        self.pause_reason = ""
        self.finished_at = timezone.now() if finished else None
        self.save(update_fields=["status", "error", "pause_reason", "finished_at", "updated_at"])

    def mark_queued(self) -> None:
        """Waiting for a runner: after start, resume or retry."""
        self._move(self.Status.QUEUED, finished=False)

    def mark_cancelled(self) -> None:
        self._move(self.Status.CANCELLED, finished=True)

    def mark_completed(self) -> None:
        self._move(self.Status.COMPLETED, finished=True)

    def mark_paused(self, reason: str) -> None:
        """No row starts until the owner lifts `reason` (rows in flight still finish)."""
        self.status = self.Status.PAUSED
        self.pause_reason = reason
        self.save(update_fields=["status", "pause_reason", "updated_at"])

    def mark_failed(self, message: str) -> None:
        """A batch-level fault (provider not configured) that retrying rows cannot fix."""
        self._move(self.Status.FAILED, error=message, finished=True)

    def recount(self, *, answers: bool = True) -> None:
        """Set the counters and last_processed_index from the items (three queries).
        Without `answers`, the answer counters are left as the writer kept them (two
        queries: the end of every slice, where a recount of the answers would cost a
        scan of their texts)."""
        counts = self.items.aggregate(
            total=models.Count("id"),
            done=models.Count("id", filter=models.Q(status=BatchItem.Status.DONE)),
            failed=models.Count("id", filter=models.Q(status=BatchItem.Status.FAILED)),
        )
        first_unfinished = (
            self.items.exclude(status__in=BatchItem.FINISHED_STATUSES)
            .order_by("position")
            .values_list("position", flat=True)
            .first()
        )
        answers = self.items.answer_totals(self.page_language) if answers else {}
        self.total_items = counts["total"]
        self.processed_items = counts["done"]
        self.failed_items = counts["failed"]
        self.last_processed_index = (
            counts["total"] if first_unfinished is None else first_unfinished
        )
        for name, value in answers.items():
            setattr(self, name, value)
        Batch.objects.filter(pk=self.pk).update(
            total_items=self.total_items,
            processed_items=self.processed_items,
            failed_items=self.failed_items,
            last_processed_index=self.last_processed_index,
            updated_at=timezone.now(),
            **answers,
        )


class JudgeVerdict(models.TextChoices):
    PASS = "pass", _("Pass")
    FAIL = "fail", _("Fail")
    # The judge could not give a verdict (provider error, a reply that does not parse).
    ERROR = "error", _("No verdict")


class Verdict(models.TextChoices):
    PASS = "pass", _("Pass")
    FAIL = "fail", _("Fail")
    UNGRADED = "ungraded", _("Ungraded")


class VerdictReason(models.TextChoices):
    """Which check decided a row's verdict (evaluation.grading.decide_verdict)."""

    OUTCOME = "outcome", _("Expected outcome")
    CITATION = "citation", _("Expected citation")
    JUDGE = "judge", _("AI judge")
    SIMILARITY = "similarity", _("Similarity")
    NOTHING = "nothing", _("Nothing to grade against")


class BatchItem(models.Model):
    """One uploaded row: its original columns, its chat, and where the engine is with it."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    FINISHED_STATUSES = (Status.DONE, Status.FAILED)
    UNFINISHED_STATUSES = (Status.PENDING, Status.RUNNING)  # the engine has work on them
    RETRYABLE_STATUSES = (Status.FAILED, Status.CANCELLED)

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="items")
    # Rows that share a `chatid` in the upload share one Chat (a multi-turn conversation).
    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="batch_items")
    position = models.PositiveIntegerField()
    # The question this row answers: its index among the upload's questions (0-based; the
    # set's Question.position), and which of the batch's `repeats` answers it is (1..k).
    # Without repeats, question_index == position and repeat == 1.
    question_index = models.PositiveIntegerField(default=0)
    repeat = models.PositiveSmallIntegerField(default=1)
    # What the engine asks, read from the row's question column (or its alias) at upload.
    question = models.TextField()
    referring_url = models.CharField(max_length=URL_MAX_LENGTH, blank=True)
    # Every original column of the upload, for the export: a list of cell values by
    # position in `batch.input_columns` (the headers are stored once per batch; None: the
    # row had no such column). Legacy imports without input_columns keep a dict by header.
    # Read it through `columns()`, never directly.
    row = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    lease_owner = models.CharField(max_length=64, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)  # a running row's lease
    # A pending row waiting out a rate limit (429/5xx): not claimed again before then.
    resting_until = models.DateTimeField(null=True, blank=True)
    # Economy mode: the row's provider batch request expired or errored and the batch
    # retries in real time: only a real-time slice claims it, never a provider batch.
    realtime_retry = models.BooleanField(default=False)
    # The turn this row produced; set in the same transaction as status=done.
    interaction = models.OneToOneField(
        Interaction,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="batch_item",
    )
    finished_at = models.DateTimeField(null=True, blank=True)
    # What the row's answer call cost (its interaction's tokens at the batch's price,
    # batches.costs); null: not answered, or no price known for the model.
    cost = models.FloatField(null=True, blank=True)
    # Evaluation: what the answer should be (from the upload's expected columns) and the
    # grades of the row's answer against it (evaluation.grading); null = not graded / no
    # expectation to grade against.
    expected_answer = models.TextField(blank=True)
    expected_citation_url = models.CharField(max_length=URL_MAX_LENGTH, blank=True)
    # One of EXPECTED_OUTCOMES; blank: none expected.
    expected_outcome = models.CharField(max_length=24, blank=True)
    citation_match = models.BooleanField(null=True, blank=True)
    answer_similarity = models.FloatField(null=True, blank=True)
    answer_found = models.BooleanField(null=True, blank=True)
    judge_verdict = models.CharField(
        max_length=8, choices=JudgeVerdict.choices, blank=True, default=""
    )
    judge_notes = models.TextField(blank=True)
    # One verdict per graded row, and the check that decided it; blank: not graded.
    verdict = models.CharField(max_length=8, choices=Verdict.choices, blank=True)
    verdict_reason = models.CharField(max_length=12, choices=VerdictReason.choices, blank=True)
    graded_at = models.DateTimeField(null=True, blank=True)

    objects = BatchItemQuerySet.as_manager()

    class Meta:
        ordering = ["batch", "position"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "position"], name="unique_batch_position")
        ]
        indexes = [
            models.Index(fields=["batch", "status", "position"], name="item_batch_status_pos"),
            # The pages' rows per second: a batch's rows finished in the last minute.
            models.Index(fields=["batch", "finished_at"], name="item_batch_finished"),
            models.Index(fields=["status", "lease_expires_at"], name="item_status_lease"),
            models.Index(fields=["status", "resting_until"], name="item_status_resting"),
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
        """The row's verdict is fail (the rows filter's "failing")."""
        return self.verdict == Verdict.FAIL

    def columns(self, headers: list | None = None) -> dict:
        """The uploaded row by header, in the file's order: the one reader of `row`.
        `headers` is the batch's `input_columns` (pass it when reading many rows, so that
        the batch is not fetched for each)."""
        if isinstance(self.row, list) and headers is None:
            headers = self.batch.input_columns
        return row_columns(self.row, headers or [])

    @staticmethod
    def stored_row(columns: dict, headers: list) -> list:
        """`columns` (by header) as `row` stores them: values by position in `headers`."""
        return [columns.get(header) for header in headers]

    def lease_expired(self, now=None) -> bool:
        now = now or timezone.now()
        return self.lease_expires_at is None or self.lease_expires_at <= now


def row_columns(row, headers: list) -> dict:
    """A stored `BatchItem.row` by header: values by position in the batch's
    `input_columns`, or (legacy imports) already a dict of cells by header."""
    if isinstance(row, dict):
        return row
    if not isinstance(row, list):
        return {}
    return {str(h): v for h, v in zip(headers, row, strict=False) if v is not None}
