"""`manage.py run_worker`: process active batches in the background, no broker needed.

    manage.py run_worker                      # what bin/run and bin/serve start
    manage.py run_worker --concurrency 16     # provider calls in flight per slice
    manage.py run_worker --processes 4        # four engine processes under one parent

With `--processes N` (default WORKER_PROCESSES, 0: one per core) the command is a parent
of N engine processes (batches.procs): it starts a child that died again, and passes
SIGTERM / Ctrl-C on to all of them. `--processes 1` runs the worker in this process.

Runs until SIGTERM or Ctrl-C: then it starts no new row, lets the rows in flight finish
and be recorded, gives back the rows it claimed but did not start, and exits 0. A second
Ctrl-C quits at once (rows in flight are then taken over when their lease expires).
Several workers, on one machine or many, may run at once.
"""

from __future__ import annotations

import signal
import socket
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

EXIT_INTERRUPTED = 130
WATCH_SECONDS = 0.2  # the parent looks at its children this often


class Command(BaseCommand):
    help = "Process the slices of active batches in the background (no broker needed)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--concurrency",
            type=int,
            default=None,
            help="Provider calls in flight per slice (default: BATCH_CONCURRENCY).",
        )
        parser.add_argument(
            "--slice-seconds",
            type=float,
            default=None,
            help="Time given to one batch before the next one's turn (default: "
            "WORKER_SLICE_SECONDS).",
        )
        parser.add_argument(
            "--processes",
            type=int,
            default=None,
            help="Engine processes under this one (default: WORKER_PROCESSES, or one per "
            "core); 1 runs the worker in this process.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from batches.procs import default_processes

        processes = options["processes"]
        if processes is None:
            processes = settings.WORKER_PROCESSES or default_processes()
        if processes < 1:
            raise CommandError("--processes must be at least 1.")
        if processes > 1:
            self._parent(processes, options)
            return
        from batches.worker import Worker

        worker = Worker(slice_seconds=options["slice_seconds"], concurrency=options["concurrency"])
        interrupts = 0

        def on_term(signum: int, frame: object) -> None:
            worker.request_stop()

        def on_int(signum: int, frame: object) -> None:
            nonlocal interrupts
            interrupts += 1
            if interrupts > 1:
                raise KeyboardInterrupt
            worker.request_stop()

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_int)
        self.stdout.write(
            f"Worker {worker.name} started: slices of {worker.slice_seconds:g} s, "
            f"heartbeat every {worker.heartbeat_seconds:g} s. Stop with SIGTERM or Ctrl-C."
        )
        self.stdout.flush()
        try:
            worker.run()
        except KeyboardInterrupt:
            self.stderr.write(
                "Stopped at once; rows in flight are taken over when their lease expires."
            )
            raise SystemExit(EXIT_INTERRUPTED) from None
        self.stdout.write(
            f"Worker {worker.name} stopped after {worker.slices:,} slices: "
            f"{worker.rows_done:,} rows done, {worker.rows_failed:,} failed."
        )

    def _parent(self, processes: int, options: dict[str, Any]) -> None:
        """N engine processes: restart one that dies; SIGTERM / Ctrl-C stop them all."""
        from batches.procs import Children, worker_child

        child_options = {
            "slice_seconds": options["slice_seconds"],
            "concurrency": options["concurrency"],
        }

        def say(message: str) -> None:
            self.stdout.write(message)
            self.stdout.flush()

        def forget(pid: int) -> None:
            # A killed child leaves its heartbeat row: the pages would count it alive
            # until WORKER_HEARTBEAT_TIMEOUT.
            from batches.models import WorkerHeartbeat

            WorkerHeartbeat.objects.filter(hostname=socket.gethostname()[:255], pid=pid).delete()

        children = Children(
            target=worker_child,
            options=[dict(child_options) for _ in range(processes)],
            restart=lambda code: True,
            on_event=say,
            on_death=forget,
        )
        interrupts = 0

        def on_term(signum: int, frame: object) -> None:
            children.stop()

        def on_int(signum: int, frame: object) -> None:
            nonlocal interrupts
            interrupts += 1
            if interrupts > 1:
                raise KeyboardInterrupt
            children.stop()

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_int)
        children.start()
        say(
            f"Worker parent started {processes} engine processes "
            f"(pids {', '.join(str(pid) for pid in children.pids())}). "
            "Stop with SIGTERM or Ctrl-C."
        )
        try:
            while not children.stopping:
                children.watch()
                time.sleep(WATCH_SECONDS)
            # Each child finishes its rows in flight and gives back the rest.
            while not children.join(timeout=WATCH_SECONDS):
                pass
        except KeyboardInterrupt:
            children.kill()
            self.stderr.write(
                "Stopped at once; rows in flight are taken over when their lease expires."
            )
            raise SystemExit(EXIT_INTERRUPTED) from None
        say(
            f"Worker parent stopped its {processes} engine processes "
            f"({children.restarts} restarted on the way); exit statuses "
            f"{', '.join(str(code) for code in children.exitcodes())}."
        )
