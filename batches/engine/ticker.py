"""The ticker: once a second, what the pages and the API show of a running slice."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from batches.engine.caller import CallerThread
from batches.models import Batch
from chats.services import limits_snapshot, outage_snapshot

TICK_SECONDS = 1.0


class Ticker:
    """Publishes whether the provider's quota or an outage holds the batch back, and
    reports progress.

    Owns: the throttle last published on the batch (`Batch.throttle`). Runs on: `run` (a
    background task) and `clear` on the loop; `publish` in the caller thread.
    """

    def __init__(
        self,
        *,
        batch_id: int,
        db: CallerThread,
        provider: str,
        model: str,
        concurrency: int,
        report_progress: Callable[[], Awaitable[None]],
    ) -> None:
        self.batch_id = batch_id
        self.db = db
        self.provider = provider
        self.model = model
        self.concurrency = concurrency
        self.report_progress = report_progress
        # As last published on the batch; None until this slice publishes (the batch may
        # still carry an outage a previous slice left: the first tick replaces it).
        self.throttle: dict | None = None

    async def run(self) -> None:
        """Every TICK_SECONDS: publish the throttle when it changed, report progress."""
        while True:
            await asyncio.sleep(TICK_SECONDS)
            throttle = self.now()
            if throttle != self.throttle:
                await self.db(self.publish, throttle)
            await self.report_progress()

    async def clear(self) -> None:
        """At the slice's end: the batch is no longer held back by this slice's quota. An
        outage stays published (the next slice of a batch paused by it would otherwise
        make the notice blink out between slices); the next tick after the provider
        answers clears it."""
        outage = outage_snapshot(self.provider, self.model)
        left = {"outage": outage} if outage is not None else {}
        if self.throttle != left:
            await self.db(self.publish, left)

    def now(self) -> dict:
        """The throttle, and `outage` (since, reason, last_success) while the provider
        does not answer (its circuit breaker is open)."""
        outage = outage_snapshot(self.provider, self.model)
        shot = limits_snapshot(self.provider, self.model)
        until = shot["until"] if shot and shot["until"] > time.time() else None
        if outage is None and (shot is None or (until is None and shot["limit"] is None)):
            return {}
        throttle = {
            "until": round(until, 1) if until else None,
            "in_flight": shot["in_flight"] if shot else 0,
            "limit": shot["limit"] if shot else None,
            "concurrency": self.concurrency,
        }
        if outage is not None:
            throttle["outage"] = outage
        return throttle

    def publish(self, throttle: dict) -> None:
        self.throttle = throttle
        Batch.objects.filter(pk=self.batch_id).update(throttle=throttle)
