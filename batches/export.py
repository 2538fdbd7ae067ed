"""Results export: one batch as CSV, JSON or XLSX, streamed (see DESIGN "Export").

Decisions (also in docs/running-batches.md, "Results files"):

- One record per batch row (BatchItem), in upload order, joined with the Interaction the
  row produced. Rows without an answer (pending, running, failed, cancelled) are exported
  too, with their status and error and empty answer fields. Follow-up turns that someone
  added later in a row's chat are not part of the batch and are not exported.
- `row` is the 1-based number of the batch's row (position + 1); `question_number` is the
  question's data row in the uploaded file (the first question under the header is 1)
  and `repeat` which of its k answers the row is (1..k, `Batch.repeats`). Without repeats
  `row` and `question_number` are equal and `repeat` is 1. A batch with repeats has its
  k rows of a question together, and four more columns after `repeat`, the same on each
  of them: `question_passes` ("passes/k"), `question_pass_at_k` (at least one passed),
  `question_pass_all_k` (all passed; empty while nothing is graded) and
  `question_agreement` (mean pairwise similarity of the k answers, 0-1).
- `question` and `referring_url` are what the row asked, as read at upload; once the
  guard has redacted or blocked the row's question, `question` (and the question cell of
  `input.*`) hold the redacted text unless GUARD_STORE_ORIGINAL (see batches.guard_rows).
  `redacted_question`, `guard_status`, `guard_reasons` (the kinds found, comma-separated)
  and `guard_fields` (which field held each kind: `question:phone, url:email`) come from
  the row's interaction; empty for rows not answered yet. A referring URL the guard
  redacted is exported redacted too (unless GUARD_STORE_ORIGINAL).
- After the fixed columns comes `input.<header>` for every column of the upload, the
  question column included (so `input.*` is always the untouched original row), in the
  order the headers were first seen. A row lacking a column gets an empty cell (null in
  JSON).
- CSV and XLSX neutralise formula injection: a text cell starting with `=`, `+`, `-`,
  `@`, tab or carriage return, also after leading whitespace, a no-break space, a line
  feed or a BOM, gets a leading `'`, so a spreadsheet shows the text instead of running
  it. JSON carries the values untouched (typed: numbers, null).
- XLSX cannot hold some control characters or more than 32,767 characters per cell:
  those characters are dropped and longer texts cut.

Everything is streamed: rows come from the database through `.iterator()` in chunks and
leave as bytes, so memory stays flat whatever the size of the batch.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from tempfile import SpooledTemporaryFile
from typing import Any

from django.core import signing
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.text import slugify

from batches import hooks
from batches.models import Batch, BatchItem
from batches.uploads.limits import MAX_CELL_CHARS

# A row's grades (evaluation.grading) as the export and the comparison name them: each
# column is the BatchItem field of the same name. The judge's notes follow the verdict in
# the export; the comparison's file leaves them out.
GRADE_COLUMNS: tuple[str, ...] = (
    "verdict",
    "verdict_reason",
    "citation_match",
    "answer_similarity",
    "answer_found",
    "judge_verdict",
)


def grade_values(item: BatchItem) -> dict[str, Any]:
    """The row's GRADE_COLUMNS, in order."""
    return {column: getattr(item, column) for column in GRADE_COLUMNS}


FIXED_COLUMNS: tuple[str, ...] = (
    "batch_id",
    "batch_name",
    "row",
    "question_number",
    "repeat",
    "chat_id",
    "interaction_id",
    "created_at",
    "page_language",
    "referring_url",
    "question",
    "redacted_question",
    "guard_status",
    "guard_reasons",
    "guard_fields",
    "ai_provider",
    "model",
    "search_provider",
    "search_query",
    "answer",
    "answer_type",
    "citation_url",
    "citation_title",
    "expected_answer",
    "expected_citation_url",
    "expected_outcome",
    *GRADE_COLUMNS,
    "judge_notes",
    "review_verdict",
    "review_notes",
    "reviewed_by",
    "reviewed_at",
    "status",
    "error",
    "input_tokens",
    "output_tokens",
    "latency_ms",
    "row_key",
)
# The results XLSX is laid out for an expert's review: these first (the review verdict
# with a dropdown of REVIEW_VALUES, the notes wide and wrapped), then the other columns;
# `row_key` is hidden (evaluation.review reads it back).
XLSX_LEAD_COLUMNS: tuple[str, ...] = (
    "question",
    "expected_answer",
    "answer",
    "citation_url",
    "verdict",
    "review_verdict",
    "review_notes",
)
REVIEW_VALUES: tuple[str, ...] = ("correct", "partly_correct", "incorrect", "cannot_tell")
# Signs `row_key`: "<batch id>:<item id>:<signature>" (django.core.signing, the
# SECRET_KEY), so that a file's key cannot be edited to point at another row.
ROW_KEY_SALT = "batchchat.export.row_key"


