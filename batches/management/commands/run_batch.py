"""`manage.py run_batch FILE`: create a batch from a file, answer it here, write the results.

    manage.py run_batch questions.csv --provider extractive --search local --out results.xlsx
    manage.py run_batch --resume 12            # continue batch 12 (after Ctrl-C, a crash...)

The batch is an ordinary batch: it shows up in the pages and the API (owned by `--user`,
else by nobody, so only staff see it), and the same engine answers it, in one long slice
driven from this process (`--concurrency` calls in flight). Ctrl-C stops taking new rows:
the rows in flight finish and are
recorded, the results so far are written, and the command prints how to resume. A second
Ctrl-C quits at once (rows in flight are then picked up again when their lease expires).

`--processes N` (default: 1 below a concurrency of 128, else one per core) splits the
concurrency between N engine processes on the same batch (batches.procs: spawned, so
they start while this one reads the file and creates the batch). This process then only
watches: one progress line from the batch's counters in the database, and the one
results file at the end. Ctrl-C as above: the children stop taking rows and finish the
rows in flight.

Exit status: 0 when every row was answered; 1 when rows failed (the results file is still
written); 130 when interrupted; 1 with a message on a bad file, a provider that is not
configured, or a batch that cannot run.
"""

from __future__ import annotations

import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.checks import Tags
from django.core.management.base import BaseCommand, CommandError, CommandParser

from batches.cli.console import (
    Progress,
    clock,
    estimate_lines,
    interactive,
    money,
    throttle_note,
)
from batches.cli.running import (
    Interrupt,
    ResultsFile,
    can_fork,
    in_fork,
    lighter_exit,
    load_engine,
    pause_gc,
    settle_gc,
)
from batches.models import Batch
from chats.models import Language

# The engine, the chat pipeline, the upload readers and the exports are imported where
# they are used, not here: `run_batch --help` (and a child engine process) starts without
# them (batches.tests.test_startup keeps it so).

# One slice runs until the batch is done or Ctrl-C (the slice polls the flag before each
# row starts); a slice that ends waits for its slowest row, so many short ones would leave
# the provider idle at every boundary.
DEFAULT_SLICE_SECONDS = 24 * 3600.0
# When a slice found nothing to claim (rows leased by another runner), wait a little.
IDLE_WAIT_SECONDS = 1.0
# From this concurrency up, the default is one engine process per core: one process is
# CPU-bound near 330 rows/s (the SDKs' ~2 ms a call), which C 128 at 400 ms latency needs.
PROCESSES_FROM_CONCURRENCY = 128
# With engine processes, this one reads the counters from the database this often.
WATCH_SECONDS = 0.1
EXIT_INTERRUPTED = 130
# The option that sets each chat setting (chats.errors.ProviderNotConfigured.field).
PROVIDER_OPTIONS = {
    "ai_provider": "--provider",
    "search_provider": "--search",
    "model": "--model",
    "mode": "--economy",
    "economy_retry": "--economy-retry",
}


