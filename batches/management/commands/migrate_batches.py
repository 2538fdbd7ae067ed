"""Bring the old application's batches into BatchChat.

manage.py migrate_batches --from DIR [--owner USERNAME] [--dry-run]
    imports mongoexport files (era 1 inline entries, era 2 referenced interactions);
manage.py migrate_batches [--dry-run] [--batch-size N]
    converts a database restored from a dump of the old schema (batches at 0001).
"""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from batches import legacy

SHOWN = 50  # lines of skipped / notes printed in full; the rest are counted


class Command(BaseCommand):
    help = (
        "Import the old application's batches from mongoexport files (--from DIR), or "
        "convert the inline rows of a database restored from the old schema. Idempotent: "
        "batches already imported (same legacy id) are skipped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--from",
            dest="source",
            type=Path,
            help="Folder with batches.json (era 1 or 2) and, for era 2, interactions.json, "
            "chats.json, questions.json, answers.json, citations.json, contexts.json; "
            "subfolders one level down are read too.",
        )
        parser.add_argument(
            "--owner",
            help="Username that owns the imported batches and chats (the old uploader ids "
            "do not exist here). Without it the batches have no owner: only staff see them.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Convert and report, then roll back: nothing is written.",
        )
        parser.add_argument(
            "--ignore-upload-limits",
            action="store_true",
            help="Import batches that break the upload rules (more than MAX_BATCH_ITEMS rows, "
            "more than 500 columns, cells over 32,767 characters) instead of skipping them. "
            "Such a batch may be slow to run, show or export.",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=100,
            help="Legacy batches per progress step (and per chunk read from the database "
            "without --from). Default 100.",
        )

    def handle(self, *args, source: Path | None, owner: str | None, dry_run: bool, **options):
        batch_size = options["batch_size"]
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        if source is None:
            if owner:
                raise CommandError(
                    "--owner only applies with --from: converted batches keep their uploader."
                )
            return self._convert_database(dry_run=dry_run, batch_size=batch_size)
        return self._import(
            source=source,
            owner=owner,
            dry_run=dry_run,
            batch_size=batch_size,
            upload_limits=not options["ignore_upload_limits"],
        )

    def _import(
        self,
        *,
        source: Path,
        owner: str | None,
        dry_run: bool,
        batch_size: int,
        upload_limits: bool,
    ):
        if not source.is_dir():
            raise CommandError(f"--from {source}: no such folder.")
        user = None
        if owner:
            User = get_user_model()
            try:
                user = User.objects.get(**{User.USERNAME_FIELD: owner})
            except User.DoesNotExist:
                raise CommandError(
                    f"--owner {owner}: no such user; create it first (manage.py createsuperuser)."
                ) from None
        try:
            summary = legacy.import_exports(
                source=source,
                owner=user,
                dry_run=dry_run,
                progress=self.stdout.write,
                progress_every=batch_size,
                upload_limits=upload_limits,
            )
        except legacy.LegacyDocumentError as exc:
            raise CommandError(str(exc)) from exc

        prefix = "Dry run, nothing written: would import" if dry_run else "Imported"
        self.stdout.write(
            f"{prefix} {summary.batches} batches, {summary.items} rows, "
            f"{summary.interactions} interactions ({summary.chats_created} chats created, "
            f"{summary.chats_reused} reused)."
        )
        if summary.already_imported:
            self.stdout.write(
                f"Already imported, skipped: {len(summary.already_imported)} batches "
                f"({self._few(summary.already_imported)})."
            )
        if not summary.batches and not summary.failed:
            self.stdout.write("Nothing new to import.")
        if summary.without_owner:
            self.stdout.write(
                self.style.WARNING(
                    f"{summary.without_owner} batches have no owner (no --owner given): only "
                    "staff see them; set an owner in the admin, or delete them and import "
                    "again with --owner USERNAME."
                )
            )
        self._lines("Notes", summary.notes)
        self._lines("Skipped", summary.skipped, style=self.style.ERROR)
        self._lines("Unreadable", summary.errors, style=self.style.ERROR)
        if summary.failed:
            raise CommandError(
                f"{len(summary.skipped)} batches could not be converted and "
                f"{len(summary.errors)} lines could not be read (listed above); the rest "
                "was imported. Fix the export and run again: imported batches are skipped."
            )

    def _convert_database(self, *, dry_run: bool, batch_size: int):
        try:
            result = legacy.convert_legacy_database(
                dry_run=dry_run, batch_size=batch_size, progress=self.stdout.write
            )
        except legacy.LegacyDocumentError as exc:
            raise CommandError(str(exc)) from exc
        if result is None:
            self.stdout.write(
                "Nothing inline to convert: the batches migrations already stand at 0003 or "
                "later (the 0003 data migration converted the inline rows). To import the old "
                "application's exports, use --from DIR."
            )
            return
        if dry_run:
            self.stdout.write(
                f"Dry run, nothing written: {result.batches} batches hold {result.items} "
                f"inline rows ({result.interactions} answered) that would be converted; the "
                "batches migrations would then run to the latest."
            )
            return
        self.stdout.write(
            f"Converted {result.batches} batches, {result.items} rows, "
            f"{result.interactions} interactions; migrations now at the latest."
        )
        self._lines("Notes", result.notes)
        self._lines("Skipped", result.skipped, style=self.style.WARNING)

    @staticmethod
    def _few(values: list[str], limit: int = 5) -> str:
        shown = ", ".join(values[:limit])
        return f"{shown}, and {len(values) - limit} more" if len(values) > limit else shown

    def _lines(self, title: str, lines: list[str], style=None) -> None:
        if not lines:
            return
        self.stdout.write(f"{title} ({len(lines)}):")
        for line in lines[:SHOWN]:
            self.stdout.write(f"  - {line}" if style is None else style(f"  - {line}"))
        if len(lines) > SHOWN:
            self.stdout.write(f"  ... and {len(lines) - SHOWN} more")
