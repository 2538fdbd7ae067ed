"""One slice: rows claimed, answered on the provider loop, and handed to the writer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from batches import hooks
from batches.costs import answer_cost, over_budget
from batches.engine.caller import CallerThread, wait_event
from batches.engine.claims import Claimed, Claims, new_owner
from batches.engine.status import StatusFence
from batches.engine.ticker import Ticker
from batches.engine.writer import Outcome, Writer
from batches.models import Batch, BatchItem
from chats.services import (
    Price,
    ProviderError,
    ProviderNotConfigured,
    ProviderUnavailable,
    TransientProviderError,
    answer,
    provider_down,
    provider_probe_seconds,
)

logger = logging.getLogger("batches.engine")

# Rows answered (and priced) before the budget check trusts their mean cost over the
# estimate made before start.
MEASURED_ROWS = 5


@dataclass
class Slice:
    """One call of process_for_duration, in four parts and the feeder that ties them.

    Parts: `claims` (rows claimed and our leases, batches.engine.claims), `fence` (the
    status reads, batches.engine.status), `writer` (results recorded in groups,
    batches.engine.writer), `ticker` (throttle and progress, batches.engine.ticker).
    Owns: whether the slice is stopping, the Retry-After pause, the rows in flight, a
    batch-level fault. Runs on: the provider loop (`chats.aio`), every method; database
    work goes to the caller thread through `db`.

    1. rows come from the claims' local queue, claimed in the background;
    2. before each provider call the row checks the status fence, so no call starts
       after a cancel has returned;
    3. results go to the writer, which records them in groups;
    4. stops taking rows at the deadline, on cancel, or when nothing is left to claim;
       rows in flight finish and are recorded; rows claimed but not started go back;
    5. a heartbeat renews our leases while the slice runs.
    """

    batch_id: int
    deadline: float  # time.monotonic()
    concurrency: int
    multi_turn: bool
    db: CallerThread
    provider: str = ""
    model: str = ""
    judge_enabled: bool = False
    # Cost: the batch's price (None: unknown, no budget check), its budget (None: none),
    # and the estimated cost of one row's calls (batches.costs.per_row_cost).
    price: Price | None = None
    budget: float | None = None
    per_call: float = 0.0
    extra_per_call: float = 0.0  # the judge's and guard's estimated share of per_call
    spent: float = 0.0  # Batch.spent when the slice began (until the first status read)
    should_stop: Callable[[], bool] | None = None
    on_progress: Callable[[int, int], None] | None = None
    # Economy mode: only the rows sent back to be retried in real time (Claims).
    realtime_retry: bool | None = None
    owner: str = field(default_factory=new_owner)
    fatal: str | None = None

    def __post_init__(self) -> None:
        self.stopping = False
        self.resume_at = 0.0  # monotonic time before which no new call starts
        self.probe_after = 0.0  # monotonic: provider down, the next row that may probe it
        self.in_flight = 0
        self.cost_recorded = 0.0  # the cost of the answers handed to the writer
        self.costed_rows = 0
        self.budget_reached = False
        self.changed = asyncio.Event()  # a row ended or a group was written
        self.claims = Claims(
            batch_id=self.batch_id,
            owner=self.owner,
            db=self.db,
            multi_turn=self.multi_turn,
            concurrency=self.concurrency,
            on_fault=self.stop,
            realtime_retry=self.realtime_retry,
        )
        self.fence = StatusFence(batch_id=self.batch_id, db=self.db, on_inactive=self.stop)
        self.fence.spent = self.spent
        self.writer = Writer(
            batch_id=self.batch_id,
            owner=self.owner,
            db=self.db,
            multi_turn=self.multi_turn,
            rows_in_flight=lambda: self.in_flight,
            on_written=self.changed.set,
            on_fault=self.stop,
            on_progress=self.on_progress,
            price=self.price,
        )
        self.ticker = Ticker(
            batch_id=self.batch_id,
            db=self.db,
            provider=self.provider,
            model=self.model,
            concurrency=self.concurrency,
            report_progress=self.writer.report_progress,
        )

    @property
    def done(self) -> int:
        return self.writer.done

    @property
    def failed(self) -> int:
        return self.writer.failed

    def stop(self) -> None:
        """Take no new row (cancelled, a fault, asked to stop); rows in flight finish."""
        self.stopping = True

    async def run(self) -> None:
        """The story of a slice.

        1. start the background parts: the writer, the lease heartbeat, the ticker and
           the status reader;
        2. while rows may start (not stopping, before the deadline, past any Retry-After
           pause, the provider answering or a probe due: `_may_start`): wait while the writer is behind; take a free slot and the next claimed
           row and answer it in a task of its own (`_row`); when no row can be claimed,
           wait for a row in flight to be recorded (it may unblock its chat's next turn),
           or end when nothing could;
        3. let the rows in flight finish, and the writer record every result;
        4. stop the background parts, give back rows claimed but not started, and clear
           the throttle this slice published.
        """
        slots = asyncio.Semaphore(self.concurrency)
        writer = asyncio.create_task(self.writer.run())
        heartbeat = asyncio.create_task(self.claims.heartbeat())
        ticker = asyncio.create_task(self.ticker.run())
        reader = asyncio.create_task(self.fence.run())
        rows: set[asyncio.Task] = set()
        try:
            while await self._may_start():
                if self.writer.behind:
                    # The writer is behind: let it catch up before answering more rows.
                    self.changed.clear()
                    await wait_event(self.changed, 0.5)
                    continue
                await slots.acquire()
                if self._over_budget():
                    slots.release()
                    await self.db(self._pause_for_budget)
                    break
                written = self.writer.groups_written
                claimed = await self.claims.next() if await self._may_start(probe=False) else None
                if claimed is None:
                    slots.release()
                    if self.stopping or time.monotonic() >= self.deadline:
                        break
                    if not (self.in_flight or self.writer.busy):
                        if self.writer.groups_written == written:
                            break  # nothing left to claim, nothing that could unblock a row
                        # A group was written while we claimed (the claim and the write
                        # take turns in the caller thread): it may have unblocked a chat's
                        # next turn, which the claim could not see yet. Claim again.
                        continue
                    # A row in flight may unblock the next turn of its chat once recorded.
                    self.changed.clear()
                    await wait_event(self.changed, 0.5)
                    continue
                self.in_flight += 1
                task = asyncio.create_task(self._row(claimed, slots))
                rows.add(task)
                task.add_done_callback(rows.discard)
            if rows:
                await asyncio.gather(*rows)
            if self.claims.refill is not None:
                await self.claims.refill
        finally:
            self.stopping = True
            for task in rows:
                task.cancel()
            self.writer.close()
            try:
                await writer
            finally:
                heartbeat.cancel()
                ticker.cancel()
                reader.cancel()
                if self.claims.refill is not None:
                    # Let a claim under way land in the queue, so its rows are given back.
                    with contextlib.suppress(Exception):
                        await self.claims.refill
                await self.db(self.claims.release_unstarted)
                await self.ticker.clear()

    def _over_budget(self) -> bool:
        """Whether one more row could pass the budget: spent (as last read, plus what
        this slice handed to the writer and it has not committed yet) and the estimate of
        the calls in flight and of this one (no query: see batches.costs)."""
        if self.budget is None:
            return False
        spent = self.fence.spent + self.cost_recorded - self.writer.cost_written
        return over_budget(
            budget=self.budget, spent=spent, in_flight=self.in_flight, per_call=self.per_call
        )

    def _measure(self, cost: float | None) -> None:
        """Count an answer's cost; once MEASURED_ROWS are, the estimated cost of a call
        becomes their mean (plus the estimated share of judge and guard calls)."""
        if cost is None:
            return
        self.cost_recorded += cost
        self.costed_rows += 1
        if self.costed_rows >= MEASURED_ROWS:
            self.per_call = self.cost_recorded / self.costed_rows + self.extra_per_call

    def _pause_for_budget(self) -> None:
        """In the caller thread: the batch pauses with reason "budget"; rows in flight
        finish and are recorded; other slices stop at their next status read."""
        self.budget_reached = True
        self.stopping = True
        with transaction.atomic():
            batch = Batch.objects.select_for_update().filter(pk=self.batch_id).first()
            if batch is not None and batch.is_active:
                batch.mark_paused(Batch.PauseReason.BUDGET)
                logger.info("Batch %s: paused, budget reached", self.batch_id)

    async def _may_start(self, *, probe: bool = True) -> bool:
        """Not stopped, before the deadline; waits out a provider's Retry-After, and an
        outage (the provider's circuit breaker open): then one row at a time, once every
        PROVIDER_BREAKER_PROBE_SECONDS, goes as the probe (`probe`: this call may grant
        it; the feeder's second check in one turn does not)."""
        if self.should_stop is not None and self.should_stop():
            self.stopping = True
        while not self.stopping:
            now = time.monotonic()
            if now >= self.deadline:
                return False
            if self.resume_at > now:
                await asyncio.sleep(min(self.resume_at, self.deadline) - now)
                continue
            if not probe or not await provider_down(self.provider, self.model):
                return True
            if not self.in_flight and now >= self.probe_after:
                self.probe_after = now + provider_probe_seconds()
                return True
            if self.should_stop is not None and self.should_stop():
                self.stopping = True
                break
            await asyncio.sleep(min(0.25, self.deadline - now))
        return False

    async def _row(self, claimed: Claimed, slots: asyncio.Semaphore) -> None:
        """Answer one claimed row and hand what became of it to the writer.

        Runs as a task of its own on the loop, holding one of `concurrency` slots.
        1. the status fence: a batch cancelled (failed, deleted) since the claim gives
           the row back unstarted, and the slice stops;
        2. the chat pipeline's `answer` step (search, prompt, provider call), then the AI
           judge when the batch asks for it;
        3. the outcome by what happened: done; failed (a provider error, or a bug: never
           the slice); given back when the provider is down (ProviderUnavailable: an
           outage is never the row's fault); resting after a rate limit (`_rest`) until BATCH_ROW_MAX_ATTEMPTS;
           given back when a provider is not configured (a batch-level fault);
        4. always: frees its slot and wakes the feeder.
        """
        item = claimed.item
        try:
            if not await self.fence.batch_active():
                # Cancelled (or failed, or deleted) after we claimed it: no call starts.
                self.stopping = True
                self.writer.record(Outcome(item, BatchItem.Status.PENDING, given_back=True))
                return
            try:
                answered = await answer(claimed.turn)
            except ProviderNotConfigured as exc:
                self.fatal = str(exc)
                self.stopping = True
                self.writer.record(Outcome(item, BatchItem.Status.PENDING, given_back=True))
            except ProviderUnavailable:
                # The provider is down, not this row's fault: back to pending, its
                # attempt not counted; the feeder waits for the provider to answer.
                self.writer.record(Outcome(item, BatchItem.Status.PENDING, given_back=True))
            except TransientProviderError as exc:
                if item.attempts < settings.BATCH_ROW_MAX_ATTEMPTS:
                    self._rest(item, exc)
                else:
                    self.writer.record(Outcome(item, BatchItem.Status.FAILED, error=str(exc)))
            except ProviderError as exc:
                self.writer.record(Outcome(item, BatchItem.Status.FAILED, error=str(exc)))
            except Exception as exc:  # a bug must fail the row, not kill the slice
                logger.exception("Unexpected error on batch item %s", item.pk)
                error = f"Unexpected error: {type(exc).__name__}: {exc}"
                self.writer.record(Outcome(item, BatchItem.Status.FAILED, error=error))
            else:
                verdict = None
                text = answered.fields.get("answer", "")
                blocked = answered.fields.get("answer_type") == "blocked"
                graders = hooks.graders()
                if self.judge_enabled and not blocked and graders.wants_judge(item, text):
                    verdict = await graders.judge(item=item, answer=text)
                cost = answer_cost(self.price, answered.fields)
                self._measure(cost)
                outcome = Outcome(
                    item, BatchItem.Status.DONE, answer=answered, verdict=verdict, cost=cost
                )
                self.writer.record(outcome)
        finally:
            self.in_flight -= 1
            slots.release()
            self.changed.set()

    def _rest(self, item: BatchItem, exc: TransientProviderError) -> None:
        """The provider is overloaded (it kept answering 429/5xx through the pipeline's own
        retries): rather than fail, the row rests until the provider's Retry-After (or a
        backoff capped at PROVIDER_BACKOFF_MAX) and goes back to pending, and this slice
        starts no call until then. Rows fail only after BATCH_ROW_MAX_ATTEMPTS such
        attempts."""
        wait = exc.retry_after
        if wait is None:
            wait = min(
                settings.PROVIDER_BACKOFF_BASE * 2**item.attempts, settings.PROVIDER_BACKOFF_MAX
            )
        # The row's rest is reckoned from now, not from when the writer records it; this
        # slice claims again a moment after the rest is over.
        rest_until = timezone.now() + timedelta(seconds=wait)
        self.resume_at = max(self.resume_at, time.monotonic() + wait + 0.01)
        self.writer.record(
            Outcome(item, BatchItem.Status.PENDING, error=str(exc), rest_until=rest_until)
        )
