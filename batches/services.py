"""The batch engine: creating batch runs and processing them in resumable slices."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from itertools import islice

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q
from django.utils import timezone

from batches.grading import grade_finished_items
from batches.ingest import ColumnChoice, ParsedRow, UploadError, parse_upload
from batches.models import Batch, BatchItem, UploadDraft
from chats.models import Chat
from chats.services import (
    ProviderError,
    ProviderNotConfigured,
    TransientProviderError,
    check_chat_settings,
    process_message,
)

CREATE_CHUNK = 1000


def _chunks(rows: Iterable, size: int):
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


def create_batch_run(
    *,
    uploader,
    name: str,
    rows: Sequence[ParsedRow],
    ai_provider: str,
    model: str = "",
    search_provider: str,
    page_language: str = "en",
    apply_overrides: bool = False,
    source_filename: str = "",
    judge_enabled: bool = False,
    run_from: Batch | None = None,
) -> Batch:
    """Create a batch with a Chat and a BatchItem per row, all or nothing.

    1. validate: at least one row, at most MAX_BATCH_ITEMS, providers configured;
    2. in one transaction, create the Batch, then Chats and BatchItems with bulk_create
       in chunks (rows sharing a `chat_key` share one Chat, in row order).
    Raises UploadError or ProviderNotConfigured; nothing is created then.
    """
    if not rows:
        raise UploadError("The batch has no questions.", code="empty")
    limit = settings.MAX_BATCH_ITEMS
    if len(rows) > limit:
        raise UploadError(
            f"The batch has {len(rows):,} questions; the limit is {limit:,}.", code="too_many_rows"
        )
    model = check_chat_settings(
        ai_provider=ai_provider, model=model, search_provider=search_provider
    )
    name = (name or "").strip() or source_filename or "Untitled batch"
    chat_fields = {
        "ai_provider": ai_provider,
        "model": model,
        "search_provider": search_provider,
        "page_language": page_language,
        "apply_overrides": apply_overrides,
        "uploader": uploader,
    }
    input_columns = list(dict.fromkeys(key for row in rows for key in row.columns))
    with transaction.atomic():
        batch = Batch.objects.create(
            name=name[:200],
            total_items=len(rows),
            source_filename=source_filename[:255],
            input_columns=input_columns,
            judge_enabled=judge_enabled,
            run_from=run_from,
            **chat_fields,
        )
        chat_for_key: dict[str, Chat] = {}
        for offset, chunk in enumerate(_chunks(rows, CREATE_CHUNK)):
            new_chats: list[Chat] = []
            row_chats: list[Chat] = []
            for row in chunk:
                chat = chat_for_key.get(row.chat_key) if row.chat_key else None
                if chat is None:
                    chat = Chat(**chat_fields)
                    new_chats.append(chat)
                    if row.chat_key:
                        chat_for_key[row.chat_key] = chat
                row_chats.append(chat)
            Chat.objects.bulk_create(new_chats)
            start = offset * CREATE_CHUNK
            BatchItem.objects.bulk_create(
                BatchItem(
                    batch=batch,
                    chat=chat,
                    position=start + index,
                    question=row.question,
                    referring_url=row.referring_url,
                    row=row.columns,
                    expected_answer=row.expected_answer,
                    expected_citation_url=row.expected_citation_url,
                )
                for index, (row, chat) in enumerate(zip(chunk, row_chats, strict=True))
            )
    return batch


def run_again(
    *,
    batch: Batch,
    uploader,
    ai_provider: str,
    model: str = "",
    search_provider: str,
    page_language: str,
    apply_overrides: bool,
    judge_enabled: bool | None = None,
    name: str = "",
) -> Batch:
    """A new batch with the same rows as `batch` (questions, URLs, conversations, every
    uploaded column and the expected answer and citation) and other settings; it
    remembers `run_from=batch`, so compare aligns the two by row number.

    Rows that shared a chat share one again. Raises ProviderNotConfigured like
    create_batch_run; nothing is created then.
    """
    rows = [
        ParsedRow(
            question=item.question,
            referring_url=item.referring_url,
            # Every row gets its source chat as key: conversations stay together, in order.
            chat_key=str(item.chat_id),
            columns=item.row if isinstance(item.row, dict) else {},
            expected_answer=item.expected_answer,
            expected_citation_url=item.expected_citation_url,
        )
        for item in batch.items.order_by("position").only(
            "question",
            "referring_url",
            "chat_id",
            "row",
            "expected_answer",
            "expected_citation_url",
        )
    ]
    with transaction.atomic():
        new = create_batch_run(
            uploader=uploader,
            name=(name or "").strip() or f"{batch.name} (again)"[:200],
            rows=rows,
            ai_provider=ai_provider,
            model=model,
            search_provider=search_provider,
            page_language=page_language,
            apply_overrides=apply_overrides,
            source_filename=batch.source_filename,
            judge_enabled=batch.judge_enabled if judge_enabled is None else judge_enabled,
            run_from=batch,
        )
        if batch.input_columns:  # the file's column order (row dicts lose it on jsonb)
            new.input_columns = batch.input_columns
            new.save(update_fields=["input_columns"])
    return new


DRAFT_MAX_AGE = timedelta(days=1)


def save_upload_draft(*, owner, filename: str, data: bytes) -> UploadDraft:
    """Keep an uploaded file for the column chooser (step 2 of the upload); drafts older
    than DRAFT_MAX_AGE, anyone's, are deleted on the way."""
    UploadDraft.objects.filter(created_at__lt=timezone.now() - DRAFT_MAX_AGE).delete()
    return UploadDraft.objects.create(owner=owner, filename=filename[:255], data=data)