def row_key(batch_id: int, item_id: int) -> str:
    """The stable, signed key of one batch row in an export."""
    return signing.Signer(salt=ROW_KEY_SALT).sign(f"{batch_id}:{item_id}")


def read_row_key(key: str) -> tuple[int, int]:
    """(batch id, item id) of a `row_key`; signing.BadSignature when it was altered."""
    value = signing.Signer(salt=ROW_KEY_SALT).unsign(str(key).strip())
    batch_id, _sep, item_id = value.partition(":")
    return int(batch_id), int(item_id)


INPUT_PREFIX = "input."
# Rows fetched per database round trip; bounds memory, not the number of rows.
DB_CHUNK = 500
# Bytes gathered before a piece of the stream is handed to the server.
STREAM_CHUNK = 64 * 1024
# The finished XLSX stays in memory up to this size, then spills to a temporary file.
XLSX_SPOOL_BYTES = 4 * 1024 * 1024
FORMULA_PREFIXES = (
    "=",
    "+",
    "-",
    "@",
    "\t",
    "\r",
    # Look-alikes some spreadsheets (and input methods) turn into their ASCII forms:
    # fullwidth and small equals, plus, hyphen-minus and at signs, the minus sign.
    "\uff1d",
    "\ufe66",
    "\uff0b",
    "\ufe62",
    "\uff0d",
    "\ufe63",
    "\u2212",
    "\uff20",
    "\ufe6b",
)
# Characters a spreadsheet skips before a formula: Unicode whitespace (space, no-break
# space, line feed, ...), the BOM and zero-width characters.
IGNORED_LEADING = (
    "".join(chr(c) for c in range(0x3000 + 1) if chr(c).isspace())
    + "\ufeff\u200b\u200c\u200d\u2060"
)


# --- Rows -------------------------------------------------------------------------------


def _input_headers(batch: Batch) -> list[str]:
    """Headers of the uploaded columns: as uploaded, or for batches made before that was
    kept (legacy imports), across the rows in first-seen order (one query)."""
    if batch.input_columns:
        return [str(header) for header in batch.input_columns]
    seen: dict[str, None] = {}
    rows = BatchItem.objects.filter(batch=batch).order_by("position").values_list("row", flat=True)
    for row in rows.iterator(chunk_size=DB_CHUNK * 4):
        if isinstance(row, dict):
            for key in row:
                seen.setdefault(str(key), None)
    return list(seen)


# A batch with repeats: each question's result over its k answers, after `repeat`.
REPEAT_COLUMNS: tuple[str, ...] = (
    "question_passes",
    "question_pass_at_k",
    "question_pass_all_k",
    "question_agreement",
)


def fixed_columns(batch: Batch) -> list[str]:
    """FIXED_COLUMNS, with REPEAT_COLUMNS after `repeat` for a batch with repeats."""
    if batch.repeats <= 1:
        return list(FIXED_COLUMNS)
    at = FIXED_COLUMNS.index("repeat") + 1
    return [*FIXED_COLUMNS[:at], *REPEAT_COLUMNS, *FIXED_COLUMNS[at:]]


def export_columns(batch: Batch, headers: list[str] | None = None) -> list[str]:
    """The export's columns, in order: the fixed ones, then `input.<header>`."""
    headers = _input_headers(batch) if headers is None else headers
    return [*fixed_columns(batch), *(INPUT_PREFIX + header for header in headers)]


