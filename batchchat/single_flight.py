"""One computation of a cached value at a time per key in this process.

When many requests miss the same cache entry at once (20 users opening a running batch's
page in the same second, before anything is shared), each would compute it, and on two
cores their renders only slow each other down. `single_flight(key)` lets the first
compute while the others with the same key wait for it, then read what it stored. Per
process (gunicorn's threads): another process computes its own, as before.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

MAX_KEYS = 1000  # locks kept; past this the table starts again (only lost sharing)

_guard = threading.Lock()
_locks: dict[str, threading.Lock] = {}


@contextmanager
def single_flight(key: str) -> Iterator[None]:
    """Hold the lock of `key`: a caller who missed the cache looks again inside it."""
    with _guard:
        if len(_locks) >= MAX_KEYS:
            _locks.clear()
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        yield
