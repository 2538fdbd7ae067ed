"""The batch engine: a batch processed in resumable slices, many provider calls in flight.

State lives on rows: an item is claimed with a conditional UPDATE that sets a lease
(owner + expiry), and every result is recorded with a check that the lease is still ours.
So any number of callers (threads, processes, Celery workers, machines) can work on one
batch: each row completes once, and a row whose worker died is claimed again when its
lease expires.

One slice, two threads:
- the slice itself is a coroutine on the process's provider loop (`chats.aio`): it keeps
  `concurrency` rows in flight through the chat pipeline's `answer` step, with the SDKs'
  async clients, without a thread per call;
- every database query of the slice runs, one at a time, in the thread that called
  `process_for_duration` (its own Django connection: a slice holds ONE connection). That
  thread is otherwise idle while the slice runs.
Results are recorded by one writer in groups (up to GROUP_ROWS rows or GROUP_SECONDS):
interactions bulk-created, rows updated after the lease check, counters updated once,
all in one transaction. Writes per row stay far below one, whatever the concurrency. A
writer that falls behind (answers coming faster than the database takes them) catches up
in larger groups, and no new row starts while BACKLOG_ROWS results wait: memory stays
bounded whatever the batch size.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import queue
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery
from django.utils import timezone

from batches import grading
from batches.errors import BatchStateError
from batches.guard_rows import guarded_item_fields
from batches.models import Batch, BatchItem
from chats.models import Interaction
from chats.services import (
    Answer,
    ProviderError,
    ProviderNotConfigured,
    TransientProviderError,
    Turn,
    answer,
    check_chat_settings,
    limits_snapshot,
    lock_chats,
    provider_loop,
    store_answers,
    turns_for,
)

logger = logging.getLogger(__name__)

UNFINISHED = (BatchItem.Status.PENDING, BatchItem.Status.RUNNING)
# A claim takes as many rows as there are calls in flight, within these bounds: one claim
# per `concurrency` rows started, and few rows leased ahead when concurrency is low.
CLAIM_MIN = 1
CLAIM_MAX = 500
# The writer records a group when it holds this many results or the oldest waited this long.
GROUP_ROWS = 50
GROUP_SECONDS = 0.1
GROUP_ROWS_MAX = 500  # a group when the writer is behind
BACKLOG_ROWS = 1000  # results waiting for the writer before new rows wait too
ERROR_CHARS = 2000
TICK_SECONDS = 1.0
# How fresh a status read must be for a row to start its provider call (cancel_batch
# returns this long after its commit: see _Slice._batch_active), how often the status is
# read, and the time a call may take to go out after its row's check.
STATUS_FENCE_SECONDS = 0.25
STATUS_READ_SECONDS = 0.05
STATUS_MARGIN_SECONDS = 0.05


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


# --- The calling thread serves the slice's database work -----------------------------------


class _CallerThread:
    """Runs the slice's database work in the thread that called process_for_duration.

    The coroutine awaits `db(fn, *args)`; the calling thread, blocked in `serve` until the
    slice ends, runs the jobs one at a time with its own connection and hands the results
    back to the loop. Urgent jobs (the status read rows wait for before their provider
    call) go ahead of queued claims and writes.
    """

    def __init__(self) -> None:
        self.wake: queue.SimpleQueue[bool] = queue.SimpleQueue()  # one token per job or end
        self.urgent: deque[tuple[Callable, tuple, asyncio.Future]] = deque()
        self.normal: deque[tuple[Callable, tuple, asyncio.Future]] = deque()

    async def __call__(self, fn: Callable, *args: Any, urgent: bool = False) -> Any:
        future = asyncio.get_running_loop().create_future()
        (self.urgent if urgent else self.normal).append((fn, args, future))
        self.wake.put(True)
        return await future

    def serve(self, slice_future: concurrent.futures.Future) -> Any:
        slice_future.add_done_callback(lambda _future: self.wake.put(False))
        loop = provider_loop()
        try:
            while self.wake.get():
                fn, args, future = (self.urgent or self.normal).popleft()
                try:
                    result = fn(*args)
                except Exception as exc:
                    loop.call_soon_threadsafe(_settle, future, None, exc)
                else:
                    loop.call_soon_threadsafe(_settle, future, result, None)
        except BaseException:
            # A second Ctrl-C: stop at once; rows in flight are taken over when their
            # leases expire.
            slice_future.cancel()
            raise
        return slice_future.result()


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


# --- One slice -----------------------------------------------------------------------------


@dataclass
class _Outcome:
    item: BatchItem
    status: str  # BatchItem.Status DONE / FAILED / PENDING (rest, or given back)
    answer: Answer | None = None
    error: str = ""
    rest_until: datetime | None = None  # PENDING after a rate limit: not before then
    verdict: tuple[str, str] | None = None  # the AI judge's (verdict, notes), when asked
    given_back: bool = False  # PENDING, never started: its attempt does not count


@dataclass
class _Claimed:
    item: BatchItem
    turn: Turn


@dataclass
class _Slice:
    """One call of process_for_duration (see the module docstring).

    1. rows come from a local queue; when it runs dry, the next eligible rows (pending,
       or running with an expired lease; for a multi-turn chat only its earliest
       unfinished turn) are claimed with one conditional UPDATE that sets our lease;
    2. before each provider call the row checks the batch is still active, from a status
       read that started at most STATUS_FENCE_SECONDS before (reads run in the
       background), so no call starts after a cancel has returned;
    3. results go to the writer, which records them in groups;
    4. stops taking rows at the deadline, on cancel, or when nothing is left to claim;
       rows in flight finish and are recorded; rows claimed but not started go back;
    5. a heartbeat renews our leases while the slice runs.
    """

    batch_id: int
    deadline: float  # time.monotonic()
    concurrency: int
    multi_turn: bool
    db: _CallerThread
    provider: str = ""
    model: str = ""
    judge_enabled: bool = False
    should_stop: Callable[[], bool] | None = None
    on_progress: Callable[[int, int], None] | None = None
    owner: str = field(
        default_factory=lambda: f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    )
    done: int = 0
    failed: int = 0
    fatal: str | None = None

    def __post_init__(self) -> None:
        self.lease_seconds = float(settings.BATCH_LEASE_SECONDS)
        self.queue: deque[_Claimed] = deque()
        self.stopping = False
        self.resume_at = 0.0  # monotonic time before which no new call starts
        self.pending: list[_Outcome] = []
        self.in_flight = 0
        self.writing = 0  # results taken by the writer, not yet committed
        self.throttle: dict = {}  # as last published on the batch
        self.claim_size = min(max(self.concurrency, CLAIM_MIN), CLAIM_MAX)
        self.refill: asyncio.Task | None = None  # a claim under way
        self.more = True  # whether the last claim was full (more rows may be claimable)
        self.closing = False

    # -- the feeder ----------------------------------------------------------------------
    async def run(self) -> None:
        self.changed = asyncio.Event()  # a row ended or a group was written
        self.outcome_added = asyncio.Event()
        self.status_read = asyncio.Event()  # a status read came back
        self.want_status = asyncio.Event()  # a row waits for a fresh one
        self.active_until = 0.0  # monotonic: rows may start calls until then
        self.status_seen: bool | None = None  # False once the batch is seen inactive
        slots = asyncio.Semaphore(self.concurrency)
        writer = asyncio.create_task(self._writer())
        heartbeat = asyncio.create_task(self._heartbeat())
        ticker = asyncio.create_task(self._ticker())
        reader = asyncio.create_task(self._status_reader())
        rows: set[asyncio.Task] = set()
        try:
            while await self._may_start():
                if len(self.pending) >= BACKLOG_ROWS:
                    # The writer is behind: let it catch up before answering more rows.
                    self.changed.clear()
                    await self._wait(self.changed, 0.5)
                    continue
                await slots.acquire()
                claimed = await self._next() if await self._may_start() else None
                if claimed is None:
                    slots.release()
                    if self.stopping or time.monotonic() >= self.deadline:
                        break
                    if not (self.in_flight or self.pending or self.writing):
                        break  # nothing left to claim, nothing that could unblock a row
                    # A row in flight may unblock the next turn of its chat once recorded.
                    self.changed.clear()
                    await self._wait(self.changed, 0.5)
                    continue
                self.in_flight += 1
                task = asyncio.create_task(self._row(claimed, slots))
                rows.add(task)
                task.add_done_callback(rows.discard)
            if rows:
                await asyncio.gather(*rows)
            if self.refill is not None:
                await self.refill
        finally:
            self.stopping = True
            for task in rows:
                task.cancel()
            self.closing = True
            self.outcome_added.set()
            try:
                await writer
            finally:
                heartbeat.cancel()
                ticker.cancel()
                reader.cancel()
                if self.refill is not None:
                    # Let a claim under way land in the queue, so its rows are given back.
                    with contextlib.suppress(Exception):
                        await self.refill
                await self.db(self._release_unstarted)
                if self.throttle:
                    await self.db(self._publish_throttle, {})

    async def _may_start(self) -> bool:
        """Not stopped, before the deadline; waits out a provider's Retry-After."""
        if self.should_stop is not None and self.should_stop():
            self.stopping = True
        while not self.stopping:
            now = time.monotonic()
            if now >= self.deadline:
                return False
            if self.resume_at <= now:
                return True
            await asyncio.sleep(min(self.resume_at, self.deadline) - now)
        return False

    @staticmethod
    async def _wait(event: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)

    async def _next(self) -> _Claimed | None:
        """The next claimed row. The queue is refilled in the background when it runs
        low, so that free slots never wait for a claim (which would start rows in waves:
        all at once after each claim, then none until the next)."""
        if not self.queue:
            await (self.refill or self._start_refill())
        claimed = self.queue.popleft() if self.queue else None
        if claimed is not None and len(self.queue) < self.claim_size // 2 and self.more:
            self._start_refill()
        return claimed

    def _start_refill(self) -> asyncio.Task:
        if self.refill is None:
            self.refill = asyncio.create_task(self._refill())
        return self.refill

    async def _refill(self) -> None:
        try:
            claimed = await self.db(self._claim)
            self.queue.extend(claimed)
            # A short claim means nothing more is claimable now; claim again only when
            # the queue runs dry (rows may become claimable: a rest ends, a turn is done).
            self.more = len(claimed) >= self.claim_size
        except Exception:
            # A database error while claiming: this slice stops taking rows; rows in
            # flight are still recorded, and the next slice claims again.
            logger.exception("Batch %s: claiming rows failed", self.batch_id)
            self.stopping = True
        finally:
            self.refill = None

    # -- one row -------------------------------------------------------------------------
    async def _row(self, claimed: _Claimed, slots: asyncio.Semaphore) -> None:
        item = claimed.item
        try:
            if not await self._batch_active():
                # Cancelled (or failed, or deleted) after we claimed it: no call starts.
                self.stopping = True
                self._record(_Outcome(item, BatchItem.Status.PENDING, given_back=True))
                return
            try:
                answered = await answer(claimed.turn)
            except ProviderNotConfigured as exc:
                self.fatal = str(exc)
                self.stopping = True
                self._record(_Outcome(item, BatchItem.Status.PENDING, given_back=True))
            except TransientProviderError as exc:
                if item.attempts < settings.BATCH_ROW_MAX_ATTEMPTS:
                    self._rest(item, exc)
                else:
                    self._record(_Outcome(item, BatchItem.Status.FAILED, error=str(exc)))
            except ProviderError as exc:
                self._record(_Outcome(item, BatchItem.Status.FAILED, error=str(exc)))
            except Exception as exc:  # a bug must fail the row, not kill the slice
                logger.exception("Unexpected error on batch item %s", item.pk)
                error = f"Unexpected error: {type(exc).__name__}: {exc}"
                self._record(_Outcome(item, BatchItem.Status.FAILED, error=error))
            else:
                verdict = None
                text = answered.fields.get("answer", "")
                if self.judge_enabled and grading.wants_judge(item, text):
                    verdict = await grading.judge(item=item, answer=text)
                outcome = _Outcome(item, BatchItem.Status.DONE, answer=answered, verdict=verdict)
                self._record(outcome)
        finally:
            self.in_flight -= 1
            slots.release()
            self.changed.set()

    def _rest(self, item: BatchItem, exc: TransientProviderError) -> None:
        """The provider is overloaded (it kept answering 429/5xx through the pipeline's own
        retries): rather than fail, the row rests until the provider's Retry-After (or a
        backoff) and goes back to pending, and this slice starts no call until then. Rows
        fail only after BATCH_ROW_MAX_ATTEMPTS such attempts."""
        wait = exc.retry_after
        if wait is None:
            wait = min(settings.PROVIDER_BACKOFF_BASE * 2**item.attempts, 300.0)
        # The row's rest is reckoned from now, not from when the writer records it; this
        # slice claims again a moment after the rest is over.
        rest_until = timezone.now() + timedelta(seconds=wait)
        self.resume_at = max(self.resume_at, time.monotonic() + wait + 0.01)
        self._record(
            _Outcome(item, BatchItem.Status.PENDING, error=str(exc), rest_until=rest_until)
        )

    async def _batch_active(self) -> bool:
        """Whether the batch is still active, from a status read that started at most
        STATUS_FENCE_SECONDS ago (less a margin for the call to go out). cancel_batch
        returns STATUS_FENCE_SECONDS after its commit, so a call that starts after a
        cancel has returned would need a read that started after the commit, which
        sees it. Reads run in the background (_status_reader): rows do not wait for one
        unless the last is too old."""
        while True:
            if self.status_seen is False:
                return False
            if time.monotonic() + STATUS_MARGIN_SECONDS < self.active_until:
                return True
            self.status_read.clear()
            self.want_status.set()
            await self.status_read.wait()

    async def _status_reader(self) -> None:
        """Read the batch status every STATUS_READ_SECONDS, and at once when a row waits
        for a fresh one. A read is dated from when it starts in the database thread."""
        while True:
            try:
                started, status = await self.db(self._read_status, urgent=True)
            except Exception:
                # The status could not be read (the database went away): no call starts.
                logger.exception("Batch %s: reading its status failed", self.batch_id)
                status, started = None, time.monotonic()
            if status in Batch.ACTIVE_STATUSES:
                self.active_until = started + STATUS_FENCE_SECONDS
            else:
                # Cancelled (or failed, or deleted): no call starts from now on.
                self.status_seen = False
                self.stopping = True
            self.status_read.set()
            if self.status_seen is False:
                return
            self.want_status.clear()
            await self._wait(self.want_status, STATUS_READ_SECONDS)

    def _record(self, outcome: _Outcome) -> None:
        self.pending.append(outcome)
        self.outcome_added.set()

    # -- the writer ------------------------------------------------------------------------
    async def _writer(self) -> None:
        """Record results in groups: one transaction per GROUP_ROWS rows or GROUP_SECONDS."""
        loop = asyncio.get_running_loop()
        while True:
            if not self.pending:
                if self.closing:
                    return
                self.outcome_added.clear()
                await self.outcome_added.wait()
                continue
            first = loop.time()
            # Wait for a fuller group only while rows are in flight to fill it.
            while len(self.pending) < GROUP_ROWS and self.in_flight and not self.closing:
                left = first + GROUP_SECONDS - loop.time()
                if left <= 0:
                    break
                self.outcome_added.clear()
                await self._wait(self.outcome_added, left)
            group, self.pending = self.pending[:GROUP_ROWS_MAX], self.pending[GROUP_ROWS_MAX:]
            self.writing = len(group)
            try:
                done, failed = await self.db(self._write_group, group)
            except Exception:
                # The database refused the group (it went away, a lock timed out): its
                # rows keep their leases and are answered again after expiry.
                logger.exception("Batch %s: recording %d rows failed", self.batch_id, len(group))
                self.stopping = True
            else:
                self.done += done
                self.failed += failed
                if self.on_progress is not None:
                    await self.db(self.on_progress, self.done, self.failed)
            self.writing = 0
            self.changed.set()

    async def _ticker(self) -> None:
        """Every second: publish whether the provider's quota holds the batch back (the
        pages and the API show it), and report progress to a caller that asked."""
        while True:
            await asyncio.sleep(TICK_SECONDS)
            throttle = self._throttle_now()
            if throttle != self.throttle:
                await self.db(self._publish_throttle, throttle)
            if self.on_progress is not None:
                await self.db(self.on_progress, self.done, self.failed)

    def _throttle_now(self) -> dict:
        shot = limits_snapshot(self.provider, self.model)
        if shot is None:
            return {}
        until = shot["until"] if shot["until"] > time.time() else None
        if until is None and shot["limit"] is None:
            return {}
        return {
            "until": round(until, 1) if until else None,
            "in_flight": shot["in_flight"],
            "limit": shot["limit"],
            "concurrency": self.concurrency,
        }

    async def _heartbeat(self) -> None:
        interval = max(self.lease_seconds / 3, 0.5)
        while True:
            await asyncio.sleep(interval)
            await self.db(self._renew_leases)

    # -- database work (in the calling thread) ----------------------------------------------
    def _read_status(self) -> tuple[float, str | None]:
        started = time.monotonic()
        status = Batch.objects.filter(pk=self.batch_id).values_list("status", flat=True).first()
        return started, status

    def _candidate_ids(self, now, size: int) -> list[int]:
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
        # A pending row with a lease expiry is resting after a rate limit until then.
        pending = rows.filter(status=BatchItem.Status.PENDING).exclude(lease_expires_at__gte=now)
        expired = rows.filter(status=BatchItem.Status.RUNNING, lease_expires_at__lt=now)
        found = [
            *pending.order_by("position").values_list("position", "pk")[:size],
            *expired.order_by("position").values_list("position", "pk")[:size],
        ]
        return [pk for _position, pk in sorted(found)[:size]]

    def _claim(self) -> list[_Claimed]:
        """Claim up to `concurrency` eligible rows (at most CLAIM_MAX) with their turns
        (history, prompt override); [] only when none is left to claim."""
        size = self.claim_size
        while True:
            now = timezone.now()
            ids = self._candidate_ids(now, size)
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
                items = list(
                    BatchItem.objects.filter(
                        pk__in=ids, lease_owner=self.owner, status=BatchItem.Status.RUNNING
                    )
                    .select_related("chat")
                    .order_by("position")
                )
                turns = turns_for([(i.chat, i.question, i.referring_url) for i in items])
                return [_Claimed(item, turn) for item, turn in zip(items, turns, strict=True)]
            # Another caller claimed all of them first: look again further on.

    def _write_group(self, group: list[_Outcome]) -> tuple[int, int]:
        """Record a group of results in one transaction; returns (done, failed).

        Locks in the order delete_batch uses (chats, rows, batch), so a batch deleted
        meanwhile either waits for this group or finds the rows gone; a row whose lease
        is no longer ours (another worker took it over) is dropped.
        """
        now = timezone.now()
        with transaction.atomic():
            # Lock order as delete_batch: chats, rows, batch.
            lock_chats({o.item.chat_id for o in group if o.answer is not None})
            ours = set(
                BatchItem.objects.select_for_update()
                .filter(
                    pk__in=[o.item.pk for o in group],
                    lease_owner=self.owner,
                    status=BatchItem.Status.RUNNING,
                )
                .order_by("pk")
                .values_list("pk", flat=True)
            )
            kept = [o for o in group if o.item.pk in ours]
            if len(kept) < len(group):
                logger.warning(
                    "Batch %s: %d results dropped (lease lost to another worker)",
                    self.batch_id,
                    len(group) - len(kept),
                )
            answered = [o for o in kept if o.answer is not None]
            interactions = store_answers(
                [(o.item.chat, o.answer) for o in answered], chats_locked=True
            )
            for outcome, interaction in zip(answered, interactions, strict=True):
                outcome.item.interaction = interaction
            self._update_rows(kept, now)
            # The guard's redacted question replaces the batch's own copies of it.
            screened = []
            for outcome in answered:
                fields = guarded_item_fields(outcome.item, outcome.item.interaction)
                if fields:
                    outcome.item.question = fields["question"]
                    outcome.item.row = fields.get("row", outcome.item.row)
                    screened.append(outcome.item)
            if screened:
                BatchItem.objects.bulk_update(screened, ["question", "row"])
            # Grades against the rows' expected answers (the judge's verdicts came with
            # the answers: no network call inside this transaction).
            grading.grade_items(
                items=[o.item for o in answered],
                verdicts={o.item.pk: o.verdict for o in answered if o.verdict},
            )
            done = len(answered)
            failed = sum(o.status == BatchItem.Status.FAILED for o in kept)
            if self.multi_turn:
                failed += sum(
                    self._fail_later_turns(o.item)
                    for o in kept
                    if o.status == BatchItem.Status.FAILED
                )
            if done or failed:
                Batch.objects.filter(pk=self.batch_id).update(
                    processed_items=F("processed_items") + done,
                    failed_items=F("failed_items") + failed,
                    updated_at=now,
                )
        return done, failed

    @staticmethod
    def _update_rows(kept: list[_Outcome], now: datetime) -> None:
        """Rows of one kind share every field but one or two: one UPDATE per kind sets the
        shared ones, and a bulk_update only a field that differs row by row (its CASE per
        row costs far more than the UPDATE itself)."""
        released = {"lease_owner": "", "lease_expires_at": None}
        # A done row's interaction is the newest of its chat: stored just now, in this
        # transaction, with the chat locked (a chat has one turn in flight at a time).
        newest = Interaction.objects.filter(chat_id=OuterRef("chat_id")).order_by("-position")
        kinds = (
            (
                [o for o in kept if o.answer is not None],
                {
                    "status": BatchItem.Status.DONE,
                    "error": "",
                    "finished_at": now,
                    "interaction": Subquery(newest.values("pk")[:1]),
                    **released,
                },
                [],
            ),
            (
                [o for o in kept if o.status == BatchItem.Status.FAILED],
                {"status": BatchItem.Status.FAILED, "finished_at": now, **released},
                ["error"],
            ),
            (
                [o for o in kept if o.rest_until is not None],
                {"status": BatchItem.Status.PENDING, "lease_owner": "", "finished_at": None},
                ["error", "lease_expires_at"],
            ),
            (
                [o for o in kept if o.given_back],
                {
                    "status": BatchItem.Status.PENDING,
                    "finished_at": None,
                    "attempts": F("attempts") - 1,
                    **released,
                },
                [],
            ),
        )
        for outcomes, shared, varying in kinds:
            if not outcomes:
                continue
            BatchItem.objects.filter(pk__in=[o.item.pk for o in outcomes]).update(**shared)
            if varying:
                for outcome in outcomes:
                    outcome.item.error = outcome.error[:ERROR_CHARS]
                    outcome.item.lease_expires_at = outcome.rest_until
                BatchItem.objects.bulk_update([o.item for o in outcomes], varying)

    def _fail_later_turns(self, item: BatchItem) -> int:
        """In a multi-turn chat a failed turn fails its later turns (they need its answer
        as history), so that a retry runs them all again in order."""
        return BatchItem.objects.filter(
            batch_id=self.batch_id,
            chat_id=item.chat_id,
            position__gt=item.position,
            status=BatchItem.Status.PENDING,
        ).update(
            status=BatchItem.Status.FAILED,
            error=f"An earlier turn of this conversation (row {item.position + 1}) failed; "
            "this one needs its answer first.",
            finished_at=timezone.now(),
        )

    def _publish_throttle(self, throttle: dict) -> None:
        self.throttle = throttle
        Batch.objects.filter(pk=self.batch_id).update(throttle=throttle)

    def _renew_leases(self) -> None:
        BatchItem.objects.filter(lease_owner=self.owner, status=BatchItem.Status.RUNNING).update(
            lease_expires_at=timezone.now() + timedelta(seconds=self.lease_seconds)
        )

    def _release_unstarted(self) -> None:
        """Give back claimed rows that were not started (as pending: if the batch was
        cancelled meanwhile, _finish_slice turns them into cancelled under the batch lock)."""
        ids = [claimed.item.pk for claimed in self.queue]
        self.queue.clear()
        if ids:
            BatchItem.objects.filter(pk__in=ids, lease_owner=self.owner).update(
                status=BatchItem.Status.PENDING,
                lease_owner="",
                lease_expires_at=None,
                attempts=F("attempts") - 1,
            )


