"""Admission control for the slices that callers start (API and pages).

A slice holds database connections and provider calls for up to a minute, so what one
caller can start is bounded before `process_for_duration` runs:

1. one slice per batch per caller: a second call on the same batch while the first runs
   is refused with 409 (it would only wait for the first one's leases);
2. at most `MAX_SLICES_PER_USER` slices of one user at once (429);
3. at most `MAX_CONCURRENT_SLICES` slices in this process at once (429).

The counts are kept **per process** (a lock and three counters): several server processes
each admit up to their own limits, so size `MAX_CONCURRENT_SLICES` x processes against the
database's connections. Celery workers and `run_batch` do not pass through here: their
concurrency is set by their own configuration.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings

from batches.errors import SliceRefused

# Seconds a refused caller is told to wait (Retry-After): about one page slice.
RETRY_AFTER_SECONDS = 5

_lock = threading.Lock()
_running: set[tuple[int | None, int]] = set()  # (user id, batch id)
_per_user: Counter[int | None] = Counter()


def running_slices() -> int:
    with _lock:
        return len(_running)


@contextmanager
def slice_admission(*, user, batch_id: int) -> Iterator[None]:
    """Run the block as one admitted slice of `user` on `batch_id`, or raise SliceRefused."""
    user_id = getattr(user, "pk", None)
    key = (user_id, batch_id)
    with _lock:
        if key in _running:
            raise SliceRefused(
                "A slice of this batch is already running for you. Wait for its answer, then "
                "call again; rows are shared safely between callers, not sped up by repeats.",
                status=409,
                code="slice_running",
                retry_after=RETRY_AFTER_SECONDS,
            )
        per_user = settings.MAX_SLICES_PER_USER
        if _per_user[user_id] >= per_user:
            raise SliceRefused(
                f"You already have {per_user} slices running, the most one user may run at "
                f"once. Try again in {RETRY_AFTER_SECONDS} seconds.",
                status=429,
                code="too_many_slices",
                retry_after=RETRY_AFTER_SECONDS,
            )
        if len(_running) >= settings.MAX_CONCURRENT_SLICES:
            raise SliceRefused(
                "The server is running as many slices as it allows at once. Try again in "
                f"{RETRY_AFTER_SECONDS} seconds.",
                status=429,
                code="server_busy",
                retry_after=RETRY_AFTER_SECONDS,
            )
        _running.add(key)
        _per_user[user_id] += 1
    try:
        yield
    finally:
        with _lock:
            _running.discard(key)
            _per_user[user_id] -= 1
            if _per_user[user_id] <= 0:
                del _per_user[user_id]
