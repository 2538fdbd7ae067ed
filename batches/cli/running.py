"""What `manage.py run_batch` keeps while it runs: the results file written beside the
engine, Ctrl-C's two steps, a lighter interpreter exit, the batch created in a fork while
the engine loads."""

from __future__ import annotations

import atexit
import gc
import importlib
import os
import pickle
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from batchchat.collector import freeze_start_up
from batches.models import Batch

T = TypeVar("T")


class ResultsFile:
    """The results file, written in a thread while the batch runs (batches.export's
    `follow_finished`: each row once it and the rows before it are finished), so that
    only the rows open at the end are left to write then: at 5,000 rows the whole file
    took about a second after the last answer. Written as `<out>.partial` and renamed
    when complete: a results file is never a part of one."""

    def __init__(self, batch: Batch, path: Path, stream) -> None:
        self.batch = batch
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        self.stream = stream
        self.over = threading.Event()
        self.abandoned = False
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._write, name="batchchat-results", daemon=True)

    def start(self) -> ResultsFile:
        from django.db import connection

        # Called inside a transaction (a test, a script), another connection would not
        # see the batch: then the file is written at the end, in this thread.
        if not connection.in_atomic_block:
            self.thread.start()
        return self

    def _write(self) -> None:
        from django.db import connection

        from batches.export import follow_finished

        try:
            batch = Batch.objects.get(pk=self.batch.pk)  # this thread's own copy
            with open(self.partial, "wb") as handle:
                items = follow_finished(batch, over=self.over)
                for chunk in self.stream(batch, items=items):
                    if self.abandoned:
                        break
                    handle.write(chunk)
        except BaseException as exc:
            self.error = exc
        finally:
            if threading.current_thread() is self.thread:
                connection.close()  # this thread's own
            if self.abandoned:
                self.partial.unlink(missing_ok=True)

    def finish(self) -> None:
        """The run is over: write the rows left, then the file is complete."""
        self.over.set()
        if self.thread.ident is None:
            self._write()
        else:
            self.thread.join()
        if self.error is not None:
            self.partial.unlink(missing_ok=True)
            raise self.error
        os.replace(self.partial, self.path)

    def abandon(self) -> None:
        """No results file (a second Ctrl-C, an error): stop writing, remove the part."""
        self.abandoned = True
        self.over.set()
        if self.thread.ident is not None:
            self.thread.join(timeout=5)
        self.partial.unlink(missing_ok=True)


_exit_registered = False


def lighter_exit() -> None:
    """At exit, move every object to the collector's permanent generation: the
    interpreter's last full collection then does not walk the heap (Django, the SDK's
    models, a batch's rows), which took 0.3 s of a 1,000-row command here. Nothing is
    skipped: exit handlers run and the streams are flushed as usual."""
    global _exit_registered
    if not _exit_registered:
        _exit_registered = True
        atexit.register(gc.freeze)


class Interrupt:
    """First SIGINT sets a flag (finish the slice, then stop); the second one raises."""

    def __init__(self) -> None:
        self.requested = False
        self.previous: Any = None

    def __enter__(self) -> Interrupt:
        try:
            self.previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread (e.g. called from a worker): no handler
            self.previous = None
        return self

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def can_fork(*streams) -> bool:
    """Whether `in_fork` may be used here: Linux; this process has no other thread (a
    fork keeps only the calling thread: locks held by others would stay held) and no
    transaction open (the child's connection would not see its rows, nor this one the
    child's); the output streams are files the child shares (not a test's StringIO)."""
    from django.db import connections

    if not sys.platform.startswith("linux") or threading.active_count() != 1:
        return False
    if any(conn.in_atomic_block for conn in connections.all(initialized_only=True)):
        return False
    for stream in streams:
        try:
            stream.fileno()
        except (AttributeError, OSError, ValueError):
            return False
    return True


def in_fork(work: Callable[[], T], *, meanwhile: Callable[[], None], streams=()) -> T:
    """`work()` in a forked child while this process runs `meanwhile()`; returns what
    `work` returned (pickled back), raises the CommandError it raised.

    For run_batch's start: the child reads the file, creates the batch and prints the
    estimate while this process imports the provider's SDK and the engine (about 0.5 s
    of CPU each here, on the second core instead of one after the other). The child
    uses its own database connection and leaves with os._exit (no exit handlers of
    ours run twice); callers check `can_fork` first."""
    from django.core.management import CommandError
    from django.db import connections

    for stream in (*streams, sys.stdout, sys.stderr):
        stream.flush()  # or the child would write this process's buffered output again
    connections.close_all()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_end)
        try:
            try:
                payload: tuple = ("ok", work())
            except CommandError as exc:
                payload = ("error", str(exc), exc.returncode)
            except BaseException as exc:  # reported by the parent, with the traceback
                payload = ("crash", "".join(traceback.format_exception(exc)))
            for stream in (*streams, sys.stdout, sys.stderr):
                stream.flush()
            connections.close_all()
            with os.fdopen(write_end, "wb") as pipe:
                pickle.dump(payload, pipe)
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        meanwhile()
    finally:
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
    if not data:
        raise CommandError(
            f"Creating the batch stopped: its process ended ({_ended(status)}) before it "
            'was done. If it printed "Batch N created", run it with: manage.py run_batch '
            "--resume N"
        )
    payload = pickle.loads(data)
    if payload[0] == "error":
        raise CommandError(payload[1], returncode=payload[2])
    if payload[0] == "crash":
        raise RuntimeError(f"Creating the batch failed in its process:\n{payload[1]}")
    return payload[1]


def _ended(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def pause_gc(*streams) -> bool:
    """At the command's start, in a process of its own (`can_fork`'s test: not a test's
    `call_command`): no cyclic collection while it imports and creates the batch (a
    full one took 40 ms of the wait for the first call here). Returns whether it
    paused; `settle_gc` resumes."""
    if not can_fork(*streams) or not gc.isenabled():
        return False
    gc.disable()
    return True


def settle_gc(paused: bool) -> None:
    """Once the engine is loaded: start-up's objects frozen (batchchat.collector), then
    collection resumes. Nothing when `pause_gc` did not pause."""
    if paused and not gc.isenabled():
        freeze_start_up()
        gc.enable()


def load_engine(ai_provider: str) -> None:
    """What the first slice needs, loaded before it: the engine and the chat pipeline,
    the provider's SDK, its clients built on the provider loop."""
    from batches.procs import ENGINE_MODULES
    from chats.services import preload_providers, warm_up_providers

    for module in ENGINE_MODULES:
        importlib.import_module(module)
    preload_providers(ai_provider=ai_provider)
    warm_up_providers(ai_provider=ai_provider)