def create_batch_from_draft(*, draft: UploadDraft, columns: ColumnChoice, **fields) -> Batch:
    """Parse the kept file with the chosen columns, create the batch (create_batch_run's
    keyword arguments in `fields`), delete the draft. Raises UploadError or
    ProviderNotConfigured; the draft is kept then, for another try."""
    parsed = parse_upload(data=bytes(draft.data), filename=draft.filename, columns=columns)
    with transaction.atomic():
        batch = create_batch_run(rows=parsed.rows, source_filename=draft.filename, **fields)
        draft.delete()
    return batch


# --- Engine ----------------------------------------------------------------------------
#
# State lives on rows: an item is claimed with a conditional UPDATE that sets a lease
# (owner + expiry), and every result is recorded with a conditional UPDATE that checks the
# lease is still ours. So any number of callers (threads, processes, Celery workers) can
# work on one batch: each row completes once, and a row whose worker died is claimed
# again when its lease expires.

logger = logging.getLogger(__name__)

UNFINISHED = (BatchItem.Status.PENDING, BatchItem.Status.RUNNING)


class BatchStateError(Exception):
    """The batch is in a state that does not allow this action (HTTP 409)."""


class LeaseLost(Exception):
    """Our lease on an item expired and another worker took it: drop our result."""


@dataclass(frozen=True)
class SliceResult:
    """What one call of process_for_duration did, and where the batch stands after it."""

    batch_id: int
    status: str
    done: int  # rows that finished done during this slice
    failed: int  # rows that finished failed during this slice
    remaining: int  # rows of the batch not finished (pending, running, cancelled)

    @property
    def should_continue(self) -> bool:
        """Whether a background runner should schedule another slice."""
        return self.status in Batch.ACTIVE_STATUSES and self.remaining > 0


def runner_mode() -> str:
    """'celery' when a broker is configured, else 'inline' (the caller drives slices)."""
    return "celery" if settings.CELERY_BROKER_URL else "inline"


def _enqueue_slices(batch_id: int) -> None:
    """With Celery, start BATCH_PARALLEL_SLICES slice chains once the transaction commits."""
    if runner_mode() != "celery":
        return
    from batches import tasks

    for _ in range(max(settings.BATCH_PARALLEL_SLICES, 1)):
        tasks.process_batch_slice.delay_on_commit(batch_id)


