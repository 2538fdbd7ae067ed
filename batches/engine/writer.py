"""The writer: every result of a slice is recorded here, in groups.

Results are recorded in groups (up to GROUP_ROWS rows or GROUP_SECONDS, less in a
multi-turn batch): interactions bulk-created, rows updated after the lease check,
counters updated once, all in one transaction. Writes per row stay far below one,
whatever the concurrency. A writer that falls behind (answers coming faster than the
database takes them) catches up in larger groups (GROUP_ROWS_MAX), and no new row starts
while BACKLOG_ROWS results wait (`Writer.behind`): memory stays bounded whatever the
batch size.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import F, OuterRef, Subquery
from django.utils import timezone

from batches import hooks
from batches.engine.caller import CallerThread, wait_event
from batches.guard_rows import guarded_item_fields
from batches.models import Batch, BatchItem
from chats.models import Interaction
from chats.services import Answer, Price, lock_chats, store_answers

logger = logging.getLogger("batches.engine")

# The writer records a group when it holds this many results or the oldest waited this long.
# A group costs the caller thread about 25 ms of CPU whatever its size (a dozen queries),
# which the provider loop waits for (one GIL): at C 64 and 1 s, groups every 0.1 s made
# rows wait 10-25 ms between answer and next call, every 0.3 s half that (2,000 rows:
# the command's ratio 0.92-0.94 to 0.934-0.938, writes per row 0.07-0.11 to 0.05). In a
# multi-turn batch a chat's next turn waits for its previous one's record: sooner there.
GROUP_ROWS = 50
GROUP_SECONDS = 0.3
GROUP_SECONDS_MULTI_TURN = 0.1
GROUP_ROWS_MAX = 500  # a group when the writer is behind
BACKLOG_ROWS = 1000  # results waiting for the writer before new rows wait too
ERROR_CHARS = 2000


@dataclass
class Outcome:
    """What became of one row, waiting to be recorded."""

    item: BatchItem
    status: str  # BatchItem.Status DONE / FAILED / PENDING (rest, or given back)
    answer: Answer | None = None
    error: str = ""
    rest_until: datetime | None = None  # PENDING after a rate limit: not before then
    verdict: tuple[str, str] | None = None  # the AI judge's (verdict, notes), when asked
    given_back: bool = False  # PENDING, never started: its attempt does not count
    cost: float | None = None  # what the answer call cost (batches.costs), when priced
    # PENDING (economy mode): to be retried in real time, never in a provider batch.
    realtime_retry: bool = False


class Writer:
    """Records the slice's results in groups, one transaction each.

    Owns: the results waiting (`pending`), the group being written (`writing`), and the
    rows recorded done and failed by this slice (`done`, `failed`). Runs on: `record` and
    `run` (a background task) on the loop; `write_group` and what it calls in the caller
    thread (through `db`).

    1. waits for results; with rows still in flight it waits up to GROUP_SECONDS for a
       group of GROUP_ROWS, and takes up to GROUP_ROWS_MAX when behind;
    2. records the group (see `write_group`); a group the database refused stops the
       slice (its rows keep their leases and are answered again after expiry);
    3. reports progress, and wakes the feeder (a recorded turn may unblock the next);
    4. after `close`, records what is left and returns.
    """

    def __init__(
        self,
        *,
        batch_id: int,
        owner: str,
        db: CallerThread,
        multi_turn: bool,
        rows_in_flight: Callable[[], int],
        on_written: Callable[[], None],
        on_fault: Callable[[], None],
        on_progress: Callable[[int, int], None] | None,
        price: Price | None = None,
    ) -> None:
        self.batch_id = batch_id
        self.owner = owner
        self.db = db
        self.multi_turn = multi_turn
        self.rows_in_flight = rows_in_flight
        self.on_written = on_written
        self.on_fault = on_fault
        self.on_progress = on_progress
        self.price = price  # the batch's price: each done row's cost (None: unknown)
        self.cost_written = 0.0  # the cost of the rows this writer has committed
        self.pending: list[Outcome] = []
        self.writing = 0  # results taken by the writer, not yet committed
        self.groups_written = 0  # the feeder's sign that a recorded turn may unblock a row
        self.done = 0
        self.failed = 0
        self.closing = False
        self.outcome_added = asyncio.Event()
        self._language: str | None = None  # the batch's page language, read once

    # -- on the loop ---------------------------------------------------------------------
    @property
    def behind(self) -> bool:
        """BACKLOG_ROWS results wait: no new row should start until the writer catches up."""
        return len(self.pending) >= BACKLOG_ROWS

    @property
    def busy(self) -> bool:
        """Results wait or are being written (a recorded turn may unblock the next)."""
        return bool(self.pending or self.writing)

    def record(self, outcome: Outcome) -> None:
        self.pending.append(outcome)
        self.outcome_added.set()

    def close(self) -> None:
        """No more results will come: record what is left, then end `run`."""
        self.closing = True
        self.outcome_added.set()

    async def report_progress(self) -> None:
        """Call the caller's on_progress(done, failed), in the caller thread."""
        if self.on_progress is not None:
            await self.db(self.on_progress, self.done, self.failed)

    async def run(self) -> None:
        """Record results in groups: one transaction per GROUP_ROWS rows or GROUP_SECONDS
        (GROUP_SECONDS_MULTI_TURN in a multi-turn batch)."""
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
            wait = GROUP_SECONDS_MULTI_TURN if self.multi_turn else GROUP_SECONDS
            while len(self.pending) < GROUP_ROWS and self.rows_in_flight() and not self.closing:
                left = first + wait - loop.time()
                if left <= 0:
                    break
                self.outcome_added.clear()
                await wait_event(self.outcome_added, left)
            group, self.pending = self.pending[:GROUP_ROWS_MAX], self.pending[GROUP_ROWS_MAX:]
            self.writing = len(group)
            try:
                done, failed = await self.db(self.write_group, group)
                self.cost_written += sum(o.cost or 0.0 for o in group)
            except Exception:
                # The database refused the group (it went away, a lock timed out): its
                # rows keep their leases and are answered again after expiry.
                logger.exception("Batch %s: recording %d rows failed", self.batch_id, len(group))
                self.on_fault()
            else:
                self.groups_written += 1
                self.done += done
                self.failed += failed
                await self.report_progress()
            self.writing = 0
            self.on_written()

    # -- in the caller thread --------------------------------------------------------------
    def _input_columns(self) -> list:
        """The batch's headers, by which its rows hold their cells."""
        found = Batch.objects.filter(pk=self.batch_id).values_list("input_columns", flat=True)
        return list(found.first() or [])

    def _page_language(self) -> str:
        """The batch's page language (which "not found" phrases count), read once."""
        if self._language is None:
            found = Batch.objects.filter(pk=self.batch_id).values_list("page_language", flat=True)
            self._language = found.first() or "en"
        return self._language

    def write_group(self, group: list[Outcome]) -> tuple[int, int]:
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
            _update_rows(kept, now)
            # The guard's redacted question and URL replace the batch's own copies.
            screened = []
            headers = None  # the batch's input_columns, read once for the group
            for outcome in answered:
                if headers is None:
                    headers = self._input_columns()
                fields = guarded_item_fields(outcome.item, outcome.item.interaction, headers)
                if fields:
                    for name, value in fields.items():
                        setattr(outcome.item, name, value)
                    screened.append(outcome.item)
            if screened:
                BatchItem.objects.bulk_update(screened, ["question", "row", "referring_url"])
            # Grades against the rows' expected answers (the judge's verdicts came with
            # the answers: no network call inside this transaction).
            hooks.graders().grade_items(
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
            costed = [o for o in answered if o.cost is not None]
            for outcome in costed:
                outcome.item.cost = outcome.cost
            if costed:
                BatchItem.objects.bulk_update([o.item for o in costed], ["cost"])
            # The answer counters the pages read (one query over the group's done rows).
            answers = {}
            if answered:
                totals = BatchItem.objects.filter(
                    pk__in=[o.item.pk for o in answered]
                ).answer_totals(self._page_language())
                answers = {name: F(name) + value for name, value in totals.items() if value}
            if done or failed:
                Batch.objects.filter(pk=self.batch_id).update(
                    processed_items=F("processed_items") + done,
                    failed_items=F("failed_items") + failed,
                    spent=F("spent") + sum(o.cost for o in costed),
                    updated_at=now,
                    **answers,
                )
        return done, failed

    def _fail_later_turns(self, item: BatchItem) -> int:
        """In a multi-turn chat a failed turn fails its later turns (they need its answer
        as history), so that a retry runs them all again in order."""
        return BatchItem.objects.filter(
            batch_id=self.batch_id,
            chat_id=item.chat_id,
            position__gt=item.position,
            status=BatchItem.Status.PENDING,
        ).mark_failed(
            now=timezone.now(),
            error=f"An earlier turn of this conversation (row {item.position + 1}) failed; "
            "this one needs its answer first.",
        )


def _update_rows(kept: list[Outcome], now: datetime) -> None:
    """Rows of one kind share every field but one or two: one UPDATE per kind sets the
    shared ones, and a bulk_update only a field that differs row by row (its CASE per
    row costs far more than the UPDATE itself)."""
    # A done row's interaction is the newest of its chat: stored just now, in this
    # transaction, with the chat locked (a chat has one turn in flight at a time).
    newest = Interaction.objects.filter(chat_id=OuterRef("chat_id")).order_by("-position")
    done = [o for o in kept if o.answer is not None]
    failed = [o for o in kept if o.status == BatchItem.Status.FAILED]
    resting = [o for o in kept if o.rest_until is not None]
    given_back = [o for o in kept if o.given_back]
    if done:
        _rows(done).mark_done(now=now, interaction=Subquery(newest.values("pk")[:1]))
    if failed:
        _rows(failed).mark_failed(now=now)
        _set_each(failed, ["error"])
    if resting:
        _rows(resting).mark_resting()
        _set_each(resting, ["error", "resting_until"])
        realtime = [o for o in resting if o.realtime_retry]
        if realtime:
            # In the same transaction as the row goes back to pending: no provider batch
            # can claim it in between (batches.engine.claims).
            _rows(realtime).update(realtime_retry=True)
    if given_back:
        _rows(given_back).release()


def _rows(outcomes: list[Outcome]):
    return BatchItem.objects.filter(pk__in=[o.item.pk for o in outcomes])


def _set_each(outcomes: list[Outcome], fields: list[str]) -> None:
    for outcome in outcomes:
        outcome.item.error = outcome.error[:ERROR_CHARS]
        outcome.item.resting_until = outcome.rest_until
    BatchItem.objects.bulk_update([o.item for o in outcomes], fields)
