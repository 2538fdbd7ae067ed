"""What the engine and the pages keep beside the batches: worker heartbeats and
upload drafts."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


class WorkerHeartbeat(models.Model):
    """A `run_worker` process, as the pages, the API, /healthz and /metrics see it.

    Each worker writes its row every WORKER_HEARTBEAT_SECONDS and deletes it on a clean
    stop; a worker whose row is older than WORKER_HEARTBEAT_TIMEOUT is dead (SIGKILL,
    lost machine). While one is alive the pages stop driving slices themselves.
    """

    name = models.CharField(max_length=100, unique=True)  # host:pid:random
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now, db_index=True)
    stopping = models.BooleanField(default=False)
    # The batch the worker is on right now (not a foreign key: a batch can be deleted
    # while a worker is on it, and a heartbeat must never block that).
    current_batch_id = models.BigIntegerField(null=True, blank=True)
    slices = models.PositiveBigIntegerField(default=0)
    rows_done = models.PositiveBigIntegerField(default=0)
    rows_failed = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def is_alive(self, now=None) -> bool:
        now = now or timezone.now()
        return self.last_seen >= now - timedelta(seconds=settings.WORKER_HEARTBEAT_TIMEOUT)


DRAFT_MAX_AGE = timedelta(days=1)


class UploadDraftQuerySet(models.QuerySet):
    def live(self):
        """Drafts still usable: younger than DRAFT_MAX_AGE (older ones are refused when
        used, and deleted by the worker, Celery beat, and each new draft)."""
        return self.filter(created_at__gte=timezone.now() - DRAFT_MAX_AGE)

    def expired(self):
        return self.filter(created_at__lt=timezone.now() - DRAFT_MAX_AGE)


class UploadDraft(models.Model):
    """An uploaded file kept on the server between the upload and the column chooser, so
    the second step never trusts a path or file from the client. Deleted when the batch is
    created; a draft is usable for DRAFT_MAX_AGE, and each user keeps at most
    UPLOAD_DRAFTS_PER_USER drafts and UPLOAD_DRAFT_BYTES_PER_USER bytes (the oldest go)."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="upload_drafts"
    )
    filename = models.CharField(max_length=255, blank=True)
    data = models.BinaryField()
    # The column chooser's preview, parsed once when the draft is saved (issue 29): its
    # headers, roles, format and first rows' cells cut to PREVIEW_CELL_CHARS, or
    # {"error": message}. Re-posting the draft reads this, never the file.
    preview = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = UploadDraftQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.filename} ({self.owner_id})"