def start_batch(*, batch: Batch) -> Batch:
    """Queue the batch: uploaded, cancelled (resume) or failed (after a fix) -> queued.

    Cancelled rows go back to pending. With Celery, slice tasks are enqueued on commit;
    inline, the caller drives process_for_duration. Starting an active batch enqueues
    again only when nobody holds a lease on it (its tasks were lost), so repeated clicks
    do not pile up slice chains.
    """
    with transaction.atomic():
        batch = Batch.objects.select_for_update().get(pk=batch.pk)
        if batch.status == Batch.Status.COMPLETED:
            raise BatchStateError("This batch is completed; retry its failed rows instead.")
        if batch.status in (Batch.Status.UPLOADED, Batch.Status.CANCELLED, Batch.Status.FAILED):
            batch.items.filter(status=BatchItem.Status.CANCELLED).update(
                status=BatchItem.Status.PENDING, error=""
            )
            batch.status = Batch.Status.QUEUED
            batch.error = ""
            batch.finished_at = None
            batch.save(update_fields=["status", "error", "finished_at", "updated_at"])
            _enqueue_slices(batch.pk)
        elif batch.pk in stalled_batch_ids(idle_seconds=0):
            _enqueue_slices(batch.pk)
    return batch


def cancel_batch(*, batch: Batch) -> Batch:
    """Pending rows become cancelled; rows in flight finish and are recorded.

    Workers check the batch status before every provider call, so no new call starts
    once this has returned.
    """
    with transaction.atomic():
        batch = Batch.objects.select_for_update().get(pk=batch.pk)
        if batch.status not in (*Batch.ACTIVE_STATUSES, Batch.Status.UPLOADED):
            raise BatchStateError(
                f"A {batch.get_status_display().lower()} batch cannot be cancelled."
            )
        batch.items.filter(status=BatchItem.Status.PENDING).update(
            status=BatchItem.Status.CANCELLED
        )
        batch.status = Batch.Status.CANCELLED
        batch.finished_at = timezone.now()
        batch.save(update_fields=["status", "finished_at", "updated_at"])
        _recount(batch)
    return batch


def retry_failed(*, batch: Batch) -> Batch:
    """Failed and cancelled rows back to pending; the batch back to queued."""
    with transaction.atomic():
        batch = Batch.objects.select_for_update().get(pk=batch.pk)
        retried = batch.items.filter(
            status__in=(BatchItem.Status.FAILED, BatchItem.Status.CANCELLED)
        ).update(status=BatchItem.Status.PENDING, error="", finished_at=None, attempts=0)
        if not retried and batch.status != Batch.Status.FAILED:
            raise BatchStateError("This batch has no failed or cancelled rows to retry.")
        batch.status = Batch.Status.QUEUED
        batch.error = ""
        batch.finished_at = None
        batch.save(update_fields=["status", "error", "finished_at", "updated_at"])
        _recount(batch)
        _enqueue_slices(batch.pk)
    return batch


def delete_batch(*, batch: Batch) -> None:
    """Delete the batch, its items and its chats (a batch's chats belong to it alone).

    Rows may be finishing while this runs. Their workers lock the chat, then the row,
    then the batch (see chats.services.process_message and _Slice._record); locking in
    the same order here means such a row either commits first (and is deleted with the
    rest) or finds its row gone and drops its result: no deadlock, no orphan.
    """
    with transaction.atomic():
        chat_ids = set(batch.items.values_list("chat_id", flat=True))
        shared = set(
            BatchItem.objects.filter(chat_id__in=chat_ids)
            .exclude(batch_id=batch.pk)
            .values_list("chat_id", flat=True)
        )
        own_chats = Chat.objects.filter(pk__in=chat_ids - shared)
        list(own_chats.select_for_update().order_by("pk").values_list("pk", flat=True))
        list(batch.items.select_for_update().order_by("pk").values_list("pk", flat=True))
        list(Batch.objects.select_for_update().filter(pk=batch.pk).values_list("pk", flat=True))
        own_chats.delete()
        Batch.objects.filter(pk=batch.pk).delete()


