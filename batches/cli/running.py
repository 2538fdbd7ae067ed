"""What `manage.py run_batch` keeps while it runs: the results file written beside the
engine, Ctrl-C's two steps, a lighter interpreter exit."""

from __future__ import annotations

import atexit
import gc
import os
import signal
import threading
from pathlib import Path
from typing import Any

from batches.models import Batch


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
