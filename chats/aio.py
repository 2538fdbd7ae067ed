"""One asyncio event loop per process, in its own thread, for all provider and search I/O.

Why one loop: the SDKs' async clients (`AsyncOpenAI`, `AsyncAnthropic`, `httpx.AsyncClient`)
keep connection pools that belong to the loop they were first used on. With one loop
that lives as long as the process, every caller (a batch slice, a chat page, a command)
shares one pool per provider, and hundreds of calls can be in flight without a thread per
call. Django code stays synchronous: a caller hands a coroutine to `run()` and waits.

The loop is started on first use and again in a forked child (Celery prefork, gunicorn),
whose copy of the parent's thread does not exist. `loop_cache()` keeps per-loop objects
(SDK clients, limiters) and is emptied with the loop.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import inspect
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_cache: dict[Any, Any] = {}


def _forget() -> None:
    """In a forked child: the parent's loop thread is gone; start afresh on next use."""
    global _loop, _thread, _cache
    _loop, _thread, _cache = None, None, {}


os.register_at_fork(after_in_child=_forget)


async def _close_cached() -> None:
    """Close the cached clients (their connection pools), newest settings first."""
    for key, value in reversed(list(_cache.items())):
        objects = value[0] if isinstance(key, tuple) and key[:1] == ("round-robin",) else [value]
        for obj in objects:
            close = getattr(obj, "aclose", None) or getattr(obj, "close", None)
            with contextlib.suppress(Exception):
                result = close() if callable(close) else None
                if inspect.isawaitable(result):
                    await result


@atexit.register
def _close_at_exit() -> None:
    """At exit, close the clients on their loop: an HTTP session left open when the
    interpreter ends is reported as an error ("Unclosed client session")."""
    if _loop is None or _thread is None or not _thread.is_alive():
        return
    future = asyncio.run_coroutine_threadsafe(_close_cached(), _loop)
    with contextlib.suppress(Exception):
        future.result(timeout=5)


def loop() -> asyncio.AbstractEventLoop:
    """The process's provider loop, started on first use."""
    global _loop, _thread
    with _lock:
        if _loop is None or _thread is None or not _thread.is_alive():
            new_loop = asyncio.new_event_loop()
            ready = threading.Event()

            def serve() -> None:
                asyncio.set_event_loop(new_loop)
                new_loop.call_soon(ready.set)
                new_loop.run_forever()

            _thread = threading.Thread(target=serve, name="batchchat-io", daemon=True)
            _thread.start()
            ready.wait()
            _loop = new_loop
            _cache.clear()
        return _loop


def in_loop_thread() -> bool:
    return _thread is not None and threading.current_thread() is _thread


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` on the provider loop and wait for its result (from any thread but
    the loop's own, which would wait for itself forever)."""
    if in_loop_thread():
        coroutine.close()
        raise RuntimeError("aio.run() called from the provider loop: await the coroutine")
    future = asyncio.run_coroutine_threadsafe(coroutine, loop())
    try:
        return future.result()
    except BaseException:
        future.cancel()
        raise


def loop_cache(key: Any, factory: Callable[[], T]) -> T:
    """An object made once per loop (an SDK client): call from the loop thread only."""
    try:
        return _cache[key]
    except KeyError:
        value = _cache[key] = factory()
        return value


def round_robin(key: Any, factory: Callable[[], T], size: int) -> T:
    """One of `size` objects made once per loop, in turn (call from the loop thread).

    SDK clients are sharded this way: an HTTP client's connection pool scans every one of
    its connections each time a request starts or ends, so one pool of 256 connections
    costs more CPU per call than the call itself; 16 pools of 16 do not."""
    state = loop_cache(("round-robin", key), lambda: [[factory() for _ in range(size)], 0])
    clients, turn = state
    state[1] = (turn + 1) % len(clients)
    return clients[turn]


def cache_items(tag: str) -> list[tuple[Any, Any]]:
    """(name, object) of the objects cached as loop_cache((tag, name), ...)."""
    return [
        (key[1], value)
        for key, value in list(_cache.items())
        if isinstance(key, tuple) and len(key) == 2 and key[0] == tag
    ]


def cache_forget(tag: str) -> None:
    for key in [key for key in list(_cache) if isinstance(key, tuple) and key[:1] == (tag,)]:
        _cache.pop(key, None)


async def maybe_await(value: Awaitable[T] | T) -> T:
    """Await `value` when it is awaitable (test doubles may be plain functions)."""
    if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
        return await value
    return value  # type: ignore[return-value]