def _recount(batch: Batch) -> None:
    """Set the counters from the items. Call inside a transaction that locked the batch."""
    counts = batch.items.aggregate(
        total=Count("id"),
        done=Count("id", filter=Q(status=BatchItem.Status.DONE)),
        failed=Count("id", filter=Q(status=BatchItem.Status.FAILED)),
    )
    first_unfinished = (
        batch.items.exclude(status__in=BatchItem.FINISHED_STATUSES)
        .order_by("position")
        .values_list("position", flat=True)
        .first()
    )
    batch.total_items = counts["total"]
    batch.processed_items = counts["done"]
    batch.failed_items = counts["failed"]
    batch.last_processed_index = counts["total"] if first_unfinished is None else first_unfinished
    Batch.objects.filter(pk=batch.pk).update(
        total_items=batch.total_items,
        processed_items=batch.processed_items,
        failed_items=batch.failed_items,
        last_processed_index=batch.last_processed_index,
        updated_at=timezone.now(),
    )


def _fail_batch(batch_id: int, message: str) -> None:
    """A batch-level fault (provider not configured): stop the batch, burn no rows."""
    with transaction.atomic():
        batch = Batch.objects.select_for_update().get(pk=batch_id)
        if batch.status in Batch.ACTIVE_STATUSES:
            batch.status = Batch.Status.FAILED
            batch.error = message
            batch.finished_at = timezone.now()
            batch.save(update_fields=["status", "error", "finished_at", "updated_at"])


