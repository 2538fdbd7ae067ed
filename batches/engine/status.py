"""The status fence: no provider call starts after cancel_batch has returned.

Before its provider call a row asks `StatusFence.batch_active()`. The answer comes from a
status read that started at most STATUS_FENCE_SECONDS before (less a margin for the call
to go out); cancel_batch returns STATUS_FENCE_SECONDS after its commit
(`outlast_status_reads`). So a call that starts after a cancel has returned would need a
read that started after the commit, which sees it. Reads run in the background every
STATUS_READ_SECONDS: rows do not wait for one unless the last is too old.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from batches.engine.caller import CallerThread, wait_event
from batches.models import Batch

logger = logging.getLogger("batches.engine")

# How fresh a status read must be for a row to start its provider call, how often the
# status is read, and the time a call may take to go out after its row's check.
STATUS_FENCE_SECONDS = 0.25
STATUS_READ_SECONDS = 0.05
STATUS_MARGIN_SECONDS = 0.05


def outlast_status_reads() -> None:
    """Wait until no slice can act on a status read that started before now (call after
    committing a stop): see StatusFence."""
    time.sleep(STATUS_FENCE_SECONDS)


class StatusFence:
    """Whether the batch is still active, as of a recent enough read.

    Owns: the time until which rows may start calls (`active_until`, monotonic), whether
    the batch was seen inactive, and the two events between the reader and the rows.
    Runs on: `batch_active` and `run` (a background task) on the loop; `read` in the
    caller thread, as an urgent job (ahead of claims and writes).
    """

    def __init__(self, *, batch_id: int, db: CallerThread, on_inactive: Callable[[], None]) -> None:
        self.batch_id = batch_id
        self.db = db
        self.on_inactive = on_inactive  # cancelled, failed or deleted: the slice stops
        self.active_until = 0.0  # monotonic: rows may start calls until then
        self.inactive = False  # True once the batch is seen inactive: for good
        self.spent = 0.0  # Batch.spent as of the last read (the budget check's base)
        self.read_done = asyncio.Event()  # a status read came back
        self.wanted = asyncio.Event()  # a row waits for a fresh one

    async def batch_active(self) -> bool:
        """Whether a row may start its provider call now (see the module docstring)."""
        while True:
            if self.inactive:
                return False
            if time.monotonic() + STATUS_MARGIN_SECONDS < self.active_until:
                return True
            self.read_done.clear()
            self.wanted.set()
            await self.read_done.wait()

    async def run(self) -> None:
        """Read the batch status every STATUS_READ_SECONDS, and at once when a row waits
        for a fresh one. A read is dated from when it starts in the caller thread."""
        while True:
            try:
                started, status, spent = await self.db(self.read, urgent=True)
            except Exception:
                # The status could not be read (the database went away): no call starts.
                logger.exception("Batch %s: reading its status failed", self.batch_id)
                status, started, spent = None, time.monotonic(), self.spent
            self.spent = spent
            if status in Batch.ACTIVE_STATUSES:
                self.active_until = started + STATUS_FENCE_SECONDS
            else:
                # Cancelled (paused, failed, deleted): no call starts from now on.
                self.inactive = True
                self.on_inactive()
            self.read_done.set()
            if self.inactive:
                return
            self.wanted.clear()
            await wait_event(self.wanted, STATUS_READ_SECONDS)

    def read(self) -> tuple[float, str | None, float]:
        started = time.monotonic()
        found = Batch.objects.filter(pk=self.batch_id).values_list("status", "spent").first()
        status, spent = found or (None, self.spent)
        return started, status, spent
