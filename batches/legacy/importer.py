"""`migrate_batches --from`: legacy batch documents -> LegacyBatch -> one transaction per
batch, each refused one reported with its reason while the others are imported."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batches import signals
from batches.legacy.mongoexport import (
    ExportFolder,
    _why,
    document_id,
    find_export_folders,
    load_folder,
    ref_id,
)
from batches.legacy.rows import LegacyRow, _era2_row, convert_entry
from batches.legacy.values import (
    LegacyDocumentError,
    first,
    fit_id,
    language,
    plain_json,
    text,
    to_datetime,
    to_int,
)
from batches.legacy.writer import counters_for, finish_batch, write_rows


@dataclass
class LegacyBatch:
    legacy_id: str
    fields: dict
    old_status: str
    rows: list[LegacyRow]
    notes: list[str] = field(default_factory=list)


def _batch_fields(document: dict) -> dict:
    name = first(document, ("name", "batchName")) or f"Legacy batch {legacy_batch_id(document)}"
    created = to_datetime(document.get("createdAt"))
    return {
        "name": name[:200],
        "type": (text(document.get("type")).strip() or "question")[:32],
        "ai_provider": (text(document.get("aiProvider")).strip().lower() or "openai")[:32],
        "model": text(document.get("model")).strip()[:128],
        "search_provider": text(document.get("searchProvider")).strip().lower()[:32],
        "page_language": language(document.get("pageLanguage") or document.get("language")),
        "apply_overrides": bool(document.get("applyOverrides")),
        "created_at": created,
        "updated_at": to_datetime(document.get("updatedAt")) or created,
    }


def legacy_batch_id(document: dict) -> str:
    return fit_id(text(plain_json(document.get("batchId"))).strip() or document_id(document))


def batch_from_era1(document: dict) -> LegacyBatch:
    entries = document.get("entries")
    if not isinstance(entries, list):
        raise LegacyDocumentError("`entries` is not a list")
    fields = _batch_fields(document)
    rows = [convert_entry(entry) for entry in entries]
    legacy = LegacyBatch(legacy_batch_id(document), fields, text(document.get("status")), rows)
    stats = {
        "total_items": to_int(document.get("totalItems")),
        "processed_items": to_int(document.get("processedItems")),
        "failed_items": to_int(document.get("failedItems")),
    }
    recount = counters_for([row.status for row in rows])
    differs = {k: v for k, v in stats.items() if v is not None and v != recount[k]}
    if differs:
        said = ", ".join(f"{k}={v}" for k, v in differs.items())
        legacy.notes.append(f"batch {legacy.legacy_id}: old stats said {said}; recounted")
    return legacy


def batch_from_era2(document: dict, folder: ExportFolder) -> LegacyBatch:
    """One era-2 batch: a row per referenced interaction, in the batch's order.

    A missing collection file, or an interaction / question that cannot be found, makes
    the whole batch unconvertible (so a fixed export imports it whole); a missing answer
    leaves the row pending (asked again), a missing citation or context only loses those.
    """
    legacy_id = legacy_batch_id(document)
    if folder.missing:
        raise LegacyDocumentError(
            f"{', '.join(folder.missing)} not found in {folder.path}; "
            "export every collection next to batches.json"
        )
    refs = [ref_id(value) for value in document.get("interactions") or []]
    if any(not ref for ref in refs):
        raise LegacyDocumentError("an interaction reference is empty")
    c = folder.collections
    missing = [ref for ref in refs if ref not in c["interactions"]]
    if missing:
        raise LegacyDocumentError(
            f"interactions not found in interactions.json: {', '.join(missing)}"
        )
    fields = _batch_fields(document)
    legacy = LegacyBatch(legacy_id, fields, text(document.get("status")), [])

    # Which legacy chat holds each interaction, and at which turn (first chat wins).
    chat_of: dict[str, tuple[dict, int]] = {}
    for chat in c["chats"].values():
        for turn, value in enumerate(chat.get("interactions") or []):
            chat_of.setdefault(ref_id(value), (chat, turn))
    seen: set[str] = set()
    for index, ref in enumerate(refs):
        if ref in seen:
            legacy.notes.append(f"batch {legacy_id}: interaction {ref} listed twice; kept once")
            continue
        seen.add(ref)
        legacy.rows.append(
            _era2_row(legacy_id, index, c["interactions"][ref], chat_of.get(ref), c, legacy.notes)
        )
    if not fields["search_provider"]:
        providers = Counter(r.chat_fields.get("search_provider") for r in legacy.rows)
        providers.pop(None, None)
        fields["search_provider"] = providers.most_common(1)[0][0] if providers else ""
    return legacy


def check_upload_limits(legacy: LegacyBatch) -> None:
    """The rules an upload follows (batches.uploads), for an imported batch: at most
    MAX_BATCH_ITEMS rows, MAX_COLUMNS columns per row and in all, MAX_CELL_CHARS per cell,
    so that it can be run, shown and exported like any other. Raises LegacyDocumentError
    naming the first rule broken; `migrate_batches --ignore-upload-limits` skips this."""
    from django.conf import settings

    from batches.uploads import MAX_CELL_CHARS, MAX_COLUMNS

    hint = " (or import with --ignore-upload-limits)"
    limit = settings.MAX_BATCH_ITEMS
    if len(legacy.rows) > limit:
        raise LegacyDocumentError(
            f"{len(legacy.rows):,} rows; the limit is {limit:,} per batch (MAX_BATCH_ITEMS): "
            f"split it, raise the limit{hint}"
        )
    columns: set[str] = set()
    for index, row in enumerate(legacy.rows):
        if len(row.question) > MAX_CELL_CHARS:
            raise LegacyDocumentError(
                f"row {index}: the question has {len(row.question):,} characters; the limit "
                f"is {MAX_CELL_CHARS:,}{hint}"
            )
        columns.update(row.row)
        if len(row.row) > MAX_COLUMNS or len(columns) > MAX_COLUMNS:
            raise LegacyDocumentError(f"row {index}: more than {MAX_COLUMNS:,} columns{hint}")
        for key, value in row.row.items():
            size = len(value) if isinstance(value, str) else len(json.dumps(value, default=str))
            if size > MAX_CELL_CHARS:
                raise LegacyDocumentError(
                    f'row {index}, column "{key}": {size:,} characters; the limit is '
                    f"{MAX_CELL_CHARS:,}{hint}"
                )


@dataclass
class ImportSummary:
    batches: int = 0
    items: int = 0
    interactions: int = 0
    chats_created: int = 0
    chats_reused: int = 0
    already_imported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # documents that could not be converted
    errors: list[str] = field(default_factory=list)  # unreadable files / lines
    notes: list[str] = field(default_factory=list)  # converted, with something worth knowing
    without_owner: int = 0

    @property
    def failed(self) -> bool:
        return bool(self.skipped or self.errors)


class _DryRunRollback(Exception):
    pass


def import_exports(
    *,
    source: Path,
    owner=None,
    dry_run: bool = False,
    progress: Callable[[str], None] = lambda message: None,
    progress_every: int = 100,
    upload_limits: bool = True,
) -> ImportSummary:
    """Import every batch of the mongoexport files in `source` (and its subfolders).

    1. read each folder's batches.json (and era-2 collections); unreadable lines are
       reported and skipped;
    2. per batch, in its own transaction: skip it when its legacy id is already imported
       (or repeated in the export), convert it, hold it to the upload limits (unless
       `upload_limits` is False: see check_upload_limits), create the Batch, its rows,
       chats and interactions, recount; a batch that cannot be converted, for whatever
       reason, is reported with that reason and skipped, and the others are imported;
    3. a dry run does all of it inside one transaction that is rolled back.
    """
    from django.db import transaction

    from batches.models import Batch, BatchItem
    from chats.models import Chat, Interaction

    folders = find_export_folders(source)
    if not folders:
        raise LegacyDocumentError(
            f"No batches.json in {source} or its subfolders; point --from at the folder "
            "holding the mongoexport files."
        )
    run = _ImportRun(
        owner=owner,
        upload_limits=upload_limits,
        models={"Chat": Chat, "Interaction": Interaction, "BatchItem": BatchItem},
        Batch=Batch,
    )
    summary = run.summary
    try:
        with transaction.atomic():
            for folder_path in folders:
                folder = load_folder(folder_path)
                summary.errors += folder.errors
                summary.notes += folder.notes
                progress(f"{folder_path}: {len(folder.batches)} batches")
                for number, document in enumerate(folder.batches, start=1):
                    run.import_one(document, folder)
                    if number % progress_every == 0 or number == len(folder.batches):
                        progress(
                            f"  {number}/{len(folder.batches)} read: {summary.batches} imported, "
                            f"{summary.items} rows, {summary.interactions} interactions"
                        )
            if dry_run:
                raise _DryRunRollback
    except _DryRunRollback:
        pass
    return summary


@dataclass
class _ImportRun:
    """One `import_exports` run: its settings, the models it writes and what it found."""

    owner: Any
    upload_limits: bool
    models: dict[str, Any]
    Batch: Any
    summary: ImportSummary = field(default_factory=ImportSummary)
    seen: set[str] = field(default_factory=set)  # legacy ids met so far in this export

    def import_one(self, document: dict, folder: ExportFolder) -> None:
        """One batch document: skipped (with the reason), or imported in its own
        transaction."""
        from django.db import transaction

        owner, summary, seen = self.owner, self.summary, self.seen
        models, Batch = self.models, self.Batch

        try:
            legacy_id = legacy_batch_id(document)
        except Exception as exc:  # a batchId or _id shaped like nothing the old app wrote
            summary.skipped.append(f"a batch in {folder.path.name}/batches.json: {_why(exc)}")
            return
        label = f"batch {legacy_id or '(no batchId or _id)'} in {folder.path.name}/batches.json"
        if not legacy_id:
            summary.skipped.append(f"{label}: no batchId and no _id")
            return
        if legacy_id in seen:
            summary.notes.append(f"{label}: repeated in the export; imported once")
            return
        seen.add(legacy_id)
        if Batch.objects.filter(legacy_id=legacy_id).exists():
            summary.already_imported.append(legacy_id)
            return
        entries, refs = document.get("entries"), document.get("interactions")
        if (
            entries in (None, [])
            and refs in (None, [])
            and ("entries" in document or "interactions" in document)
        ):
            summary.notes.append(f"{label}: no entries and no interactions; nothing to import")
            return
        try:
            if entries not in (None, []):
                legacy = batch_from_era1(document)
            elif refs is not None:
                if not isinstance(refs, list):
                    raise LegacyDocumentError("`interactions` is not a list")
                legacy = batch_from_era2(document, folder)
            else:
                raise LegacyDocumentError("neither `entries` nor `interactions`: not a batch")
            if self.upload_limits:
                check_upload_limits(legacy)
            with transaction.atomic():
                fields = dict(legacy.fields)
                created_at = fields.pop("created_at")
                updated_at = fields.pop("updated_at")
                fields["search_provider"] = fields["search_provider"] or "none"
                batch = Batch(legacy_id=legacy_id, uploader=owner, **fields)
                if created_at:
                    batch.created_at = created_at
                batch.save()
                # updated_at is auto_now; the old value dates finished rows and the batch.
                batch.updated_at = updated_at or batch.created_at
                written = write_rows(batch, legacy.rows, **models)
                finish_batch(batch, BatchItem=models["BatchItem"], old_status=legacy.old_status)
                # The answer counters the pages read (the engine's writer keeps them).
                Batch.objects.filter(pk=batch.pk).update(
                    **batch.items.answer_totals(batch.page_language)
                )
                if batch.status == "completed":
                    batch.started_at = batch.created_at
                    batch.save(update_fields=["started_at"])
                # Imported batches become runs of question sets like uploads (the
                # migrations' historical Batch has no receivers).
                signals.batch_created.send(sender=Batch, batch=batch)
        except LegacyDocumentError as exc:
            summary.skipped.append(f"{label}: {exc}")
            return
        except Exception as exc:
            # Shapes the rules above did not foresee (a value out of range for its column,
            # nesting deeper than Python recurses, ...): this batch's transaction is rolled
            # back and reported; the others are imported.
            summary.skipped.append(f"{label}: cannot be converted ({_why(exc)})")
            return
        summary.batches += 1
        summary.items += written.items
        summary.interactions += written.interactions
        summary.chats_created += written.chats_created
        summary.chats_reused += written.chats_reused
        summary.notes += legacy.notes + written.notes
        summary.without_owner += owner is None