class _Slice:
    """One call of process_for_duration: worker threads that claim, run and record rows.

    1. workers take rows from a local queue; when it runs dry, one of them claims the
       next eligible rows (pending, or running with an expired lease; for a multi-turn
       chat only its earliest unfinished turn) with one conditional UPDATE that sets our
       lease, so a claim costs three queries for up to CLAIM_SIZE rows;
    2. before each provider call the worker checks the batch is still active, then runs
       the chat pipeline and records the result (item + interaction + counters) in one
       transaction that first checks the lease is still ours;
    3. stops taking rows at the deadline, on cancel, or when nothing is left to claim;
       rows claimed but not started go back to pending;
    4. a heartbeat thread renews our leases while the slice runs.
    """

    CLAIM_SIZE = 16

    def __init__(self, batch: Batch, *, seconds: float, concurrency: int) -> None:
        self.batch_id = batch.pk
        self.deadline = time.monotonic() + max(seconds, 0.0)
        self.concurrency = max(concurrency, 1)
        self.lease_seconds = settings.BATCH_LEASE_SECONDS
        self.owner = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.stop = threading.Event()
        self.lock = threading.Lock()  # counters and in_flight
        self.claim_lock = threading.Lock()  # one claimer at a time; others wait for its rows
        self.queue: deque[BatchItem] = deque()
        self.in_flight = 0
        self.resume_at = 0.0  # monotonic time before which no new call starts
        self.done = 0
        self.failed = 0
        self.fatal: str | None = None
        # Only batches with multi-turn chats pay for the "earlier turn unfinished" check.
        counts = batch.items.aggregate(rows=Count("id"), chats=Count("chat", distinct=True))
        self.multi_turn = counts["chats"] < counts["rows"]

    # -- claiming ------------------------------------------------------------------------
    def _candidate_ids(self, now) -> list[int]:
        """The next eligible rows by position. Pending and expired-running rows are asked
        for separately: each query then walks the (batch, status, position) index instead
        of filtering the whole batch."""
        rows = BatchItem.objects.filter(batch_id=self.batch_id)
        if self.multi_turn:
            rows = rows.exclude(
                Exists(
                    BatchItem.objects.filter(
                        chat_id=OuterRef("chat_id"),
                        position__lt=OuterRef("position"),
                        batch_id=self.batch_id,
                        status__in=UNFINISHED,
                    )
                )
            )
        size = min(self.CLAIM_SIZE, self.concurrency)
        # A pending row with a lease expiry is resting after a rate limit until then.
        pending = rows.filter(status=BatchItem.Status.PENDING).exclude(lease_expires_at__gte=now)
        expired = rows.filter(status=BatchItem.Status.RUNNING, lease_expires_at__lt=now)
        found = [
            *pending.order_by("position").values_list("position", "pk")[:size],
            *expired.order_by("position").values_list("position", "pk")[:size],
        ]
        return [pk for _position, pk in sorted(found)[:size]]

    def _claim(self) -> list[BatchItem]:
        """Claim up to CLAIM_SIZE eligible rows; [] only when none is left to claim."""
        while True:
            now = timezone.now()
            ids = self._candidate_ids(now)
            if not ids:
                return []
            # The eligibility condition again: rows another caller took since the SELECT
            # are skipped, so every row is claimed by one caller only.
            claimable = Q(
                Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now),
                status__in=UNFINISHED,
            )
            claimed = BatchItem.objects.filter(claimable, pk__in=ids).update(
                status=BatchItem.Status.RUNNING,
                lease_owner=self.owner,
                lease_expires_at=now + timedelta(seconds=self.lease_seconds),
                attempts=F("attempts") + 1,
            )
            if claimed:
                return list(
                    BatchItem.objects.filter(
                        pk__in=ids, lease_owner=self.owner, status=BatchItem.Status.RUNNING
                    )
                    .select_related("chat")
                    .order_by("position")
                )
            # Another caller claimed all of them first: look again further on.

    def _take(self) -> BatchItem | None:
        with self.claim_lock:
            if not self.queue and not self.stop.is_set():
                self.queue.extend(self._claim())
            return self.queue.popleft() if self.queue else None

    def _release_unstarted(self) -> None:
        with self.claim_lock:
            for item in self.queue:
                self._release(item)
            self.queue.clear()

    def _batch_active(self) -> bool:
        status = Batch.objects.filter(pk=self.batch_id).values_list("status", flat=True).first()
        return status in Batch.ACTIVE_STATUSES

    # -- one row ---------------------------------------------------------------------------
    def _release(self, item: BatchItem) -> None:
        """Give back a claimed row that was not started (as pending: if the batch was
        cancelled meanwhile, _finish_slice turns it into cancelled under the batch lock)."""
        BatchItem.objects.filter(pk=item.pk, lease_owner=self.owner).update(
            status=BatchItem.Status.PENDING,
            lease_owner="",
            lease_expires_at=None,
            attempts=F("attempts") - 1,
        )

    def _record(self, item: BatchItem, *, status: str, error: str = "", interaction=None) -> None:
        """Item status + counters (+ the interaction, stored by the caller's transaction)."""
        updated = BatchItem.objects.filter(
            pk=item.pk, lease_owner=self.owner, status=BatchItem.Status.RUNNING
        ).update(
            status=status,
            error=error[:2000],  # a done row forgets an earlier rate-limit message
            interaction=interaction,
            lease_owner="",
            lease_expires_at=None,
            finished_at=timezone.now(),
        )
        if not updated:
            raise LeaseLost(item.pk)
        counter = "processed_items" if status == BatchItem.Status.DONE else "failed_items"
        Batch.objects.filter(pk=self.batch_id).update(
            **{counter: F(counter) + 1}, updated_at=timezone.now()
        )

    def _run(self, item: BatchItem) -> None:
        if not self._batch_active():
            # Cancelled (or failed) after we claimed it: no provider call starts now.
            self._release(item)
            self.stop.set()
            return
        try:
            process_message(
                chat=item.chat,
                question=item.question,
                referring_url=item.referring_url,
                in_transaction=lambda interaction: self._record(
                    item, status=BatchItem.Status.DONE, interaction=interaction
                ),
            )
        except ProviderNotConfigured as exc:
            self._release(item)
            self.fatal = str(exc)
            self.stop.set()
            return
        except LeaseLost:
            logger.warning("Lease lost on item %s; its result was dropped", item.pk)
            return
        except TransientProviderError as exc:
            if item.attempts < settings.BATCH_ROW_MAX_ATTEMPTS:
                self._retry_later(item, exc)
            else:
                self._fail(item, str(exc))
            return
        except ProviderError as exc:
            self._fail(item, str(exc))
            return
        except Exception as exc:  # a bug must fail the row, not kill the slice
            logger.exception("Unexpected error on batch item %s", item.pk)
            self._fail(item, f"Unexpected error: {type(exc).__name__}: {exc}")
            return
        with self.lock:
            self.done += 1

    def _retry_later(self, item: BatchItem, exc: TransientProviderError) -> None:
        """The provider is overloaded (it kept answering 429/5xx through the pipeline's own
        retries): rather than fail, the row rests until the provider's Retry-After (or a
        backoff) and goes back to pending, and this slice starts no call until then. Rows
        fail only after BATCH_ROW_MAX_ATTEMPTS such attempts."""
        wait = exc.retry_after
        if wait is None:
            wait = min(settings.PROVIDER_BACKOFF_BASE * 2**item.attempts, 300.0)
        BatchItem.objects.filter(
            pk=item.pk, lease_owner=self.owner, status=BatchItem.Status.RUNNING
        ).update(
            status=BatchItem.Status.PENDING,
            error=str(exc)[:2000],
            lease_owner="",
            lease_expires_at=timezone.now() + timedelta(seconds=wait),
        )
        with self.lock:
            self.resume_at = max(self.resume_at, time.monotonic() + wait)

    def _fail(self, item: BatchItem, message: str) -> None:
        """Fail the row; in a multi-turn chat its later turns fail with it (they need this
        turn's answer as history), so that a retry runs them all again in order."""
        later = 0
        try:
            with transaction.atomic():
                self._record(item, status=BatchItem.Status.FAILED, error=message)
                if self.multi_turn:
                    later = BatchItem.objects.filter(
                        batch_id=self.batch_id,
                        chat_id=item.chat_id,
                        position__gt=item.position,
                        status=BatchItem.Status.PENDING,
                    ).update(
                        status=BatchItem.Status.FAILED,
                        error=f"An earlier turn of this conversation (row {item.position + 1}) "
                        "failed; this one needs its answer first.",
                        finished_at=timezone.now(),
                    )
                    if later:
                        Batch.objects.filter(pk=self.batch_id).update(
                            failed_items=F("failed_items") + later
                        )
        except LeaseLost:
            return
        with self.lock:
            self.failed += 1 + later

    # -- threads ---------------------------------------------------------------------------
    def _worker(self) -> None:
        try:
            while not self.stop.is_set() and time.monotonic() < self.deadline:
                with self.lock:
                    pause = self.resume_at - time.monotonic()
                if pause > 0:
                    self.stop.wait(min(pause, max(self.deadline - time.monotonic(), 0.0)))
                    continue
                item = self._take()
                if item is None:
                    with self.lock:
                        others_busy = self.in_flight > 0
                    if not others_busy:
                        break
                    # A row in flight here may unblock the next turn of its chat.
                    time.sleep(0.05)
                    continue
                with self.lock:
                    self.in_flight += 1
                try:
                    self._run(item)
                finally:
                    with self.lock:
                        self.in_flight -= 1
        except Exception:
            # A database error while claiming: this worker stops; its siblings go on, and
            # rows it held are released at the end of the slice or when their lease ends.
            logger.exception("Batch %s: a slice worker stopped", self.batch_id)
        finally:
            connection.close()

    def _heartbeat(self, workers: list[threading.Thread]) -> None:
        interval = max(self.lease_seconds / 3, 0.5)
        try:
            while any(w.is_alive() for w in workers):
                for w in workers:
                    w.join(timeout=interval / len(workers))
                BatchItem.objects.filter(
                    lease_owner=self.owner, status=BatchItem.Status.RUNNING
                ).update(lease_expires_at=timezone.now() + timedelta(seconds=self.lease_seconds))
        finally:
            connection.close()

    def run(self) -> None:
        workers = [
            threading.Thread(target=self._worker, name=f"batch-{self.batch_id}-{n}", daemon=True)
            for n in range(self.concurrency)
        ]
        for worker in workers:
            worker.start()
        heartbeat = threading.Thread(target=self._heartbeat, args=(workers,), daemon=True)
        heartbeat.start()
        for worker in workers:
            worker.join()
        heartbeat.join()
        self._release_unstarted()