def outlast_status_reads() -> None:
    """Wait until no slice can act on a status read that started before now (call after
    committing a stop): see _Slice._batch_active."""
    time.sleep(STATUS_FENCE_SECONDS)


def process_for_duration(
    *,
    batch_id: int,
    seconds: float,
    concurrency: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> SliceResult:
    """Process rows of a batch for about `seconds`; safe to call from many places at once.

    `concurrency` rows are in flight at once (default BATCH_CONCURRENCY). A long-running
    caller (run_batch, a worker) passes a long `seconds` with `should_stop` (polled before
    each row starts; rows in flight then finish) rather than many short slices, each of
    which ends by waiting for its slowest row. `on_progress(done, failed)` is called in
    this thread after every group of rows is recorded.

    1. move an uploaded/queued batch to processing (cancelled or failed: BatchStateError);
    2. check the providers are configured, or fail the batch without burning rows;
    3. run a slice (see _Slice) on the provider loop, serving its database work here;
       rows in flight at the deadline are finished, not dropped;
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

    fatal = None
    done = failed = 0
    if batch.status == Batch.Status.PROCESSING:
        try:
            check_chat_settings(
                ai_provider=batch.ai_provider,
                model=batch.model,
                search_provider=batch.search_provider,
            )
        except ProviderNotConfigured as exc:
            fatal = str(exc)
        else:
            # Only batches with multi-turn chats pay for the "earlier turn unfinished" check.
            counts = batch.items.aggregate(rows=Count("id"), chats=Count("chat", distinct=True))
            db = _CallerThread()
            work = _Slice(
                batch_id=batch_id,
                deadline=time.monotonic() + max(seconds, 0.0),
                concurrency=max(int(concurrency or settings.BATCH_CONCURRENCY), 1),
                multi_turn=counts["chats"] < counts["rows"],
                db=db,
                should_stop=should_stop,
                on_progress=on_progress,
                provider=batch.ai_provider,
                model=batch.model,
                judge_enabled=batch.judge_enabled,
            )
            db.serve(asyncio.run_coroutine_threadsafe(work.run(), provider_loop()))
            fatal, done, failed = work.fatal, work.done, work.failed
    try:
        if fatal:
            _fail_batch(batch_id, fatal)
        return _finish_slice(batch_id, done=done, failed=failed)
    except Batch.DoesNotExist:
        raise BatchStateError("This batch was deleted while it was being processed.") from None


def _fail_batch(batch_id: int, message: str) -> None:
    """A batch-level fault (provider not configured): stop the batch, burn no rows."""
    with transaction.atomic():
        batch = Batch.objects.select_for_update().get(pk=batch_id)
        if batch.status in Batch.ACTIVE_STATUSES:
            batch.mark_failed(message)


def _finish_slice(batch_id: int, *, done: int, failed: int) -> SliceResult:
    with transaction.atomic():
        batch = Batch.objects.select_for_update().get(pk=batch_id)
        if batch.status == Batch.Status.CANCELLED:
            # Rows released after the cancel (claimed, not started) are cancelled too.
            batch.items.filter(status=BatchItem.Status.PENDING).update(
                status=BatchItem.Status.CANCELLED
            )
        batch.recount()
        unfinished = batch.items.filter(status__in=UNFINISHED).exists()
        if batch.status in Batch.ACTIVE_STATUSES and not unfinished:
            batch.mark_completed()
    return SliceResult(
        batch_id=batch_id, status=batch.status, done=done, failed=failed, remaining=batch.remaining
    )
