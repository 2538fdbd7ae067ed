"""`manage.py run_batch FILE`: create a batch from a file, answer it here, write the results.

    manage.py run_batch questions.csv --provider extractive --search local --out results.xlsx
    manage.py run_batch --resume 12            # continue batch 12 (after Ctrl-C, a crash...)

The batch is an ordinary batch: it shows up in the pages and the API (owned by `--user`,
else by nobody, so only staff see it), and the same engine answers it, in one long slice
driven from this process (`--concurrency` calls in flight). Ctrl-C stops taking new rows:
the rows in flight finish and are
recorded, the results so far are written, and the command prints how to resume. A second
Ctrl-C quits at once (rows in flight are then picked up again when their lease expires).

Exit status: 0 when every row was answered; 1 when rows failed (the results file is still
written); 130 when interrupted; 1 with a message on a bad file, a provider that is not
configured, or a batch that cannot run.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper

from batches import hooks
from batches.errors import UploadError
from batches.events import run_slice
from batches.export import EXPORT_FORMATS, stream_csv
from batches.models import Batch
from batches.services import (
    BatchStateError,
    create_batch_run,
    retry_failed,
    start_batch,
)
from batches.uploads import parse_upload_file
from chats.models import Language
from chats.services import (
    OUTAGE_REASONS,
    ProviderNotConfigured,
    default_chat_settings,
    limits_snapshot,
    outage_snapshot,
    safety_cap,
)

# One slice runs until the batch is done or Ctrl-C (the slice polls the flag before each
# row starts); a slice that ends waits for its slowest row, so many short ones would leave
# the provider idle at every boundary.
DEFAULT_SLICE_SECONDS = 24 * 3600.0
# Without a terminal (logs, CI), one progress line this often.
LOG_EVERY_SECONDS = 5.0
# When a slice found nothing to claim (rows leased by another runner), wait a little.
IDLE_WAIT_SECONDS = 1.0
EXIT_INTERRUPTED = 130
# The option that sets each chat setting (chats.errors.ProviderNotConfigured.field).
PROVIDER_OPTIONS = {"ai_provider": "--provider", "search_provider": "--search", "model": "--model"}


class Progress:
    """Rows per second, ETA and failures: a `\\r` line on a terminal, else a line per few s."""

    def __init__(self, out: OutputWrapper, *, total: int, finished: int, tty: bool) -> None:
        self.out = out
        self.total = total
        self.start_finished = finished
        self.tty = tty
        self.started = time.monotonic()
        self.last_line = 0.0
        self.last_finished: int | None = None
        self.width = 0

    def update(self, *, finished: int, failed: int, force: bool = False, note: str = "") -> None:
        now = time.monotonic()
        if force and finished == self.last_finished:
            return  # the closing line would repeat the last one
        if not self.tty and not force and now - self.last_line < LOG_EVERY_SECONDS:
            return
        self.last_line = now
        self.last_finished = finished
        elapsed = now - self.started
        rate = (finished - self.start_finished) / elapsed if elapsed > 0 else 0.0
        left = max(self.total - finished, 0)
        eta = _duration(left / rate) if rate > 0 else "?"
        percent = 100 * finished // self.total if self.total else 100
        line = (
            f"{finished:,}/{self.total:,} rows ({percent}%)  {failed:,} failed  "
            f"{rate:.1f} rows/s  ETA {eta}"
        ) + (f"  {note}" if note else "")
        if self.tty:
            # Pad over the previous line, which may have been longer.
            self.out.write("\r" + line.ljust(self.width), ending="")
            self.width = len(line)
        else:
            self.out.write(line)
        self.out.flush()

    def close(self) -> None:
        if self.tty and self.width:
            self.out.write("")
            self.out.flush()


def _throttle_note(batch: Batch, concurrency: int, *, remaining: int) -> str:
    """What the provider's quota, or an outage, is doing to this run, if anything."""
    parts = []
    outage = outage_snapshot(batch.ai_provider, batch.model)
    if outage is not None:
        last = outage["last_success"]
        seen = time.strftime("%H:%M:%S", time.localtime(last)) if last else "none yet"
        parts.append(
            f"the provider does not answer ({OUTAGE_REASONS.get(outage['reason'], outage['reason'])}),"
            f" retrying; {remaining} rows waiting; last answer: {seen}"
        )
    shot = limits_snapshot(batch.ai_provider, batch.model)
    if shot is None:
        return "; ".join(parts)
    left = shot["until"] - time.time()
    if left > 0:
        parts.append(f"waiting for the provider's rate limit, resumes in {left:.0f} s")
    if shot["limit"] is not None:
        parts.append(f"{shot['in_flight']}/{min(shot['limit'], concurrency)} calls in flight")
    return "; ".join(parts)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


class _Interrupt:
    """First SIGINT sets a flag (finish the slice, then stop); the second one raises."""

    def __init__(self) -> None:
        self.requested = False
        self.previous: Any = None

    def __enter__(self) -> _Interrupt:
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