def process_for_duration(
    *, batch_id: int, seconds: float, concurrency: int | None = None
) -> SliceResult:
    """Process rows of a batch for about `seconds`; safe to call from many places at once.

    1. move an uploaded/queued batch to processing (cancelled or failed: BatchStateError);
    2. check the providers are configured, or fail the batch without burning rows;
    3. run a slice (see _Slice): rows in flight at the deadline are finished, not dropped;
    4. recount the counters and last_processed_index, and complete the batch when no
       row is left.
    """
    now = timezone.now()
    batch = Batch.objects.get(pk=batch_id)
    if batch.status in (Batch.Status.CANCELLED, Batch.Status.FAILED):
        raise BatchStateError(
            f"This batch is {batch.get_status_display().lower()}; start it again to resume."
        )
    Batch.objects.filter(
        pk=batch_id, status__in=(Batch.Status.UPLOADED, Batch.Status.QUEUED)
    ).update(status=Batch.Status.PROCESSING, updated_at=now)
    Batch.objects.filter(pk=batch_id, started_at__isnull=True).update(started_at=now)
    batch.refresh_from_db()

    work = _Slice(batch, seconds=seconds, concurrency=concurrency or settings.BATCH_CONCURRENCY)
    if batch.status == Batch.Status.PROCESSING:
        try:
            check_chat_settings(
                ai_provider=batch.ai_provider,
                model=batch.model,
                search_provider=batch.search_provider,
            )
        except ProviderNotConfigured as exc:
            work.fatal = str(exc)
        else:
            work.run()
            _grade_answered(batch_id)
    try:
        if work.fatal:
            _fail_batch(batch_id, work.fatal)
        return _finish_slice(batch_id, done=work.done, failed=work.failed)
    except Batch.DoesNotExist:
        raise BatchStateError("This batch was deleted while it was being processed.") from None


