"""Querysets of the batch models: each status decision in one place.

`Batch.objects` and `BatchItem.objects` (and `batch.items`) are built from these, so the
engine, the lifecycle services, the selectors, the events and the metrics ask the same
questions ("which rows are resting?", "who holds a live lease?") and make the same status
changes in the same words. Every change is one UPDATE, whatever the number of rows.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.db.models import Count, Q, Sum
from django.utils import timezone

from chats.models import GuardStatus
from chats.prompts import not_found_q

# Lease owner prefix of rows held by a provider batch (ProviderBatch.lease_owner).
ECONOMY_LEASE_PREFIX = "economy:"


class BatchQuerySet(models.QuerySet):
    """Batches by where they are, and the status changes made without loading them."""

    def active(self) -> BatchQuerySet:
        """Queued or processing: a runner has (or will have) work on them."""
        return self.filter(status__in=self.model.ACTIVE_STATUSES)

    def mark_processing(self, *, now) -> int:
        """Uploaded or queued batches move to processing (a slice starts on them)."""
        return self.filter(
            status__in=(self.model.Status.UPLOADED, self.model.Status.QUEUED)
        ).update(status=self.model.Status.PROCESSING, updated_at=now)


class BatchItemQuerySet(models.QuerySet):
    """Rows by where the engine is with them, and their status changes: each decision in
    one place, as one UPDATE whatever the number of rows (the engine's writer updates a
    whole group with one call).

    Two timestamps, two meanings: a running row's `lease_expires_at` is when its worker's
    lease ends (another worker may take it over after it); a pending row's
    `resting_until` is when it may be claimed again after the provider kept answering
    429/5xx.
    """

    # --- filters (the `*_q` forms are for aggregates and subqueries) -----------------------
    def resting_q(self, now) -> models.Q:
        """Pending rows waiting out a rate limit (429/5xx) until their retry time."""
        return models.Q(status=self.model.Status.PENDING, resting_until__gt=now)

    def ready_q(self, now) -> models.Q:
        """Pending rows that may be claimed now (not resting)."""
        return models.Q(status=self.model.Status.PENDING) & ~models.Q(resting_until__gt=now)

    def expired_lease_q(self, now) -> models.Q:
        """Running rows whose worker's lease has ended: another worker may take them over."""
        return models.Q(status=self.model.Status.RUNNING, lease_expires_at__lt=now)

    def unfinished(self) -> BatchItemQuerySet:
        return self.filter(status__in=self.model.UNFINISHED_STATUSES)

    def retryable(self) -> BatchItemQuerySet:
        return self.filter(status__in=self.model.RETRYABLE_STATUSES)

    def live_leases(self, now=None) -> BatchItemQuerySet:
        """Running rows whose worker's lease still holds: someone works on them. Rows in
        a provider batch (economy mode) are not: the provider works on them, and nothing
        here reads the results unless a runner polls."""
        now = now or timezone.now()
        return self.filter(status=self.model.Status.RUNNING, lease_expires_at__gte=now).exclude(
            lease_owner__startswith=ECONOMY_LEASE_PREFIX
        )

    def resting(self, now=None) -> BatchItemQuerySet:
        return self.filter(self.resting_q(now or timezone.now()))

    def ready(self, now) -> BatchItemQuerySet:
        return self.filter(self.ready_q(now))

    def expired_leases(self, now) -> BatchItemQuerySet:
        return self.filter(self.expired_lease_q(now))

    # --- the engine's transitions -----------------------------------------------------------
    def claim(self, *, owner: str, now, lease_seconds: float) -> int:
        """Lease the rows that are claimable now (ready, or with an expired lease) to
        `owner`: a conditional UPDATE, so a row another worker took meanwhile is skipped.
        Returns how many rows were claimed."""
        return self.filter(self.ready_q(now) | self.expired_lease_q(now)).update(
            status=self.model.Status.RUNNING,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            resting_until=None,
            attempts=models.F("attempts") + 1,
        )

    def renew_leases(self, *, owner: str, until) -> int:
        return self.filter(lease_owner=owner, status=self.model.Status.RUNNING).update(
            lease_expires_at=until
        )

    def release(self) -> int:
        """Back to pending, never started: the attempt does not count."""
        return self.update(
            status=self.model.Status.PENDING,
            finished_at=None,
            attempts=models.F("attempts") - 1,
            **_NO_LEASE,
        )

    def mark_done(self, *, now, interaction) -> int:
        return self.update(
            status=self.model.Status.DONE,
            error="",
            finished_at=now,
            interaction=interaction,
            **_NO_LEASE,
        )

    def mark_failed(self, *, now, **fields) -> int:
        """Failed; `fields` may set the error (the writer sets each row's own after)."""
        return self.update(status=self.model.Status.FAILED, finished_at=now, **fields, **_NO_LEASE)

    def mark_resting(self) -> int:
        """Back to pending after a rate limit; the caller sets each row's `resting_until`
        and error."""
        return self.update(status=self.model.Status.PENDING, finished_at=None, **_NO_LEASE)

    # --- the lifecycle's transitions ----------------------------------------------------------
    def cancel_pending(self) -> int:
        """Pending rows become cancelled (rows in flight finish and are recorded)."""
        return self.filter(status=self.model.Status.PENDING).update(
            status=self.model.Status.CANCELLED
        )

    def resume_cancelled(self) -> int:
        """Cancelled rows back to pending (a cancelled batch started again)."""
        return self.filter(status=self.model.Status.CANCELLED).update(
            status=self.model.Status.PENDING, error=""
        )

    def retry(self) -> int:
        """Failed and cancelled rows back to pending, with their attempts back (an
        economy row starts again in a provider batch)."""
        return self.retryable().update(
            status=self.model.Status.PENDING,
            error="",
            finished_at=None,
            attempts=0,
            realtime_retry=False,
        )

    def answer_totals(self, language: str) -> dict[str, int]:
        """The batch's answer counters over these rows, in one query: done rows whose
        answer found nothing (in `language`'s phrases), done rows the guard blocked, and
        the answers' tokens in and out. The writer adds a group's; `recount` takes all."""
        done = Q(status=self.model.Status.DONE)
        totals = self.order_by().aggregate(
            not_found_items=Count("id", filter=done & not_found_q("interaction__answer", language)),
            blocked_items=Count(
                "id", filter=done & Q(interaction__guard_status=GuardStatus.BLOCKED)
            ),
            input_tokens=Sum("interaction__input_tokens"),
            output_tokens=Sum("interaction__output_tokens"),
        )
        return {name: value or 0 for name, value in totals.items()}


_NO_LEASE = {"lease_owner": "", "lease_expires_at": None}