def _record(batch: Batch, item: BatchItem, headers: list[str]) -> dict[str, Any]:
    chat = item.chat
    interaction = item.interaction
    record: dict[str, Any] = {
        "batch_id": batch.pk,
        "batch_name": batch.name,
        "row": item.position + 1,
        "question_number": item.question_index + 1,
        "repeat": item.repeat,
        "chat_id": chat.chat_id,
        "interaction_id": interaction.pk if interaction else None,
        "created_at": interaction.created_at.isoformat() if interaction else None,
        "page_language": chat.page_language,
        "referring_url": item.referring_url,
        "question": item.question,
        "redacted_question": interaction.redacted_question if interaction else "",
        "guard_status": interaction.guard_status if interaction else "",
        # Kinds only (never values), e.g. "email, phone": one cell in every format.
        "guard_reasons": ", ".join(interaction.guard_reasons or []) if interaction else "",
        # Which field held each kind, e.g. "question:phone, url:email".
        "guard_fields": ", ".join(interaction.guard_fields or []) if interaction else "",
        "ai_provider": chat.ai_provider,
        "model": (interaction.model if interaction else "") or chat.model,
        "search_provider": chat.search_provider,
        "search_query": interaction.search_query if interaction else "",
        "answer": interaction.answer if interaction else "",
        "answer_type": interaction.answer_type if interaction else "",
        "citation_url": interaction.citation_url if interaction else "",
        "citation_title": interaction.citation_title if interaction else "",
        "expected_answer": item.expected_answer,
        "expected_citation_url": item.expected_citation_url,
        "expected_outcome": item.expected_outcome,
        **grade_values(item),
        "judge_notes": item.judge_notes,
        "review_verdict": interaction.review_verdict if interaction else "",
        "review_notes": interaction.review_notes if interaction else "",
        "reviewed_by": _username(interaction.reviewed_by) if interaction else "",
        "reviewed_at": _iso(interaction.reviewed_at) if interaction else None,
        "status": item.status,
        "error": item.error,
        "input_tokens": interaction.input_tokens if interaction else None,
        "output_tokens": interaction.output_tokens if interaction else None,
        "latency_ms": interaction.latency_ms if interaction else None,
        "row_key": row_key(batch.pk, item.pk),
    }
    original = item.columns(headers)
    for header in headers:
        record[INPUT_PREFIX + header] = original.get(header)
    return record


def _username(user) -> str:
    return user.get_username() if user is not None else ""


def _iso(moment) -> str | None:
    return moment.isoformat() if moment is not None else None


def _items(batch: Batch):
    return (
        BatchItem.objects.filter(batch=batch)
        .select_related("chat", "interaction", "interaction__reviewed_by")
        .order_by("position")
    )


def follow_finished(
    batch: Batch, *, over: threading.Event, poll_seconds: float = 0.5
) -> Iterator[BatchItem]:
    """The batch's rows in order, each once it is finished, while a run answers them;
    once `over` is set (the run has ended), every row left, as it stands.

    For a results file written while the batch runs (run_batch): a row is handed out only
    when it and every row before it are finished (done, failed, cancelled), never to
    change again during the run, so the file ends up as one written at the end would,
    row for row. With repeats, a question's rows go out together (a question's result
    reads all k)."""
    start = 0
    while True:
        last = over.is_set()  # read before the rows: whatever finished by then is in them
        rows = _items(batch).filter(position__gte=start)
        if not last:
            first_open = (
                BatchItem.objects.filter(batch=batch, position__gte=start)
                .unfinished()
                .order_by("position")
                .values_list("position", "question_index")
                .first()
            )
            if first_open is not None:
                cut, question = first_open
                if batch.repeats > 1:  # from the question's first row
                    cut = min(cut, *_question_positions(batch, question))
                rows = rows.filter(position__lt=cut)
        for item in rows.iterator(chunk_size=DB_CHUNK):
            start = item.position + 1
            yield item
        if last:
            return
        over.wait(poll_seconds)


def _question_positions(batch: Batch, question: int) -> list[int]:
    return list(
        BatchItem.objects.filter(batch=batch, question_index=question).values_list(
            "position", flat=True
        )
    )


