"""Claims: which rows this slice works on, and the leases that say so.

A row is claimed with a conditional UPDATE that sets our lease (owner + expiry); every
result is later recorded only if the lease is still ours (batches.engine.writer). So any
number of callers can work on one batch: each row is claimed by one of them at a time, and
a row whose worker died is claimed again when its lease expires.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef
from django.utils import timezone

from batches.engine.caller import CallerThread
from batches.models import BatchItem
from chats.services import Turn, turns_for

logger = logging.getLogger("batches.engine")

# A claim takes as many rows as there are calls in flight, within these bounds: one claim
# per `concurrency` rows started, and few rows leased ahead when concurrency is low.
CLAIM_MIN = 1
CLAIM_MAX = 500


def claim_share(found: int, size: int) -> int:
    """How many of `found` eligible rows (looked for up to 2 x `size`) one claim takes.

    Near the batch's end (fewer than two claims' worth left) a claim takes half of what
    is left: the other callers on the batch (Celery workers, engine processes) get the
    rest, instead of idling while one slice holds the last rows in its queue, unstarted,
    and runs them in one more round of provider calls. Alone on the batch, a slice claims
    again as its queue runs low; halving costs it a few more, smaller claims."""
    if found >= 2 * size:
        return size
    return max((found + 1) // 2, CLAIM_MIN)


def new_owner() -> str:
    """A lease owner unique to one slice: host, process, and a random part."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


@dataclass
class Claimed:
    """A row leased to this slice, with the turn (history, prompt) it will ask."""

    item: BatchItem
    turn: Turn


class Claims:
    """The rows this slice has claimed and not started yet, and our leases.

    Owns: the local queue of claimed rows, the claim under way (a refill), whether more
    rows may be claimable, the lease length. Runs on: `next`, the refill and `heartbeat`
    on the loop; `claim`, `renew` and `release_unstarted` in the caller thread (through
    `db`).

    1. rows come from the local queue; when it runs low, the next eligible rows (pending
       and not resting, or running with an expired lease; for a multi-turn chat only its
       earliest unfinished turn) are claimed in the background, so free slots never wait
       for a claim;
    2. the heartbeat renews our leases while the slice runs;
    3. at the end, rows claimed but not started go back to pending, their attempt not
       counted.
    """

    def __init__(
        self,
        *,
        batch_id: int,
        owner: str,
        db: CallerThread,
        multi_turn: bool,
        concurrency: int,
        on_fault: Callable[[], None],
        realtime_retry: bool | None = None,
    ) -> None:
        self.batch_id = batch_id
        # Economy mode: rows sent back to be retried in real time (True) are claimed only
        # by real-time slices, the others (False) only for provider batches; None: any.
        self.only = {} if realtime_retry is None else {"realtime_retry": realtime_retry}
        self.owner = owner
        self.db = db
        self.multi_turn = multi_turn
        self.on_fault = on_fault  # a claim failed: the slice stops taking rows
        self.lease_seconds = float(settings.BATCH_LEASE_SECONDS)
        self.size = min(max(concurrency, CLAIM_MIN), CLAIM_MAX)
        self.queue: deque[Claimed] = deque()
        self.refill: asyncio.Task | None = None  # a claim under way
        self.more = True  # whether the last claim left rows (more may be claimable)
        self.left_behind = False  # the last claim took its share and left the rest

    # -- on the loop ---------------------------------------------------------------------
    async def next(self) -> Claimed | None:
        """The next claimed row. The queue is refilled in the background when it runs
        low, so that free slots never wait for a claim (which would start rows in waves:
        all at once after each claim, then none until the next)."""
        if not self.queue:
            await (self.refill or self._start_refill())
        claimed = self.queue.popleft() if self.queue else None
        if claimed is not None and len(self.queue) < self.size // 2 and self.more:
            self._start_refill()
        return claimed

    def _start_refill(self) -> asyncio.Task:
        if self.refill is None:
            self.refill = asyncio.create_task(self._refill())
        return self.refill

    async def _refill(self) -> None:
        try:
            claimed = await self.db(self.claim)
            self.queue.extend(claimed)
            # A short claim means nothing more is claimable now (unless it left the rest
            # to other callers: claim_share); claim again only when the queue runs dry
            # (rows may become claimable: a rest ends, a turn is done).
            self.more = len(claimed) >= self.size or self.left_behind
        except Exception:
            # A database error while claiming: this slice stops taking rows; rows in
            # flight are still recorded, and the next slice claims again.
            logger.exception("Batch %s: claiming rows failed", self.batch_id)
            self.on_fault()
        finally:
            self.refill = None

    async def heartbeat(self) -> None:
        """Renew our leases every third of their length (a background task)."""
        interval = max(self.lease_seconds / 3, 0.5)
        while True:
            await asyncio.sleep(interval)
            await self.db(self.renew)

    # -- in the caller thread --------------------------------------------------------------
    def candidate_ids(self, now, size: int) -> list[int]:
        """The next eligible rows by position. Ready and expired-running rows are asked
        for separately: each query then walks the (batch, status, position) index instead
        of filtering the whole batch."""
        rows = BatchItem.objects.filter(batch_id=self.batch_id, **self.only)
        if self.multi_turn:
            rows = rows.exclude(
                Exists(
                    BatchItem.objects.unfinished().filter(
                        chat_id=OuterRef("chat_id"),
                        position__lt=OuterRef("position"),
                        batch_id=self.batch_id,
                    )
                )
            )
        found = [
            *rows.ready(now).order_by("position").values_list("position", "pk")[:size],
            *rows.expired_leases(now).order_by("position").values_list("position", "pk")[:size],
        ]
        return [pk for _position, pk in sorted(found)[:size]]

    def claim(self, *, whole: bool = False) -> list[Claimed]:
        """Claim up to `size` eligible rows with their turns (history, prompt override);
        near the batch's end, half of what is left (claim_share), unless `whole` (economy
        mode: one provider batch per claim); [] only when none is left to claim."""
        while True:
            now = timezone.now()
            found = self.candidate_ids(now, self.size if whole else 2 * self.size)
            if not found:
                self.left_behind = False
                return []
            ids = found[: self.size if whole else claim_share(len(found), self.size)]
            self.left_behind = len(ids) < len(found)
            # The eligibility condition again (in the UPDATE): rows another caller took
            # since the SELECT are skipped, so every row is claimed by one caller only.
            claimed = BatchItem.objects.filter(pk__in=ids, **self.only).claim(
                owner=self.owner, now=now, lease_seconds=self.lease_seconds
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
                return [Claimed(item, turn) for item, turn in zip(items, turns, strict=True)]
            # Another caller claimed all of them first: look again further on.

    def renew(self) -> None:
        BatchItem.objects.renew_leases(
            owner=self.owner, until=timezone.now() + timedelta(seconds=self.lease_seconds)
        )

    def release_unstarted(self) -> None:
        """Give back claimed rows that were not started (as pending: if the batch was
        cancelled meanwhile, the slice's end turns them into cancelled under the batch
        lock)."""
        ids = [claimed.item.pk for claimed in self.queue]
        self.queue.clear()
        if ids:
            BatchItem.objects.filter(pk__in=ids, lease_owner=self.owner).release()
