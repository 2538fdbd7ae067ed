"""The broker-less worker behind `manage.py run_worker`: drives the slices of every active
batch, so that a started batch finishes with no page open.

1. every WORKER_POLL_SECONDS it looks for active batches (queued or processing) and runs
   one slice (WORKER_SLICE_SECONDS) on the one it served least recently: several batches
   share the worker in turn, the oldest first among equals;
2. the slices go through the same engine and leases as every other runner, so any number
   of workers (and Celery, pages, scripts) can run side by side; after a restart the
   worker simply finds the active batches again, and rows a killed worker held are taken
   over when their lease (BATCH_LEASE_SECONDS) expires;
3. a heartbeat thread writes its WorkerHeartbeat row every WORKER_HEARTBEAT_SECONDS, so
   the pages, the API, /healthz and /metrics know a worker is alive;
4. `request_stop()` (SIGTERM, Ctrl-C): no new slice starts and the slice under way
   starts no new row (the engine's `should_stop`); the rows in flight finish and are
   recorded, rows claimed but not started go back to pending, and the heartbeat row is
   deleted, so the pages take over at once.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from batches.economy import poll_provider_batches
from batches.events import run_slice
from batches.hooks import graders
from batches.models import Batch, WorkerHeartbeat
from batches.services import BatchStateError, delete_expired_drafts
from chats.services import preload_providers

logger = logging.getLogger("batchchat.worker")

STALE_HEARTBEAT = timedelta(days=1)
DRAFT_PURGE_SECONDS = 3600.0  # expired upload drafts are deleted this often


class Worker:
    def __init__(
        self,
        *,
        slice_seconds: float | None = None,
        poll_seconds: float | None = None,
        heartbeat_seconds: float | None = None,
        concurrency: int | None = None,
    ) -> None:
        self.slice_seconds = slice_seconds or settings.WORKER_SLICE_SECONDS
        self.poll_seconds = poll_seconds or settings.WORKER_POLL_SECONDS
        self.heartbeat_seconds = heartbeat_seconds or settings.WORKER_HEARTBEAT_SECONDS
        self.concurrency = concurrency
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self.name = f"{self.hostname[:60]}:{self.pid}:{uuid.uuid4().hex[:8]}"
        self.stopping = threading.Event()
        self.lock = threading.Lock()  # the counters below, read by the heartbeat thread
        self.current_batch_id: int | None = None
        self.slices = 0
        self.rows_done = 0
        self.rows_failed = 0
        self._last_served: dict[int, float] = {}  # batch id -> monotonic time of our slice
        self._idle_until: dict[int, float] = {}  # batch id -> not before (nothing to claim)

    # -- control -------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Start no new slice; the one under way finishes its rows in flight."""
        self.stopping.set()

    # -- heartbeat -----------------------------------------------------------------------
    def beat(self) -> None:
        with self.lock:
            fields = {
                "hostname": self.hostname[:255],
                "pid": self.pid,
                "last_seen": timezone.now(),
                "stopping": self.stopping.is_set(),
                "current_batch_id": self.current_batch_id,
                "slices": self.slices,
                "rows_done": self.rows_done,
                "rows_failed": self.rows_failed,
            }
        WorkerHeartbeat.objects.update_or_create(name=self.name, defaults=fields)

    def _heartbeat_loop(self, done: threading.Event) -> None:
        next_purge = 0.0
        try:
            while not done.wait(self.heartbeat_seconds):
                try:
                    self.beat()
                    if time.monotonic() >= next_purge:
                        delete_expired_drafts()
                        next_purge = time.monotonic() + DRAFT_PURGE_SECONDS
                except Exception:
                    # A locked or restarting database: try again next beat; the worker
                    # looks dead meanwhile only if this lasts the whole timeout.
                    logger.exception("Worker %s: heartbeat failed", self.name)
                    close_old_connections()
        finally:
            connection.close()

    # -- work ----------------------------------------------------------------------------
    def next_batch_id(self) -> int | None:
        """The active batch this worker served least recently (never served first, then
        the oldest), skipping batches that had nothing to claim a moment ago."""
        now = time.monotonic()
        active = Batch.objects.active().order_by("created_at", "pk")
        ids = [
            pk for pk in active.values_list("pk", flat=True) if self._idle_until.get(pk, 0) <= now
        ]
        if not ids:
            return None
        return min(ids, key=lambda pk: self._last_served.get(pk, -math.inf))

    def run_once(self) -> bool:
        """Run one slice on the next batch, or else a chunk of a background grading job
        (batches.hooks: "Grade again" with the AI judge); False when there was nothing to do."""
        # Provider batches of cancelled economy batches: what comes back is kept.
        polled = poll_provider_batches()
        batch_id = self.next_batch_id()
        if batch_id is None:
            return graders().background_work() or bool(polled)
        with self.lock:
            self.current_batch_id = batch_id
        self._last_served[batch_id] = time.monotonic()
        try:
            result = run_slice(
                batch_id=batch_id,
                seconds=self.slice_seconds,
                runner="worker",
                concurrency=self.concurrency,
                should_stop=self.stopping.is_set,
            )
        except (Batch.DoesNotExist, BatchStateError):
            return True  # cancelled, failed or deleted meanwhile: next batch
        finally:
            with self.lock:
                self.current_batch_id = None
        with self.lock:
            self.slices += 1
            self.rows_done += result.done
            self.rows_failed += result.failed
        if not (result.done or result.failed):
            # Every open row is leased by another runner or resting after a rate limit.
            # Skip it for a poll interval; another batch may have work.
            self._idle_until[batch_id] = time.monotonic() + self.poll_seconds
        return True

    def run(self) -> None:
        """Work until request_stop(); see the module docstring."""
        preload_providers()
        # Rows of workers killed long ago (SIGKILL leaves them behind).
        WorkerHeartbeat.objects.filter(last_seen__lt=timezone.now() - STALE_HEARTBEAT).delete()
        self.beat()
        done = threading.Event()
        heartbeat = threading.Thread(
            target=self._heartbeat_loop, args=(done,), name="worker-heartbeat", daemon=True
        )
        heartbeat.start()
        try:
            while not self.stopping.is_set():
                try:
                    worked = self.run_once()
                except Exception:
                    # The database went away or a bug: keep the worker up, try again.
                    logger.exception("Worker %s: a slice failed", self.name)
                    close_old_connections()
                    worked = False
                if not worked:
                    self.stopping.wait(self.poll_seconds)
        finally:
            done.set()
            heartbeat.join(timeout=self.heartbeat_seconds + 5)
            WorkerHeartbeat.objects.filter(name=self.name).delete()