class Command(BaseCommand):
    help = (
        "Create a batch from a CSV or XLSX file (or --resume one), answer every row in this "
        "process with a progress line, and write the results as CSV, JSON or XLSX."
    )
    # The system checks of what the command uses. The web's (the URLconf with the API's
    # schemas and every view, the admin's registrations: 0.4 s here) are left to
    # `manage.py check`, the server and the worker; a batch's command does not serve pages.
    requires_system_checks = [
        Tags.caches, Tags.commands, Tags.compatibility, Tags.database, Tags.files,
        Tags.models, Tags.security, Tags.templates, Tags.translation, "batches",
    ]  # fmt: skip

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", nargs="?", help="CSV or XLSX file of questions.")
        parser.add_argument("--name", default="", help="Batch name (default: the file name).")
        parser.add_argument(
            "--provider",
            default="",
            # chats.services.default_chat_settings, read without importing the pipeline.
            help=f"AI provider (default: {settings.DEFAULT_AI_PROVIDER}).",
        )
        parser.add_argument("--model", default="", help="Model (default: the provider's first).")
        parser.add_argument(
            "--search",
            default="",
            help=f"Search provider (default: {settings.DEFAULT_SEARCH_PROVIDER}).",
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
            "--economy",
            action="store_true",
            help="Economy mode: send the answer calls to the provider's batch API (OpenAI, "
            "Azure OpenAI, Anthropic) at the batch price; results within 24 hours.",
        )
        parser.add_argument(
            "--economy-retry",
            choices=Batch.EconomyRetry.values,
            default=Batch.EconomyRetry.BATCH,
            help="With --economy: retry a request that came back expired or errored once in "
            "a new provider batch (batch, the default) or in real time at the real-time "
            "price (realtime).",
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            default=None,
            help=f"Rows answered at once (default: BATCH_CONCURRENCY={settings.BATCH_CONCURRENCY}).",
        )
        parser.add_argument(
            "--processes",
            type=int,
            default=None,
            help=f"Engine processes sharing the concurrency (default: 1 below a concurrency "
            f"of {PROCESSES_FROM_CONCURRENCY}, else one per core).",
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
        parser.add_argument(
            "--budget",
            type=Decimal,
            default=None,
            help="The most the batch may spend (AI_PRICE_CURRENCY): no row starts past it, "
            "the batch pauses with 'budget reached'. With --resume: raises it.",
        )
        parser.add_argument(
            "--yes",
            action="store_true",
            help="Start without asking after the estimate (the question is only asked when "
            "standard input is a terminal).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """1. create or load the batch 2. queue it 3. run slices with progress 4. write
        the results 5. summary and exit status."""
        lighter_exit()
        # No collection while it starts, in a process of its own; resumed once loaded.
        self.gc_paused = pause_gc(self.stdout, self.stderr)
        try:
            self._handle(**options)
        finally:
            settle_gc(self.gc_paused)

    def _handle(self, **options: Any) -> None:
        out_path, stream = self._output(options["out"])
        if options["resume"] is not None and options["file"]:
            raise CommandError("Give either FILE (a new batch) or --resume BATCH_ID, not both.")
        if options["resume"] is None and not options["file"]:
            raise CommandError("Give the CSV or XLSX file of questions, or --resume BATCH_ID.")
        if options["resume"] is None and options["retry_failed"]:
            raise CommandError("--retry-failed only goes with --resume BATCH_ID.")
        concurrency = options["concurrency"] or settings.BATCH_CONCURRENCY
        processes = options["processes"]
        if processes is None:
            from batches.procs import default_processes

            processes = default_processes() if concurrency >= PROCESSES_FROM_CONCURRENCY else 1
        if processes < 1:
            raise CommandError("--processes must be at least 1.")
        processes = min(processes, max(concurrency, 1))
        # Started first: their start-up overlaps reading the file and creating the batch.
        children = self._children(processes, concurrency, options) if processes > 1 else None
        try:
            if options["resume"] is not None:
                if options["budget"] is not None:
                    self._set_budget(options["resume"], options["budget"])
                batch = self._resume(options["resume"], retry=options["retry_failed"])
                if batch.is_active:
                    self._print_estimate(batch, concurrency=concurrency)
            else:
                batch = self._new_batch(options, concurrency=concurrency, alone=children is None)
                if batch is None:
                    return
            if out_path is None:
                out_path = Path(f"results-{batch.pk}.csv")

            started = time.monotonic()
            # Written while the rows are answered: only the rows still open at the end
            # are left to write then.
            results = ResultsFile(batch, out_path, stream).start()
            try:
                if children is not None:
                    settle_gc(self.gc_paused)  # this process only watches
                    interrupted = self._run_children(batch, children)
                else:
                    interrupted = self._run(batch, options)
            except BaseException as exc:
                results.abandon()
                if not isinstance(exc, KeyboardInterrupt):
                    raise
                # Second Ctrl-C: leave now, without the results file.
                if children is not None:
                    children.kill()
                raise CommandError(
                    f"Stopped. Rows that were in flight are picked up again when their lease "
                    f"expires. Resume with: manage.py run_batch --resume {batch.pk}",
                    returncode=EXIT_INTERRUPTED,
                ) from None
            elapsed = time.monotonic() - started
        finally:
            if children is not None and children.alive():
                # A bad file, a batch that cannot run: the children have nothing to do.
                children.stop()
                if not children.join(timeout=30):
                    children.kill()
        batch.refresh_from_db()
        results.finish()

        self.stdout.write(
            f"Batch {batch.pk} ({batch.name}): {batch.get_status_display().lower()}; "
            f"{batch.processed_items:,} done, {batch.failed_items:,} failed, "
            f"{batch.remaining:,} left of {batch.total_items:,} in {clock(elapsed)}."
        )
        from batches import hooks

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
        if batch.budget_reached:
            raise CommandError(
                f"The batch paused: budget reached ({money(batch.spent)} spent of "
                f"{money(batch.budget)}). Raise it with: manage.py run_batch --resume "
                f"{batch.pk} --budget AMOUNT"
            )
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
        from batches.export import EXPORT_FORMATS, stream_csv

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
        from batches.errors import UploadError
        from batches.services import create_batch_run
        from batches.uploads import parse_upload_file
        from chats.services import ProviderNotConfigured

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
                mode=Batch.Mode.ECONOMY if options["economy"] else Batch.Mode.REALTIME,
                economy_retry=options["economy_retry"],
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
        if batch.is_economy:
            self.stdout.write(
                "Economy mode: the answers come from the provider's batch API, expected "
                "within 24 hours. This command waits for them (Ctrl-C leaves; a worker or "
                f"--resume {batch.pk} picks them up)."
            )
        return batch

    def _new_batch(self, options: dict[str, Any], *, concurrency: int, alone: bool) -> Batch | None:
        """Create the batch, print its estimate and start it once confirmed (None: not
        confirmed). `alone` (no engine processes): where it can, the batch is created in a
        forked process while this one loads the provider's SDK and the engine, which it
        needs next (batches.cli.running.in_fork)."""
        if alone and (options["yes"] or not interactive(sys.stdin)):
            streams = (self.stdout, self.stderr)
            if can_fork(*streams):
                ai_provider = options["provider"] or settings.DEFAULT_AI_PROVIDER

                def create() -> int | None:
                    batch = self._create_and_start(options, concurrency=concurrency)
                    return None if batch is None else batch.pk

                batch_id = in_fork(
                    create, meanwhile=lambda: load_engine(ai_provider), streams=streams
                )
                return None if batch_id is None else Batch.objects.get(pk=batch_id)
        return self._create_and_start(options, concurrency=concurrency)

    def _create_and_start(self, options: dict[str, Any], *, concurrency: int) -> Batch | None:
        batch = self._create(options)
        if options["budget"] is not None:
            from batches.costs import set_budget

            batch = set_budget(batch=batch, budget=options["budget"])
        self._print_estimate(batch, concurrency=concurrency)
        if not self._confirmed(options["yes"]):
            self.stdout.write(
                f"Not started. Start it later with: manage.py run_batch --resume {batch.pk}"
            )
            return None
        from batches.services import start_batch

        return start_batch(batch=batch)

    def _set_budget(self, batch_id: int, budget: Decimal) -> None:
        from batches.costs import set_budget
        from batches.errors import BatchStateError

        try:
            set_budget(batch=Batch.objects.get(pk=batch_id), budget=budget)
        except Batch.DoesNotExist:
            raise CommandError(f"There is no batch {batch_id}.") from None
        except BatchStateError as exc:
            raise CommandError(str(exc)) from None

    def _print_estimate(self, batch: Batch, *, concurrency: int) -> None:
        """The estimate of the rows left (batches.estimate), before they start."""
        from batches.estimate import refresh_estimate

        estimate = refresh_estimate(batch, concurrency=concurrency)
        for line in estimate_lines(estimate, budget=batch.budget):
            self.stdout.write(line)

    def _confirmed(self, yes: bool) -> bool:
        """--yes, or a "y" typed at the question. Without a terminal on standard input
        (scripts, CI, cron) nobody can answer: the batch starts, as it did before."""
        if yes or not interactive(sys.stdin):
            return True
        self.stdout.write("Start this batch? [y/N] ", ending="")
        self.stdout.flush()
        return sys.stdin.readline().strip().lower() in ("y", "yes", "o", "oui")

    def _resume(self, batch_id: int, *, retry: bool) -> Batch:
        from batches.services import BatchStateError, retry_failed, start_batch

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

    def _children(self, processes: int, concurrency: int, options: dict[str, Any]):
        from batches.procs import Children, batch_child, context, split
        from chats.services import provider_modules

        # A new batch's provider is known now: the fork server imports its SDK once.
        ai_provider = (
            ""
            if options["resume"] is not None
            else options["provider"] or settings.DEFAULT_AI_PROVIDER
        )
        preload = provider_modules(ai_provider)

        # The batch id, once created (0: not yet). Raw: written once, read without a lock
        # that a killed child could leave held.
        shared = context().RawValue("q", 0)
        self.processes = processes
        children = Children(
            target=batch_child,
            options=[
                {
                    "batch": shared,
                    "concurrency": share,
                    "slice_seconds": options["slice_seconds"],
                    "ai_provider": ai_provider,
                }
                for share in split(concurrency, processes)
            ],
            # A child that crashed (killed, out of memory) is replaced; its rows are taken
            # over when their leases end.
            restart=lambda code: code != 0,
            on_event=self.stderr.write,
            preload=preload,
        )
        children.shared_batch = shared
        return children.start(wait=False)

    def _progress(self, batch: Batch) -> Progress:
        """The one progress line on standard error, from the batch's counters."""
        return Progress(
            self.stderr,
            total=batch.total_items,
            finished=batch.finished_count,
            tty=self.stderr.isatty(),
        )

    def _run_children(self, batch: Batch, children) -> bool:
        """Engine processes answer the batch; this one shows their progress from the
        batch's counters until they have all ended. True when interrupted."""
        if batch.status not in Batch.ACTIVE_STATUSES:
            return False
        progress = self._progress(batch)
        note = f"{children.count} processes"
        children.shared_batch.value = batch.pk
        try:
            with Interrupt() as interrupt:
                while children.alive() or children.restart_pending:
                    batch.refresh_from_db()
                    if interrupt.requested or batch.status not in Batch.ACTIVE_STATUSES:
                        # Ctrl-C; or finished (a child waiting for the others' rows need
                        # not look again), cancelled or failed from elsewhere.
                        children.stop()
                    children.watch()
                    progress.update(
                        finished=batch.finished_count, failed=batch.failed_items, note=note
                    )
                    children.join(timeout=WATCH_SECONDS)
                return interrupt.requested
        finally:
            batch.refresh_from_db()
            progress.update(
                finished=batch.finished_count, failed=batch.failed_items, force=True, note=note
            )
            progress.close()

    def _run(self, batch: Batch, options: dict[str, Any]) -> bool:
        """Run slices until the batch is finished or Ctrl-C; True when interrupted."""
        from batches.errors import BatchStateError
        from batches.events import run_slice
        from chats.services import safety_cap

        if batch.status not in Batch.ACTIVE_STATUSES:
            return False
        # The provider's SDK and clients before the first claim, not on the provider loop
        # under the first rows' calls (the same time either way; the rows' latency stays
        # theirs). Already done when the batch was created in a fork.
        load_engine(batch.ai_provider)
        settle_gc(self.gc_paused)
        progress = self._progress(batch)
        slice_seconds = max(options["slice_seconds"], 0.1)
        concurrency = options["concurrency"] or settings.BATCH_CONCURRENCY
        cap = safety_cap()
        if cap and cap < concurrency:
            self.stdout.write(
                f"Note: PROVIDER_MAX_CONCURRENCY={cap} is in force: at most {cap} calls in "
                f"flight, not {concurrency}."
            )
        try:
            with Interrupt() as interrupt:
                while not interrupt.requested:

                    def report(
                        done: int, failed: int, base=(batch.finished_count, batch.failed_items)
                    ) -> None:
                        progress.update(
                            finished=base[0] + done + failed,
                            failed=base[1] + failed,
                            note="; ".join(
                                part
                                for part in (
                                    "1 process",
                                    throttle_note(
                                        batch,
                                        concurrency,
                                        remaining=batch.total_items - base[0] - done - failed,
                                    ),
                                )
                                if part
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
                    if batch.budget_reached:
                        progress.update(
                            finished=batch.finished_count,
                            failed=batch.failed_items,
                            force=True,
                            note=f"paused: budget reached ({money(batch.spent)} spent)",
                        )
                    if not result.should_continue:
                        break
                    if not (result.done or result.failed):
                        # Every open row is leased by another runner, resting after a
                        # rate limit, or in a provider batch (economy): let it work.
                        wait = IDLE_WAIT_SECONDS
                        if batch.is_economy:
                            wait = max(min(settings.ECONOMY_POLL_SECONDS, 10.0), 0.05)
                        time.sleep(wait)
                return interrupt.requested
        finally:
            batch.refresh_from_db()
            progress.update(finished=batch.finished_count, failed=batch.failed_items, force=True)
            progress.close()
