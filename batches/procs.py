"""Engine processes: N children under one parent, for `run_worker --processes N` and
`run_batch --processes N`.

One process is one GIL, and the provider SDKs cost about 2 ms of CPU a call: past a few
hundred rows a second, cores, not threads, scale the engine. The children are ordinary
engine callers: they share batches through the row leases (no row completes twice; a
dead child's rows are taken over when their lease ends) and provider quotas through
Redis when REDIS_URL is set; without Redis each child budgets quota / N
(`chats.services.share_quotas`).

The children are started with multiprocessing's *forkserver* context: a fresh interpreter
(the fork server) imports Django, sets it up and imports the batch's provider SDK once
(batches.procs_boot), and each child is a fork of it, never a fork of a process holding
database connections, the provider loop's thread or open sockets. The fork server's
start-up (about two seconds of CPU here) is paid once, not once per child;
`Children.start` is called early so that it overlaps the parent's own work.

Signals: Ctrl-C in a terminal reaches the whole process group, so children ignore SIGINT
and the parent decides (first Ctrl-C: `stop()`, rows in flight finish; second: `kill()`).
A child takes SIGTERM as "stop": that is how the parent stops it, and `bin/serve` and
process managers may signal the whole group.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from batchchat.collector import freeze_start_up

logger = logging.getLogger("batchchat.worker")

RESTART_DELAY_SECONDS = 1.0  # before a dead child is started again
IDLE_WAIT_SECONDS = 0.1  # run_batch child: nothing to claim (rows leased elsewhere)
SLICE_SECONDS = 24 * 3600.0  # run_batch child: one slice until done or stopped
# Imported once by the fork server too (after Django and the provider's SDK), not by each
# child after its fork: the chat pipeline and the engine, about 0.4 s of CPU a child here.
ENGINE_MODULES = ("chats.services", "batches.events", "batches.worker")


def default_processes() -> int:
    """The cores this process may run on."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not Linux
        return max(os.cpu_count() or 1, 1)


def context(*, preload: list[str] | tuple[str, ...] = ()) -> Any:
    """The fork server: a fresh interpreter (never a fork of this process, which may hold
    database connections, the provider loop's thread or sockets) that sets Django up
    (batches.procs_boot) and imports the `preload` modules (a provider's, with its SDK)
    once; each child is a fork of it."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["batches.procs_boot", *preload, *ENGINE_MODULES])
    return ctx


# --- in a child --------------------------------------------------------------------------


def _child_setup(processes: int, *, command_pid: int, ai_provider: str = "") -> Callable[[], bool]:
    """Set up Django in a fresh child, import the providers' SDKs (`ai_provider`'s only,
    when given); returns the child's should_stop(), which turns true on SIGTERM (the
    parent's `Children.stop`) or when the command (`command_pid`) is gone."""
    stopped = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: stopped.set())

    import django

    django.setup()
    from chats.services import preload_providers, share_quotas

    share_quotas(processes=processes)
    preload_providers(ai_provider=ai_provider)
    freeze_start_up()

    # A command killed outright (SIGKILL, OOM) must not leave engine processes running
    # unwatched: our parent is the fork server, which outlives it, so look for the command.
    def should_stop() -> bool:
        if stopped.is_set():
            return True
        try:
            os.kill(command_pid, 0)
        except ProcessLookupError:
            stopped.set()
        return stopped.is_set()

    return should_stop


def _exit() -> None:
    """Close the database connections, run the exit handlers (the provider clients are
    closed on their loop: chats.aio) and end the process. os._exit skips the interpreter's
    teardown of every module, which took seconds here, time the parent waits for."""
    from django.db import connections

    try:
        connections.close_all()
        atexit._run_exitfuncs()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def worker_child(processes: int, options: dict[str, Any]) -> None:
    """One `run_worker` engine process: batches.worker.Worker until stopped."""
    should_stop = _child_setup(processes, command_pid=options["command_pid"])
    from batches.worker import Worker

    worker = Worker(
        slice_seconds=options.get("slice_seconds"), concurrency=options.get("concurrency")
    )

    def relay() -> None:
        while not should_stop():
            time.sleep(0.2)
        worker.request_stop()

    threading.Thread(target=relay, name="worker-stop", daemon=True).start()
    print(f"Worker {worker.name} started (engine process {os.getpid()}).", flush=True)
    worker.run()
    print(
        f"Worker {worker.name} stopped after {worker.slices:,} slices: "
        f"{worker.rows_done:,} rows done, {worker.rows_failed:,} failed.",
        flush=True,
    )
    _exit()


def batch_child(processes: int, options: dict[str, Any]) -> None:
    """One `run_batch` engine process: slices of one batch (options["batch_id"], or the
    id the parent puts in options["batch"] once it has created the batch) until it is
    finished or the parent says stop."""
    should_stop = _child_setup(
        processes, command_pid=options["command_pid"], ai_provider=options.get("ai_provider", "")
    )
    batch_id = options.get("batch_id")
    if batch_id is None:
        shared = options["batch"]
        while not shared.value and not should_stop():
            time.sleep(0.02)
        batch_id = shared.value
    if batch_id > 0:
        drive_batch(
            batch_id=batch_id,
            concurrency=options["concurrency"],
            slice_seconds=options.get("slice_seconds") or SLICE_SECONDS,
            should_stop=should_stop,
        )
    _exit()