class Command(BaseCommand):
    help = (
        "Create a batch from a CSV or XLSX file (or --resume one), answer every row in this "
        "process with a progress line, and write the results as CSV, JSON or XLSX."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", nargs="?", help="CSV or XLSX file of questions.")
        parser.add_argument("--name", default="", help="Batch name (default: the file name).")
        default = default_chat_settings()
        parser.add_argument(
            "--provider",
            default="",
            help=f"AI provider (default: {default.ai_provider}).",
        )
        parser.add_argument("--model", default="", help="Model (default: the provider's first).")
        parser.add_argument(
            "--search",
            default="",
            help=f"Search provider (default: {default.search_provider}).",
        )
        parser.add_argument(
            "--language", default=Language.EN, choices=Language.values, help="Page language."
        )
        parser.add_argument(
            "--apply-overrides",
            action="store_true",
            help="Apply the --user's enabled prompt override.",
        )
        parser.add_argument(
            "--repeats",
            type=int,
            default=1,
            metavar="K",
            help="Answer each question K times, 1 to 10 (K rows and chats per question; "
            "the grades report pass@K and pass^K).",
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            default=None,
            help=f"Rows answered at once (default: BATCH_CONCURRENCY={settings.BATCH_CONCURRENCY}).",
        )
        parser.add_argument(
            "--slice-seconds",
            type=float,
            default=DEFAULT_SLICE_SECONDS,
            help="Length of one engine slice (default: until done; Ctrl-C stops it early).",
        )
        parser.add_argument(
            "--out",
            default=None,
            help="Results file; its extension picks the format: .csv, .json or .xlsx "
            "(default: results-<batch id>.csv).",
        )
        parser.add_argument(
            "--resume", type=int, default=None, metavar="BATCH_ID", help="Continue this batch."
        )
        parser.add_argument(
            "--retry-failed",
            action="store_true",
            help="With --resume: run the batch's failed and cancelled rows again.",
        )
        parser.add_argument(
            "--user", default=None, help="Owner of a new batch (default: none; staff see it)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """1. create or load the batch 2. queue it 3. run slices with progress 4. write
        the results 5. summary and exit status."""
        out_path, stream = self._output(options["out"])
        if options["resume"] is not None:
            if options["file"]:
                raise CommandError("Give either FILE (a new batch) or --resume BATCH_ID, not both.")
            batch = self._resume(options["resume"], retry=options["retry_failed"])
        else:
            if not options["file"]:
                raise CommandError("Give the CSV or XLSX file of questions, or --resume BATCH_ID.")
            if options["retry_failed"]:
                raise CommandError("--retry-failed only goes with --resume BATCH_ID.")
            batch = self._create(options)
        if out_path is None:
            out_path = Path(f"results-{batch.pk}.csv")

        started = time.monotonic()
        try:
            interrupted = self._run(batch, options)
        except KeyboardInterrupt:
            # Second Ctrl-C: leave now, without the results file.
            raise CommandError(
                f"Stopped. Rows that were in flight are picked up again when their lease "
                f"expires. Resume with: manage.py run_batch --resume {batch.pk}",
                returncode=EXIT_INTERRUPTED,
            ) from None
        elapsed = time.monotonic() - started
        batch.refresh_from_db()

        with open(out_path, "wb") as handle:
            for chunk in stream(batch):
                handle.write(chunk)

        self.stdout.write(
            f"Batch {batch.pk} ({batch.name}): {batch.get_status_display().lower()}; "
            f"{batch.processed_items:,} done, {batch.failed_items:,} failed, "
            f"{batch.remaining:,} left of {batch.total_items:,} in {_duration(elapsed)}."
        )
        graders = hooks.graders()
        grades = graders.summary_text(graders.summaries([batch.pk])[batch.pk])
        if grades:
            self.stdout.write(f"Grades: {grades}.")
        self.stdout.write(f"Results: {out_path}")
        if interrupted:
            raise CommandError(
                f"Interrupted; {batch.remaining:,} rows are left. Resume with: "
                f"manage.py run_batch --resume {batch.pk}",
                returncode=EXIT_INTERRUPTED,
            )
        if batch.status == Batch.Status.FAILED:
            raise CommandError(f"The batch stopped: {batch.error}")
        if batch.status == Batch.Status.CANCELLED:
            raise CommandError(
                f"The batch was cancelled (from the pages or the API). Resume with: "
                f"manage.py run_batch --resume {batch.pk}"
            )
        if batch.failed_items:
            raise CommandError(
                f"{batch.failed_items:,} rows failed (see the status and error columns). "
                f"Retry them with: manage.py run_batch --resume {batch.pk} --retry-failed"
            )
        self.stdout.write(self.style.SUCCESS("Every row was answered."))

    # -- steps ---------------------------------------------------------------------------
    def _output(self, out: str | None):
        if out is None:
            return None, stream_csv
        path = Path(out)
        fmt = path.suffix.lower().lstrip(".")
        if fmt not in EXPORT_FORMATS:
            raise CommandError(
                f"--out {out}: the extension picks the format; use .csv, .json or .xlsx."
            )
        if not path.parent.is_dir():
            raise CommandError(f"--out {out}: the folder {path.parent} does not exist.")
        return path, EXPORT_FORMATS[fmt][1]

    def _owner(self, username: str | None):
        if not username:
            return None
        User = get_user_model()
        try:
            return User.objects.get(**{User.USERNAME_FIELD: username})
        except User.DoesNotExist:
            raise CommandError(f"--user {username}: there is no such user.") from None

    def _create(self, options: dict[str, Any]) -> Batch:
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file.")
        owner = self._owner(options["user"])
        if options["apply_overrides"] and owner is None:
            raise CommandError("--apply-overrides needs --user (overrides belong to a user).")
        try:
            with open(path, "rb") as handle:
                parsed = parse_upload_file(file=handle, filename=path.name)
            batch = create_batch_run(
                uploader=owner,
                name=options["name"] or path.name,
                rows=parsed.rows,
                ai_provider=options["provider"],
                model=options["model"],
                search_provider=options["search"],
                page_language=options["language"],
                apply_overrides=options["apply_overrides"],
                source_filename=path.name,
                repeats=options["repeats"],
            )
        except UploadError as exc:
            raise CommandError(exc.message) from None
        except ProviderNotConfigured as exc:
            option = PROVIDER_OPTIONS.get(exc.field)
            raise CommandError(f"{option}: {exc}" if option else str(exc)) from None
        self.stdout.write(
            f"Batch {batch.pk} created from {path.name}: {batch.total_items:,} rows, "
            f"{batch.ai_provider}/{batch.model} with {batch.search_provider} search."
        )
        return start_batch(batch=batch)

    def _resume(self, batch_id: int, *, retry: bool) -> Batch:
        try:
            batch = Batch.objects.get(pk=batch_id)
        except Batch.DoesNotExist:
            raise CommandError(f"There is no batch {batch_id}.") from None
        try:
            if retry:
                batch = retry_failed(batch=batch)
            elif batch.status != Batch.Status.COMPLETED:
                batch = start_batch(batch=batch)
        except BatchStateError as exc:
            raise CommandError(str(exc)) from None
        if batch.status == Batch.Status.COMPLETED:
            self.stdout.write(
                f"Batch {batch.pk} is already completed; writing its results "
                "(add --retry-failed to run its failed rows again)."
            )
        else:
            self.stdout.write(
                f"Resuming batch {batch.pk} ({batch.name}): {batch.remaining:,} of "
                f"{batch.total_items:,} rows left."
            )
        return batch

    def _run(self, batch: Batch, options: dict[str, Any]) -> bool:
        """Run slices until the batch is finished or Ctrl-C; True when interrupted."""
        if batch.status not in Batch.ACTIVE_STATUSES:
            return False
        progress = Progress(
            self.stderr,
            total=batch.total_items,
            finished=batch.finished_count,
            tty=self.stderr.isatty(),
        )
        slice_seconds = max(options["slice_seconds"], 0.1)
        concurrency = options["concurrency"] or settings.BATCH_CONCURRENCY
        cap = safety_cap()
        if cap and cap < concurrency:
            self.stdout.write(
                f"Note: PROVIDER_MAX_CONCURRENCY={cap} is in force: at most {cap} calls in "
                f"flight, not {concurrency}."
            )
        try:
            with _Interrupt() as interrupt:
                while not interrupt.requested:

                    def report(
                        done: int, failed: int, base=(batch.finished_count, batch.failed_items)
                    ) -> None:
                        progress.update(
                            finished=base[0] + done + failed,
                            failed=base[1] + failed,
                            note=_throttle_note(
                                batch,
                                concurrency,
                                remaining=batch.total_items - base[0] - done - failed,
                            ),
                        )

                    try:
                        result = run_slice(
                            batch_id=batch.pk,
                            seconds=slice_seconds,
                            runner="run_batch",
                            concurrency=concurrency,
                            should_stop=lambda: interrupt.requested,
                            on_progress=report,
                        )
                    except BatchStateError:
                        # Cancelled or failed from elsewhere (pages, API) meanwhile.
                        break
                    batch.refresh_from_db()
                    if not result.should_continue:
                        break
                    if not (result.done or result.failed):
                        # Every open row is leased by another runner, or resting after a
                        # rate limit: let it work.
                        time.sleep(IDLE_WAIT_SECONDS)
                return interrupt.requested
        finally:
            batch.refresh_from_db()
            progress.update(finished=batch.finished_count, failed=batch.failed_items, force=True)
            progress.close()