def _grade_answered(batch_id: int) -> None:
    """Evaluation hook: grade the rows this slice answered (batches.grading). Until the
    grouped writer calls grading.grade_items itself, a slice grades what it left ungraded.
    A grading bug must not fail the batch: the rows stay ungraded and can be re-graded."""
    try:
        grade_finished_items(batch_id=batch_id)
    except Exception:
        logger.exception("Batch %s: grading failed", batch_id)


def _finish_slice(batch_id: int, *, done: int, failed: int) -> SliceResult:
    with transaction.atomic():
        batch = Batch.objects.select_for_update().get(pk=batch_id)
        if batch.status == Batch.Status.CANCELLED:
            # Rows released after the cancel (claimed, not started) are cancelled too.
            batch.items.filter(status=BatchItem.Status.PENDING).update(
                status=BatchItem.Status.CANCELLED
            )
        _recount(batch)
        unfinished = batch.items.filter(status__in=UNFINISHED).exists()
        if batch.status in Batch.ACTIVE_STATUSES and not unfinished:
            batch.status = Batch.Status.COMPLETED
            batch.finished_at = timezone.now()
            batch.save(update_fields=["status", "finished_at", "updated_at"])
    return SliceResult(
        batch_id=batch_id, status=batch.status, done=done, failed=failed, remaining=batch.remaining
    )


def stalled_batch_ids(*, idle_seconds: float) -> list[int]:
    """Active batches that nobody holds a live lease on and that have not moved for
    `idle_seconds`: all workers restarted, their tasks were lost, or a runner died between
    recording the last row and completing the batch (a slice completes it)."""
    now = timezone.now()
    live_lease = BatchItem.objects.filter(
        batch_id=OuterRef("pk"), status=BatchItem.Status.RUNNING, lease_expires_at__gte=now
    )
    return list(
        Batch.objects.filter(
            status__in=Batch.ACTIVE_STATUSES, updated_at__lte=now - timedelta(seconds=idle_seconds)
        )
        .exclude(Exists(live_lease))
        .values_list("pk", flat=True)
    )


def recover_stalled_batches(*, idle_seconds: float) -> list[int]:
    """Re-enqueue slices for stalled batches (the Celery beat task calls this)."""
    batch_ids = stalled_batch_ids(idle_seconds=idle_seconds)
    for batch_id in batch_ids:
        Batch.objects.filter(pk=batch_id).update(updated_at=timezone.now())
        _enqueue_slices(batch_id)
    return batch_ids