def drive_batch(
    *, batch_id: int, concurrency: int, slice_seconds: float, should_stop: Callable[[], bool]
) -> None:
    """Run slices of one batch until it is finished, stopped from elsewhere (cancelled,
    failed) or `should_stop()`; a slice that found nothing to claim (every open row leased
    by another process, or resting) waits a moment and claims again."""
    from batches.errors import BatchStateError
    from batches.events import run_slice

    while not should_stop():
        try:
            result = run_slice(
                batch_id=batch_id,
                seconds=slice_seconds,
                runner="run_batch",
                concurrency=concurrency,
                should_stop=should_stop,
            )
        except BatchStateError:
            return
        if not result.should_continue:
            return
        if not (result.done or result.failed):
            end = time.monotonic() + IDLE_WAIT_SECONDS
            while time.monotonic() < end and not should_stop():
                time.sleep(0.05)


# --- in the parent -------------------------------------------------------------------------


def split(total: int, parts: int) -> list[int]:
    """`total` split into `parts` shares differing by at most one (each at least 1)."""
    parts = max(min(parts, total), 1)
    base, extra = divmod(total, parts)
    return [base + (1 if n < extra else 0) for n in range(parts)]


class Children:
    """N engine processes of one kind under this parent.

    `target(processes, options[n])` runs in child n. `watch()` restarts a child that
    died (when `restart` says so) after RESTART_DELAY_SECONDS, telling `on_death(pid)`; `stop()` lets every child
    finish its rows in flight; `kill()` ends them at once (their rows are then taken over
    when their leases expire).

    `stop()` is a SIGTERM to each child, not a shared multiprocessing Event: a child
    killed (SIGKILL) while waiting on such an Event leaves its Condition expecting an
    acknowledgement that never comes, and the parent's `set()` would hang for ever.
    """

    def __init__(
        self,
        *,
        target: Callable[..., None],
        options: list[dict[str, Any]],
        restart: Callable[[int], bool] | None = None,
        on_event: Callable[[str], None] | None = None,
        on_death: Callable[[int], None] | None = None,
        preload: list[str] | tuple[str, ...] = (),
    ) -> None:
        self.ctx = context(preload=preload)
        self.target = target
        self.options = [{**option, "command_pid": os.getpid()} for option in options]
        self.restart = restart
        self.on_event = on_event or (lambda message: logger.info("%s", message))
        self.on_death = on_death
        self._stopping = False
        self.procs: list[Any] = [None] * len(options)
        self.restarts = 0
        self._dead_since: dict[int, float] = {}
        self._starter: threading.Thread | None = None
        self._start_error: BaseException | None = None

    @property
    def count(self) -> int:
        return len(self.options)

    def _start(self, n: int) -> None:
        proc = self.ctx.Process(
            target=self.target,
            args=(self.count, self.options[n]),
            name=f"batchchat-engine-{n}",
            daemon=False,
        )
        proc.start()
        self.procs[n] = proc

    def start(self, *, wait: bool = True) -> Children:
        """Start every child. The first start waits for the fork server to be up (a fresh
        interpreter importing Django and the SDK: a second or more); with `wait=False`
        that happens in a thread, and this process goes on with its own work (run_batch
        creating the batch) meanwhile. Every other method waits for it first."""
        if wait:
            self._start_all()
        else:
            self._starter = threading.Thread(
                target=self._start_all, name="batchchat-engine-start", daemon=True
            )
            self._starter.start()
        return self

    def _start_all(self) -> None:
        try:
            for n in range(self.count):
                self._start(n)
        except BaseException as exc:
            self._start_error = exc
            raise

    def started(self) -> None:
        """Wait until every child has been started (`start(wait=False)`); raise what
        stopped that."""
        starter, self._starter = self._starter, None
        if starter is not None:
            starter.join()
        if self._start_error is not None:
            raise RuntimeError("The engine processes could not start.") from self._start_error

    def pids(self) -> list[int | None]:
        self.started()
        return [proc.pid if proc is not None else None for proc in self.procs]

    def alive(self) -> bool:
        self.started()
        return any(proc is not None and proc.is_alive() for proc in self.procs)

    @property
    def stopping(self) -> bool:
        return self._stopping

    def watch(self) -> None:
        """Restart a child that died (unless stopping or `restart(exitcode)` says no)."""
        self.started()
        if self.stopping:
            return
        now = time.monotonic()
        for n, proc in enumerate(self.procs):
            if proc is None or proc.is_alive():
                continue
            code = proc.exitcode
            if self.restart is None or not self.restart(code):
                continue
            since = self._dead_since.setdefault(n, now)
            if since == now:
                if self.on_death is not None:
                    self.on_death(proc.pid)
                self.on_event(
                    f"Engine process {proc.pid} ended (exit status {code}); "
                    f"starting another in {RESTART_DELAY_SECONDS:g} s."
                )
            if now - since >= RESTART_DELAY_SECONDS:
                del self._dead_since[n]
                proc.close()
                self._start(n)
                self.restarts += 1

    @property
    def restart_pending(self) -> bool:
        """A child died and watch() will start another."""
        return bool(self._dead_since)

    def stop(self) -> None:
        """Every child starts no new row; rows in flight finish and are recorded."""
        if self._stopping:
            return
        self.started()
        self._stopping = True
        for proc in self.procs:
            if proc is not None and proc.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for every child to end; True when they all did."""
        self.started()
        end = None if timeout is None else time.monotonic() + timeout
        for proc in self.procs:
            if proc is None:
                continue
            left = None if end is None else max(end - time.monotonic(), 0)
            proc.join(left)
        return not self.alive()

    def kill(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.started()
        for proc in self.procs:
            if proc is not None and proc.is_alive():
                proc.kill()
        for proc in self.procs:
            if proc is not None:
                proc.join(10)

    def exitcodes(self) -> list[int | None]:
        self.started()
        return [proc.exitcode if proc is not None else None for proc in self.procs]
