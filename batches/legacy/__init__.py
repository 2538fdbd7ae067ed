"""Conversion of the old application's batches into Batch / BatchItem / Chat / Interaction.

Two ways in, one set of rules:
- the 0003 data migration converts batches that hold their rows inline (`entries`), with
  the historical models of that state (`convert_inline_batches(apps)`);
- `manage.py migrate_batches --from DIR` imports the old application's `mongoexport` files
  (era 1: batches with inline `entries`; era 2: batches referencing `interactions`, with
  `chats`, `questions`, `answers`, `citations`, `contexts` beside them) with the real
  models (`import_exports`); without `--from` it converts a database restored from a dump
  of the old schema (`convert_legacy_database`).

One module per concern, in the order data flows through them:

- `values`: numbers, dates, text, ids and Extended JSON made plain;
- `mongoexport`: reading the export files, each bad document reported and skipped;
- `rows`: one legacy row -> LegacyRow, with the one status rule of both eras;
- `writer`: LegacyRows -> Chats (within the owner), Interactions, BatchItems, counters;
- `inline`: era 1 inline entries converted in place (the 0003 migration, old dumps);
- `importer`: `migrate_batches --from`, one transaction per batch.

The writing functions take the model classes they write instead of importing them, so the
migration can pass historical models. Everything used outside the package is re-exported
here (`from batches import legacy; legacy.convert_inline_batches(apps)`).
"""

from __future__ import annotations

from batches.legacy.importer import (
    ImportSummary,
    LegacyBatch,
    batch_from_era1,
    batch_from_era2,
    check_upload_limits,
    import_exports,
    legacy_batch_id,
)
from batches.legacy.inline import (
    ConversionResult,
    convert_inline_batch,
    convert_inline_batches,
    convert_legacy_database,
)
from batches.legacy.mongoexport import (
    ExportFolder,
    document_id,
    find_export_folders,
    load_folder,
    read_export,
    ref_id,
)
from batches.legacy.rows import LegacyRow, convert_entry, item_status, row_status
from batches.legacy.values import (
    LegacyDocumentError,
    answer_text,
    first,
    fit_id,
    language,
    parse_search_results,
    plain_json,
    storable,
    text,
    to_datetime,
    to_int,
)
from batches.legacy.writer import (
    WriteResult,
    batch_status_for,
    counters_for,
    finish_batch,
    owner_chat_id,
    write_rows,
)

__all__ = [
    "ConversionResult",
    "ExportFolder",
    "ImportSummary",
    "LegacyBatch",
    "LegacyDocumentError",
    "LegacyRow",
    "WriteResult",
    "answer_text",
    "batch_from_era1",
    "batch_from_era2",
    "batch_status_for",
    "check_upload_limits",
    "convert_entry",
    "convert_inline_batch",
    "convert_inline_batches",
    "convert_legacy_database",
    "counters_for",
    "document_id",
    "find_export_folders",
    "finish_batch",
    "first",
    "fit_id",
    "import_exports",
    "item_status",
    "language",
    "legacy_batch_id",
    "load_folder",
    "owner_chat_id",
    "parse_search_results",
    "plain_json",
    "read_export",
    "ref_id",
    "row_status",
    "storable",
    "text",
    "to_datetime",
    "to_int",
    "write_rows",
]
