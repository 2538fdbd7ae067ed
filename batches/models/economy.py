"""Economy mode's records: the provider batches and the requests they carry."""

from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from batches.models.batch import Batch, BatchItem
from batches.querysets import ECONOMY_LEASE_PREFIX


class ProviderBatch(models.Model):
    """One submission to a provider's batch API (economy mode, batches.economy).

    Recorded before the provider is called, with a `local_id` that travels in the
    provider batch's metadata: a worker that died between the call and saving the
    provider's id finds the provider batch it made by that id, so nothing is submitted
    twice. Its rows are leased to `lease_owner` while it runs; its requests (one per row
    and attempt) are ProviderRequests.
    """

    class Status(models.TextChoices):
        PREPARING = "preparing", _("Preparing")  # rows claimed, requests being written
        SUBMITTING = "submitting", _("Submitting")  # requests stored, provider called
        SUBMITTED = "submitted", _("Submitted")  # the provider has it
        ENDED = "ended", _("Ended")  # results read and stored

    class Kind(models.TextChoices):
        ANSWER = "answer", _("Answers")
        # The AI judge's second wave: the judge calls of answers that came back.
        JUDGE = "judge", _("AI judge")

    OPEN_STATUSES = (Status.PREPARING, Status.SUBMITTING, Status.SUBMITTED)

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="provider_batches")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.ANSWER)
    provider = models.CharField(max_length=32)
    model = models.CharField(max_length=200, blank=True)
    local_id = models.CharField(max_length=40, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PREPARING)
    # The provider's own words: validating, in_progress, finalizing, completed, expired,
    # cancelling, cancelled, failed (OpenAI); in_progress, canceling, ended (Anthropic).
    provider_status = models.CharField(max_length=32, blank=True)
    provider_batch_id = models.CharField(max_length=200, blank=True, db_index=True)
    input_file_id = models.CharField(max_length=200, blank=True)
    output_file_id = models.CharField(max_length=200, blank=True)
    error_file_id = models.CharField(max_length=200, blank=True)
    request_count = models.PositiveIntegerField(default=0)
    succeeded_count = models.PositiveIntegerField(default=0)
    failed_count = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    cancel_sent = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(null=True, blank=True)
    polled_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["batch", "created_at", "pk"]
        indexes = [models.Index(fields=["status", "polled_at"], name="provider_batch_status")]

    def __str__(self) -> str:
        return f"{self.provider} {self.provider_batch_id or self.local_id} ({self.status})"

    @property
    def lease_owner(self) -> str:
        """The lease owner of the rows this provider batch holds."""
        return f"{ECONOMY_LEASE_PREFIX}{self.local_id}"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES

    @property
    def expected_by(self):
        """When the provider promises the results (24 hours after submission)."""
        return self.submitted_at + timedelta(hours=24) if self.submitted_at else None

    # The providers' words for their batches, as people read them (OpenAI, Azure:
    # validating ... cancelled; Anthropic: in_progress, canceling, ended).
    PROVIDER_STATUS_LABELS = {
        "validating": _("validating"),
        "in_progress": _("in progress"),
        "finalizing": _("finalizing"),
        "completed": _("completed"),
        "expired": _("expired"),
        "cancelling": _("cancelling"),
        "canceling": _("cancelling"),
        "cancelled": _("cancelled"),
        "failed": _("failed"),
        "ended": _("ended"),
    }

    @property
    def status_label(self) -> str:
        if self.provider_status:
            return str(self.PROVIDER_STATUS_LABELS.get(self.provider_status, self.provider_status))
        return self.get_status_display()


class ProviderRequest(models.Model):
    """One row's attempt inside a provider batch: the request sent (`body`, cleared once
    the results are stored) and the Interaction fields known before the model call
    (guard, search), kept until the answer comes back.

    With the AI judge on, an answer that came back waits for its verdict ("judging"): the
    provider's reply is kept in `result` and a judge request (in a judge ProviderBatch,
    `answer_request` pointing here) is sent; the row is stored once the verdict is in."""

    provider_batch = models.ForeignKey(
        ProviderBatch, on_delete=models.CASCADE, related_name="requests"
    )
    item = models.ForeignKey(BatchItem, on_delete=models.CASCADE, related_name="provider_requests")
    # Row and attempt: "r<item id>-a<attempt>"; a judge request adds "-j".
    custom_id = models.CharField(max_length=64)
    body = models.JSONField(default=dict, blank=True)
    fields = models.JSONField(default=dict, blank=True)
    # The provider's reply (text, model, tokens) of an answer kept while it is judged, or
    # the judge call's tokens.
    result = models.JSONField(default=dict, blank=True)
    # A judge request: the answer request whose answer it judges.
    answer_request = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="judge_requests"
    )
    # "", or what came back: "answered", "judging" (its verdict awaited), "retried",
    # "realtime" (retried in real time), "failed", "cancelled", "dropped" (its row was
    # taken over before the judge's wave); a judge request's: "judged", "failed",
    # "cancelled".
    outcome = models.CharField(max_length=16, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["provider_batch", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider_batch", "custom_id"], name="unique_provider_request"
            )
        ]
        indexes = [
            # Answers waiting for the judge's wave (few at a time, looked up every slice).
            models.Index(
                fields=["provider_batch"],
                condition=models.Q(outcome="judging"),
                name="provider_request_judging",
            )
        ]

    def __str__(self) -> str:
        return self.custom_id
