"""The spreadsheet round trip of reviews: the results XLSX (or CSV) of a batch, reviewed in
a spreadsheet, uploaded back (issue 24 item 3).

1. Read: XLSX through openpyxl's read-only mode, CSV (UTF-8 with or without BOM, else
   Windows-1252; comma, semicolon or tab). The columns are found by their headers:
   `row_key` (required), `review_verdict`, `review_notes`, and `reviewed_at` (the review's
   time when the file was exported, used to find conflicts). Size: MAX_UPLOAD_BYTES; rows:
   the batch's rows plus MAX_EXTRA_ROWS.
2. Check every row: its key must be BatchChat's signature of this batch and one of its
   rows (batches.export.read_row_key), once; its verdict one of the four values (or their
   English or French label, any case); the row must have an answer if it is reviewed.
   Every problem is named by row and cell (`F7`); any problem: nothing is applied.
3. Classify against what BatchChat holds now: `new` (no review yet), `changed`,
   `unchanged`, `conflict` (reviewed in BatchChat after the export, i.e. its reviewed_at
   differs from the file's, and the file says something else).
4. Apply: new and changed rows are saved (reviewer: the uploader, now); conflicts are kept
   as BatchChat has them unless `overwrite`.

A cell the export protected against formula injection (`'=…`) is read back without the
added quote, so a re-upload of an untouched file changes nothing.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass, field

from django.conf import settings
from django.core import signing
from django.utils import translation

from batches.export import neutralise_formula, read_row_key
from batches.models import Batch, BatchItem
from batches.uploads.xlsx import XLSX_MAX_PART_BYTES, XLSX_MAX_PARTS, XLSX_MAX_TOTAL_BYTES
from chats.models import ReviewVerdict
from evaluation.review import MAX_NOTES, save_reviews

MAX_EXTRA_ROWS = 1000
KEY, VERDICT, NOTES, REVIEWED_AT = "row_key", "review_verdict", "review_notes", "reviewed_at"
KINDS = ("new", "changed", "unchanged", "conflict")


@dataclass(frozen=True)
class CellProblem:
    row: int  # the spreadsheet's row number (the header is row 1)
    cell: str  # e.g. "F7"
    message: str

    def as_dict(self) -> dict:
        return {"row": self.row, "cell": self.cell, "message": self.message}

    def __str__(self) -> str:
        return f"Row {self.row}, cell {self.cell}: {self.message}"


class ReviewFileError(ValueError):
    """The file cannot be applied; `problems` name each row and cell."""

    def __init__(self, problems: list[CellProblem]) -> None:
        self.problems = problems
        first = str(problems[0]) if problems else "The file cannot be read."
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(first + more)


@dataclass
class ReviewChange:
    row: int
    item: BatchItem
    kind: str
    verdict: str
    notes: str
    current_verdict: str
    current_notes: str


@dataclass
class ReviewPreview:
    changes: list[ReviewChange] = field(default_factory=list)
    applied: int = 0

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(KINDS, 0)
        for change in self.changes:
            counts[change.kind] += 1
        return counts

    def of(self, kind: str) -> list[ReviewChange]:
        return [change for change in self.changes if change.kind == kind]


def _column_letter(index: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(index + 1)


def _text(value) -> str:
    if value is None:
        return ""
    text = str(value)
    # Undo the export's formula guard: "'=x" was exported for "=x".
    if text.startswith("'") and neutralise_formula(text[1:]) == text:
        text = text[1:]
    return text.strip()


def _verdict_names() -> dict[str, str]:
    """Value, English and French label (lower case) -> value."""
    names = {}
    for value, label in ReviewVerdict.choices:
        names[value] = value
        names[value.replace("_", " ")] = value
        for language in ("en", "fr"):
            with translation.override(language):
                names[str(label).strip().lower()] = value
    return names


def _check_container(data: bytes) -> None:
    """A workbook's ZIP bounds before openpyxl opens it (batches.uploads.xlsx's limits on
    parts and unpacked sizes; its cell and shared-string counts are for question uploads
    and would refuse the export of a large batch)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ReviewFileError([CellProblem(1, "A1", "Not a readable XLSX file.")]) from None
    too_big = sum(info.file_size for info in infos) > XLSX_MAX_TOTAL_BYTES or any(
        info.file_size > XLSX_MAX_PART_BYTES for info in infos
    )
    if len(infos) > XLSX_MAX_PARTS or too_big:
        raise ReviewFileError(
            [CellProblem(1, "A1", "The workbook unpacks to too much: save it as CSV.")]
        )


def _rows_xlsx(data: bytes):
    from openpyxl import load_workbook

    _check_container(data)
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as error:  # noqa: BLE001 - openpyxl raises many kinds on a bad zip
        raise ReviewFileError(
            [CellProblem(1, "A1", f"Not a readable XLSX file ({error}).")]
        ) from None
    try:
        sheet = workbook.worksheets[0]
        # Trust the cells, not a stated size that would pad every row.
        sheet.reset_dimensions()
        for row in sheet.iter_rows(values_only=True):
            yield list(row)
    finally:
        workbook.close()


def _rows_csv(data: bytes):
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        text = data.decode("utf-16", errors="replace")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("cp1252", errors="replace")
    first = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count)
    yield from csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)