def _records(
    batch: Batch, headers: list[str], items: Iterable[BatchItem] | None = None
) -> Iterator[dict[str, Any]]:
    """One record per row of `items` (default: every row of the batch, in order)."""
    rows = iter(_items(batch).iterator(chunk_size=DB_CHUNK) if items is None else items)
    if batch.repeats <= 1:
        for item in rows:
            yield _record(batch, item, headers)
        return
    # The k rows of a question are adjacent (question-major): read them as one result
    # (evaluation's, through the hook), holding one question's rows at a time.
    question_results = hooks.graders().question_results
    for _index, group in itertools.groupby(rows, key=lambda item: item.question_index):
        group = list(group)
        result = next(iter(question_results(group).values()))
        shared = {
            "question_passes": f"{result.passes}/{result.k}",
            "question_pass_at_k": result.pass_at_k,
            "question_pass_all_k": result.pass_all_k,
            "question_agreement": result.agreement,
        }
        for item in group:
            yield _record(batch, item, headers) | shared


def iter_export_rows(batch: Batch) -> Iterator[dict[str, Any]]:
    """One dict per batch row, keys in `export_columns` order, values typed (int, None)."""
    yield from _records(batch, _input_headers(batch))


# --- Cell values ------------------------------------------------------------------------


def _text(value: Any) -> str:
    """A cell's text: empty for None, JSON for nested values (legacy rows may hold them)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def neutralise_formula(text: str) -> str:
    """Prefix `'` to text a spreadsheet would run as a formula (OWASP CSV injection).

    Spreadsheets skip leading blanks before a formula (`" =1+1"`, a no-break space, a
    line feed, a BOM), so the check looks past them."""
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    stripped = text.lstrip(IGNORED_LEADING)
    if len(stripped) != len(text) and stripped.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


def _csv_cell(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return neutralise_formula(_text(value))


# The control characters an XLSX cell cannot hold (openpyxl refuses them: its
# openpyxl.cell.cell.ILLEGAL_CHARACTERS_RE).
ILLEGAL_CHARACTERS_RE = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")


def _xlsx_cell(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    text = ILLEGAL_CHARACTERS_RE.sub("", _text(value))
    # openpyxl writes any string starting with "=" as a formula: neutralise first.
    return neutralise_formula(text)[:MAX_CELL_CHARS]


def _chunked(pieces: Iterable[str]) -> Iterator[bytes]:
    """Gather small strings into pieces of about STREAM_CHUNK bytes, UTF-8 encoded."""
    buffer: list[str] = []
    size = 0
    for piece in pieces:
        buffer.append(piece)
        size += len(piece)
        if size >= STREAM_CHUNK:
            yield "".join(buffer).encode("utf-8")
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer).encode("utf-8")


# --- Formats ----------------------------------------------------------------------------


class _Echo:
    """A file-like object whose write returns the line, so csv.writer can stream."""

    def write(self, value: str) -> str:
        return value


def stream_csv(batch: Batch, *, items: Iterable[BatchItem] | None = None) -> Iterator[bytes]:
    """CSV, UTF-8 with BOM (so Excel reads the accents), CRLF lines, formulas neutralised.
    `items`: the rows to write, in order (default: all; run_batch: `follow_finished`)."""

    def lines() -> Iterator[str]:
        headers = _input_headers(batch)
        columns = export_columns(batch, headers)
        writer = csv.writer(_Echo())
        yield "\ufeff"
        yield writer.writerow([neutralise_formula(column) for column in columns])
        for record in _records(batch, headers, items):
            yield writer.writerow([_csv_cell(record[column]) for column in columns])

    return _chunked(lines())


def stream_json(batch: Batch, *, items: Iterable[BatchItem] | None = None) -> Iterator[bytes]:
    """A JSON array of objects (the export's columns as keys), UTF-8, piece by piece.
    `items` as stream_csv."""

    def pieces() -> Iterator[str]:
        yield "["
        for index, record in enumerate(_records(batch, _input_headers(batch), items)):
            if index:
                yield ","
            yield "\n" + json.dumps(record, ensure_ascii=False, default=str)
        yield "\n]\n"

    return _chunked(pieces())


# Review-ready XLSX: widths per column (characters), long texts wrapped, dates as dates.
XLSX_WIDTHS = {
    "question": 50,
    "answer": 70,
    "error": 40,
    "citation_title": 30,
    "citation_url": 40,
    "referring_url": 30,
    "search_query": 30,
    "batch_name": 20,
    "created_at": 20,
    "chat_id": 14,
    "model": 16,
    "expected_answer": 50,
    "review_verdict": 16,
    "review_notes": 50,
    "row_key": 10,
}
XLSX_WRAPPED = frozenset(
    {"question", "answer", "error", "citation_title", "search_query", "expected_answer"}
    | {"review_notes"}
)
XLSX_DEFAULT_WIDTH = 12
XLSX_INPUT_WIDTH = 24
XLSX_DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"


def _xlsx_datetime(value: Any) -> Any:
    """An ISO timestamp as a naive UTC datetime (Excel has no time zones); else as is."""
    if isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return _xlsx_cell(value)
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        return moment
    return _xlsx_cell(value)


class ReviewSheet:
    """A write-only XLSX sheet laid out for review, then sent in chunks: the results
    export and the comparison both use it.

    1. openpyxl's write-only mode writes each row to a temporary file as it comes, with
       inline strings (no shared-string table growing in memory);
    2. the header row is frozen, bold and carries a filter that covers every row written;
       each column is `width_of(column)` characters wide; the `wrapped` columns wrap.
       Only those cells (and the ones a caller styles with `cell`) are styled cells: a
       styled cell per value made an export of 10,000 rows 2.5 times slower;
    3. the zip is assembled into a SpooledTemporaryFile (memory up to a few MB, then
       disk) because a zip's directory is only known at the end, and read back in
       STREAM_CHUNK pieces.
    """

    def __init__(
        self,
        title: str,
        columns: Sequence[str],
        *,
        width_of: Callable[[str], int],
        wrapped: frozenset[str],
        hidden: frozenset[str] = frozenset(),
    ) -> None:
        # openpyxl is imported here, not with the module: a CSV or JSON export (and every
        # command that imports this module) does without its ~0.2 s import.
        from openpyxl import Workbook
        from openpyxl.styles import Alignment, Font
        from openpyxl.utils import get_column_letter

        self.workbook = Workbook(write_only=True)
        self.sheet = self.workbook.create_sheet(title)
        self.columns = list(columns)
        self.sheet.freeze_panes = "A2"
        for number, column in enumerate(self.columns, start=1):
            self.sheet.column_dimensions[get_column_letter(number)].width = width_of(column)
            # Before the first row: a write-only sheet writes its columns with it.
            self.sheet.column_dimensions[get_column_letter(number)].hidden = column in hidden
        bold = Font(bold=True)
        self.sheet.append([self.cell(_xlsx_cell(column), font=bold) for column in self.columns])
        self.rows = 1
        self._wrap = Alignment(wrap_text=True, vertical="top")
        self._wrapped = [index for index, column in enumerate(self.columns) if column in wrapped]

    def cell(self, value: Any, **style: Any) -> Any:
        """A styled cell (`font=`, `alignment=`, `number_format=`) for `append`."""
        from openpyxl.cell import WriteOnlyCell

        cell = WriteOnlyCell(self.sheet, value=value)
        for name, setting in style.items():
            setattr(cell, name, setting)
        return cell

    def append(self, values: list[Any]) -> None:
        """One row of cell values (already `_xlsx_cell`-safe), in `columns` order."""
        for index in self._wrapped:
            values[index] = self.cell(values[index], alignment=self._wrap)
        self.sheet.append(values)
        self.rows += 1

    def review_dropdown(self, index: int, values: Sequence[str]) -> None:
        """A dropdown of `values` (blank allowed) on column `index`'s data rows."""
        from openpyxl.utils import get_column_letter
        from openpyxl.worksheet.datavalidation import DataValidation

        letter = get_column_letter(index + 1)
        validation = DataValidation(
            type="list", formula1='"' + ",".join(values) + '"', allow_blank=True
        )
        validation.add(f"{letter}2:{letter}1048576")
        # Write-only sheets keep their validations like a normal sheet; openpyxl only
        # lacks the add_data_validation shortcut on them.
        self.sheet.data_validations.append(validation)

    def chunks(self) -> Iterator[bytes]:
        """The finished workbook, in STREAM_CHUNK pieces."""
        from openpyxl.utils import get_column_letter

        # The filter covers the data rows too (write-only sheets keep the auto_filter
        # object until they are saved).
        self.sheet.auto_filter.ref = f"A1:{get_column_letter(len(self.columns))}{self.rows}"
        with SpooledTemporaryFile(max_size=XLSX_SPOOL_BYTES) as out:
            self.workbook.save(out)
            out.seek(0)
            while chunk := out.read(STREAM_CHUNK):
                yield chunk


def xlsx_columns(batch: Batch, headers: list[str]) -> list[str]:
    """The results XLSX's columns: XLSX_LEAD_COLUMNS, the other fixed ones (with the
    repeat columns of a batch with repeats), the inputs."""
    rest = [column for column in fixed_columns(batch) if column not in XLSX_LEAD_COLUMNS]
    return [*XLSX_LEAD_COLUMNS, *rest, *(INPUT_PREFIX + header for header in headers)]


def stream_xlsx(batch: Batch, *, items: Iterable[BatchItem] | None = None) -> Iterator[bytes]:
    """The results as an XLSX workbook of one sheet (ReviewSheet), `created_at` a
    date-time cell (UTC). `items` as stream_csv."""
    headers = _input_headers(batch)
    columns = xlsx_columns(batch, headers)

    def width_of(column: str) -> int:
        width = XLSX_WIDTHS.get(column)
        if width is None:
            width = XLSX_INPUT_WIDTH if column.startswith(INPUT_PREFIX) else XLSX_DEFAULT_WIDTH
        return width

    sheet = ReviewSheet(
        "Results",
        columns,
        width_of=width_of,
        wrapped=XLSX_WRAPPED,
        hidden=frozenset({"row_key"}),
    )
    sheet.review_dropdown(columns.index("review_verdict"), REVIEW_VALUES)
    created = columns.index("created_at")
    for record in _records(batch, headers, items):
        values: list[Any] = [_xlsx_cell(record[column]) for column in columns]
        values[created] = sheet.cell(
            _xlsx_datetime(record["created_at"]), number_format=XLSX_DATETIME_FORMAT
        )
        sheet.append(values)
    yield from sheet.chunks()


XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
EXPORT_FORMATS: dict[str, tuple[str, Callable[..., Iterator[bytes]]]] = {
    "csv": ("text/csv; charset=utf-8", stream_csv),
    "json": ("application/json; charset=utf-8", stream_json),
    "xlsx": (XLSX_CONTENT_TYPE, stream_xlsx),
}


# A batch named after its file ("questions.csv", before names used the file's stem) is
# exported as "questions", not "questionscsv".
_FILE_SUFFIX = re.compile(r"\.(csv|tsv|txt|xlsx|xlsm|xls)$", re.IGNORECASE)


def export_filename(batch: Batch, fmt: str) -> str:
    """`batchchat-<id>-<name slug>-<YYYY-MM-DD>.<fmt>`: ASCII only, safe in any header."""
    name = _FILE_SUFFIX.sub("", batch.name.strip())
    slug = slugify(name.replace(".", " "))[:60].strip("-") or "batch"
    return f"batchchat-{batch.pk}-{slug}-{timezone.localdate():%Y-%m-%d}.{fmt}"


def export_response(batch: Batch, fmt: str) -> StreamingHttpResponse:
    """The batch's results as a streamed download (API, pages and admin all use this).

    Raises ValueError for a format outside EXPORT_FORMATS; callers validate first.
    """
    try:
        content_type, stream = EXPORT_FORMATS[fmt]
    except KeyError:
        choices = ", ".join(EXPORT_FORMATS)
        raise ValueError(f"Unknown export format '{fmt}'; choose one of: {choices}.") from None
    response = StreamingHttpResponse(stream(batch), content_type=content_type)
    response["Content-Disposition"] = content_disposition_header(True, export_filename(batch, fmt))
    # Results are private to their owner: keep them out of shared caches.
    response["Cache-Control"] = "private, no-store"
    return response
