"""`manage.py run_worker`: process active batches in the background, no broker needed.

    manage.py run_worker                      # what bin/run and bin/serve start
    manage.py run_worker --concurrency 16     # provider calls in flight per slice

Runs until SIGTERM or Ctrl-C: then it starts no new row, lets the rows in flight finish
and be recorded, gives back the rows it claimed but did not start, and exits 0. A second
Ctrl-C quits at once (rows in flight are then taken over when their lease expires).
Several workers, on one machine or many, may run at once.
"""

from __future__ import annotations

import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from batches.worker import Worker

EXIT_INTERRUPTED = 130


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

    def handle(self, *args: Any, **options: Any) -> None:
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