def read_rows(*, data: bytes, filename: str, max_rows: int) -> list[list]:
    """The file's rows, the header first; ReviewFileError past MAX_UPLOAD_BYTES or
    `max_rows` data rows (reading stops there)."""
    if len(data) > settings.MAX_UPLOAD_BYTES:
        raise ReviewFileError(
            [CellProblem(1, "A1", f"The file is over {settings.MAX_UPLOAD_BYTES} bytes.")]
        )
    is_xlsx = data[:2] == b"PK" or filename.lower().endswith((".xlsx", ".xlsm"))
    rows = []
    for row in _rows_xlsx(data) if is_xlsx else _rows_csv(data):
        if len(rows) > max_rows:
            raise ReviewFileError(
                [CellProblem(len(rows) + 1, f"A{len(rows) + 1}", "Too many rows for this batch.")]
            )
        rows.append(row)
    return rows


def preview_reviews(*, batch: Batch, data: bytes, filename: str) -> ReviewPreview:
    """Steps 1-3 of the module docstring; ReviewFileError naming every bad cell."""
    limit = batch.total_items + MAX_EXTRA_ROWS
    rows = read_rows(data=data, filename=filename, max_rows=limit)
    if not rows:
        raise ReviewFileError([CellProblem(1, "A1", "The file is empty.")])
    header = [_text(cell).lower() for cell in rows[0]]
    problems: list[CellProblem] = []
    if KEY not in header:
        raise ReviewFileError(
            [CellProblem(1, "A1", "No row_key column: upload the exported file.")]
        )
    if VERDICT not in header and NOTES not in header:
        raise ReviewFileError([CellProblem(1, "A1", "No review_verdict or review_notes column.")])
    where = {
        name: header.index(name) for name in (KEY, VERDICT, NOTES, REVIEWED_AT) if name in header
    }
    items = {
        item.pk: item
        for item in BatchItem.objects.filter(batch=batch).select_related("interaction")
    }
    names = _verdict_names()
    seen: dict[int, int] = {}
    preview = ReviewPreview()

    def cell(row: list, name: str) -> str:
        index = where.get(name)
        return _text(row[index]) if index is not None and index < len(row) else ""

    for number, row in enumerate(rows[1:], start=2):
        key, verdict_text, notes = cell(row, KEY), cell(row, VERDICT), cell(row, NOTES)
        key_cell = f"{_column_letter(where[KEY])}{number}"
        if not key:
            if verdict_text or notes:
                problems.append(CellProblem(number, key_cell, "The row key is missing."))
            continue
        try:
            batch_id, item_id = read_row_key(key)
        except (signing.BadSignature, ValueError):
            problems.append(
                CellProblem(number, key_cell, "The row key was changed or is not BatchChat's.")
            )
            continue
        item = items.get(item_id)
        if batch_id != batch.pk or item is None:
            problems.append(CellProblem(number, key_cell, "The row key is from another batch."))
            continue
        if item_id in seen:
            problems.append(
                CellProblem(number, key_cell, f"The same row as row {seen[item_id]} of the file.")
            )
            continue
        seen[item_id] = number
        verdict = names.get(verdict_text.lower().replace("-", "_") if verdict_text else "", None)
        if verdict_text and verdict is None:
            verdict = names.get(verdict_text.lower())
        if verdict_text and verdict is None:
            problems.append(
                CellProblem(
                    number,
                    f"{_column_letter(where[VERDICT])}{number}",
                    f"Unknown review verdict “{verdict_text}”: use one of "
                    + ", ".join(ReviewVerdict.values)
                    + ".",
                )
            )
            continue
        verdict = verdict or ""
        interaction = item.interaction
        current_verdict = interaction.review_verdict if interaction else ""
        current_notes = interaction.review_notes if interaction else ""
        notes = notes[:MAX_NOTES]
        if NOTES not in where:
            notes = current_notes
        if VERDICT not in where:
            verdict = current_verdict
        if (verdict, notes) == (current_verdict, current_notes):
            kind = "unchanged"
        elif interaction is None:
            problems.append(
                CellProblem(number, key_cell, "This row has no answer to review in BatchChat.")
            )
            continue
        elif REVIEWED_AT in where and cell(row, REVIEWED_AT) != _exported_at(interaction):
            kind = "conflict"
        elif not current_verdict and not current_notes:
            kind = "new"
        else:
            kind = "changed"
        preview.changes.append(
            ReviewChange(number, item, kind, verdict, notes, current_verdict, current_notes)
        )
    if problems:
        raise ReviewFileError(problems)
    return preview


def _exported_at(interaction) -> str:
    """How the export wrote the turn's reviewed_at (ISO text; empty when none). An XLSX
    cell Excel turned into a date is compared as text too: then any difference is a
    conflict, the safe side."""
    return interaction.reviewed_at.isoformat() if interaction.reviewed_at else ""


def apply_reviews(
    *, batch: Batch, data: bytes, filename: str, user, overwrite: bool = False
) -> ReviewPreview:
    """Preview, then save the new and changed rows (and conflicts when `overwrite`)."""
    preview = preview_reviews(batch=batch, data=data, filename=filename)
    kinds = {"new", "changed"} | ({"conflict"} if overwrite else set())
    changes = [
        (change.item.interaction, change.verdict, change.notes)
        for change in preview.changes
        if change.kind in kinds
    ]
    preview.applied = save_reviews(changes=changes, user=user) if changes else 0
    return preview
