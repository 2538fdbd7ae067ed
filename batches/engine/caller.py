"""The caller thread: where every database query of a slice runs.

The slice is a coroutine on the process's provider loop (`chats.aio`); the thread that
called `process_for_duration` blocks in `CallerThread.serve` until the slice ends and runs
the slice's database jobs there, one at a time, on its own Django connection (a slice
holds ONE connection). Every part of the engine reaches the database only through
`await db(fn, *args)`. (Also here: `wait_event`, the loop side's bounded wait.)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
from collections import deque
from collections.abc import Callable
from typing import Any

from chats.services import provider_loop


class CallerThread:
    """Runs the slice's database work in the thread that called process_for_duration.

    Owns: the two job queues. Runs on: `__call__` is awaited on the loop; `serve` runs in
    the caller thread, and hands each result back to the loop. Urgent jobs (the status
    read rows wait for before their provider call) go ahead of queued claims and writes.
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


async def wait_event(event: asyncio.Event, seconds: float) -> None:
    """Wait until `event` is set, at most `seconds` (on the loop)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
