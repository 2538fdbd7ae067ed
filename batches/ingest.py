"""Upload parsing: a CSV or XLSX file becomes validated rows (see DESIGN "Upload rules").

Rules, in the order they are applied:

1. Size: a file over `settings.MAX_UPLOAD_BYTES` is refused before it is parsed.
2. Type is judged by content, not by the name: a ZIP holding `xl/workbook.xml` is XLSX;
   other ZIPs (DOCX, ODS, plain archives), old binary Office files (.xls), PDFs, images,
   HTML pages and binary junk are refused with a message saying what the file looks like.
   Anything else is read as CSV.
3. CSV encoding: a BOM decides (UTF-8, UTF-16 LE/BE); without one UTF-8, falling back to
   Windows-1252 when the bytes are not valid UTF-8. Delimiter: comma, semicolon or tab,
   sniffed by csv.Sniffer and checked against the header line, the first line with more
   than separators (a delimiter that does not occur in the header outside double quotes
   cannot be right; then the most frequent one in the header wins; a header with none of
   them is a one-column file and lines are not split at all). Quoted newlines work.
4. XLSX: the first worksheet, cached values of formulas (see `_xlsx_rows`), numbers and
   dates as text the way a person reads them (3.0 -> "3", a date -> "2024-03-01").
5. The first non-blank row is the header. Header names are trimmed; an empty one becomes
   `column N` (N = its 1-based position), a repeated one gets a suffix: `name (2)`.
   An unnamed column that holds no data at all (spreadsheet padding) is dropped.
6. Question column, matched ignoring case, spaces, `_` and `-`, first found in this order:
   `question`, `redactedquestion`, `problemdetails`, `prompt`. Optional `url` /
   `referringurl` -> referring URL, `chatid` -> chat key (rows sharing it become one
   multi-turn chat, in row order). Optional expected answer (`expectedanswer`,
   `goldenanswer`, `englishanswer`, `origanswer`) and expected citation
   (`expectedcitation`, `expectedcitationurl`, `citationurl`, `origcitation`) columns
   feed the graders. A `ColumnChoice` (the upload's column chooser) names any of these
   columns explicitly instead. Every column is kept, by its header, as text.
7. Rows whose cells are all empty are skipped silently; in a CSV so is a line of
   separators and spaces only (`,`, `;;`), whatever the delimiter. A row with other data
   but no question refuses the whole file (a guess at what the user meant would be
   worse); the message names the rows the way a spreadsheet numbers them (the header is
   row 1).
   Questions, URLs and chat keys are trimmed; other cells are kept as they are.
8. A cell longer than 32,767 characters (Excel's own cell limit, so the results could not
   be exported to XLSX) refuses the file, naming row and column; in a CSV this is nearly
   always an unclosed double quote swallowing the rest of the file. A referring URL
   longer than 2,048 characters (the database column) refuses the file too.
9. At most `settings.MAX_BATCH_ITEMS` questions: reading stops at the first question over
   the limit (a huge file is refused as fast as a small one), and the message gives the
   limit.
10. Text that no database can store is refused, naming row and column: a NUL character
    (U+0000, PostgreSQL's text and jsonb refuse it) or an unpaired surrogate (U+D800 to
    U+DFFF, not encodable as UTF-8), in a cell or a header.
11. XLSX is a ZIP, and a small ZIP can unpack to gigabytes. Before openpyxl reads anything,
    every part's declared size and its actual size (decompressed as a stream, never
    whole) are held to the bounds below (`XLSX_*`); the shared-string table (which
    openpyxl loads whole) and the first worksheet's cells are counted in the same pass.
    So any file the size limit allows is parsed in a few seconds and about 200 MB.

Every refusal is one UploadError with a stable `code` and a message for a person.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import functools
import io
import json
import re
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal

from django.conf import settings
from django.utils.translation import gettext, gettext_noop, ngettext

from batches.errors import JsonBodyError, UploadError

QUESTION_ALIASES = ("question", "redactedquestion", "problemdetails", "prompt")
URL_ALIASES = ("url", "referringurl")
CHAT_ALIASES = ("chatid",)
EXPECTED_ANSWER_ALIASES = ("expectedanswer", "goldenanswer", "englishanswer", "origanswer")
# `citationurl` comes after the explicit names: a results file uploaded again carries the
# earlier run's citation_url (what that run cited) and maybe an expected_citation_url.
EXPECTED_CITATION_ALIASES = (
    "expectedcitation",
    "expectedcitationurl",
    "citationurl",
    "origcitation",
)
PREVIEW_ROWS = 5
ACCEPTED_QUESTION_HEADERS = "question, RedactedQuestion, Problem Details, prompt"
MAX_CELL_CHARS = 32_767  # Excel's limit for one cell
MAX_URL_CHARS = 2_048  # BatchItem.referring_url
# Wider files are refused: a real question sheet has a handful of columns, and a header
# of millions of empty cells would only cost time and memory.
MAX_COLUMNS = 500
# Excel's row limit. Blank rows are skipped, not counted as questions, but each costs time
# to read: a 20 MB CSV holds 19 million empty lines.
MAX_RECORDS = 1_048_576
DELIMITERS = ",;\t"
# Never occurs in accepted text (NUL bytes are refused as binary), so a one-column CSV
# keeps commas inside its questions.
NO_SPLIT = "\x00"
SNIFF_CHARS = 16_384
READ_CHUNK = 1024 * 1024
# XLSX bounds (rule 11). openpyxl costs 10 to 20 microseconds per cell on a 2-core machine
# and keeps every shared string in memory, so the counts matter more than the bytes:
# 200,000 cells is 10,000 rows of 20 columns, 2 to 4 s (bench/bench_upload_limits.py).
XLSX_MAX_PARTS = 1_000  # files inside the ZIP; a workbook has a few dozen
XLSX_MAX_PART_BYTES = 64 * 1024 * 1024  # a worksheet or the shared-string table
XLSX_MAX_XML_PART_BYTES = 4 * 1024 * 1024  # other XML parts, which openpyxl parses whole
XLSX_MAX_TOTAL_BYTES = 128 * 1024 * 1024  # all parts together
XLSX_MAX_CELLS = 200_000  # cells of the first worksheet, empty styled ones included
XLSX_MAX_SHARED_STRINGS = 100_000  # openpyxl: about 9 microseconds each, all kept
# Text no database stores (rule 10): NUL, and unpaired surrogates (a str holds one only
# when it came from a JSON escape or a lenient decoder).
BAD_CHARACTERS = re.compile("[\x00\ud800-\udfff]")

SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        gettext_noop(
            "an old Excel 97-2003 workbook (.xls) or another "
            "legacy Office file; open it in Excel and save it as .xlsx or CSV"
        ),
    ),
    (b"%PDF", gettext_noop("a PDF document")),
    (b"\x89PNG\r\n\x1a\n", gettext_noop("a PNG image")),
    (b"\xff\xd8\xff", gettext_noop("a JPEG image")),
    (b"GIF87a", gettext_noop("a GIF image")),
    (b"GIF89a", gettext_noop("a GIF image")),
    (b"\x1f\x8b", gettext_noop("a gzip-compressed file")),
    (b"Rar!", gettext_noop("a RAR archive")),
    (b"7z\xbc\xaf\x27\x1c", gettext_noop("a 7-Zip archive")),
    (b"{\\rtf", gettext_noop("an RTF document")),
)


@dataclass(frozen=True, slots=True)
class ParsedRow:
    """One question row. `columns` holds every original column, by its header."""

    question: str
    referring_url: str = ""
    chat_key: str = ""
    columns: dict[str, str] = field(default_factory=dict)
    expected_answer: str = ""
    expected_citation_url: str = ""


ROLES = ("question", "url", "chat_id", "expected_answer", "expected_citation")
ROLE_ALIASES: dict[str, tuple[str, ...]] = {
    "question": QUESTION_ALIASES,
    "url": URL_ALIASES,
    "chat_id": CHAT_ALIASES,
    "expected_answer": EXPECTED_ANSWER_ALIASES,
    "expected_citation": EXPECTED_CITATION_ALIASES,
}


@dataclass(frozen=True)
class ColumnChoice:
    """Which column plays which role, as the user picked it in the column chooser.

    A header name picks that column; "" means "no such column"; None means "find it by
    its aliases" (the default for every role)."""

    question: str | None = None
    url: str | None = None
    chat_id: str | None = None
    expected_answer: str | None = None
    expected_citation: str | None = None

    def resolve(self, headers: list[str]) -> dict[str, str | None]:
        """Role -> header (None when the role has no column). An explicit header that is
        not in the file is refused (UploadError naming it)."""
        found: dict[str, str | None] = {}
        for role in ROLES:
            chosen = getattr(self, role)
            if chosen is None:
                found[role] = _find_alias(headers, ROLE_ALIASES[role])
            elif chosen == "":
                found[role] = None
            elif chosen in headers:
                found[role] = chosen
            else:
                shown = ", ".join(f'"{h}"' for h in headers) or "none"
                raise UploadError(
                    f'There is no column "{chosen}" to use as {ROLE_LABELS[role]}. '
                    f"Columns found: {shown}.",
                    code="unknown_column",
                    column=chosen,
                )
        return found


ROLE_LABELS = {
    "question": "the question",
    "url": "the referring URL",
    "chat_id": "the chat id",
    "expected_answer": "the expected answer",
    "expected_citation": "the expected citation",
}
AUTO = ColumnChoice()


@dataclass
class ParsedUpload:
    rows: list[ParsedRow]
    columns: list[str]  # headers in file order, made unique
    format: Literal["csv", "xlsx"]
    skipped_blank: int = 0  # blank rows after the header, skipped
    question_column: str = ""
    encoding: str = ""  # CSV only
    delimiter: str = ""  # CSV only
    sheet: str = ""  # XLSX only
    # Role -> header found (or chosen) for it, None when the file has none.
    roles: dict[str, str | None] = field(default_factory=dict)
    # Preview only (parse_upload(preview=N)): the first N non-blank rows' cells, padded
    # to the headers; `rows` is then empty and no question column is required.
    preview_rows: list[list[str]] = field(default_factory=list)


# --- Entry points ------------------------------------------------------------------------


def parse_upload(
    *, data: bytes, filename: str = "", columns: ColumnChoice = AUTO, preview: int = 0
) -> ParsedUpload:
    """Parse an uploaded CSV or XLSX file (see the module docstring for the rules).

    `columns` overrides the alias detection per role. `preview=N` reads only the header
    and the first N rows for the column chooser (no question column required)."""
    _check_size(len(data))
    if not data or data.isspace():  # isspace() copies nothing, unlike strip()
        raise UploadError(gettext("%(file)s is empty.") % {"file": _name(filename)}, code="empty")
    options = _Options(columns=columns, preview=preview)
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return _parse_xlsx(data, filename, options)
    for magic, what in SIGNATURES:
        if data.startswith(magic):
            raise _not_tabular(filename, what)
    return _parse_csv(data, filename, options)


def clean_filename(name: str) -> str:
    """An uploaded file's name without characters no database stores (rule 10): the name
    is only a label, so it is cleaned rather than refused."""
    return BAD_CHARACTERS.sub("", name)


@dataclass(frozen=True)
class _Options:
    columns: ColumnChoice = AUTO
    preview: int = 0


def parse_upload_file(*, file: BinaryIO, filename: str = "", **options) -> ParsedUpload:
    """Like parse_upload, reading at most MAX_UPLOAD_BYTES + 1 bytes of `file`."""
    limit = settings.MAX_UPLOAD_BYTES
    size = getattr(file, "size", None)  # Django's UploadedFile knows it
    if isinstance(size, int):
        _check_size(size)
    # Read in chunks: file.read(limit + 1) would reserve the whole limit up front.
    chunks: list[bytes] = []
    total = 0
    while total <= limit and (chunk := file.read(min(READ_CHUNK, limit + 1 - total))):
        chunks.append(chunk)
        total += len(chunk)
    _check_size(total)
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    del chunks
    return parse_upload(data=data, filename=filename, **options)


def read_upload_bytes(*, file: BinaryIO) -> bytes:
    """The file's bytes, refusing more than MAX_UPLOAD_BYTES (kept for a second step)."""
    limit = settings.MAX_UPLOAD_BYTES
    size = getattr(file, "size", None)
    if isinstance(size, int):
        _check_size(size)
    data = file.read(limit + 1)
    _check_size(len(data))
    return data


def rows_from_records(records: object, *, columns: ColumnChoice = AUTO) -> list[ParsedRow]:
    """Rows of the JSON API: a list of objects with at least a question (or an alias).

    Same aliases, blank-row and empty-question rules and limits as a file (columns per row
    and in all, cell size, URL length, characters, rows); values become text. Errors name
    the entry by its 0-based index (`rows[3]`).
    """
    if not isinstance(records, list):
        raise UploadError("`rows` must be a list of objects.", code="not_a_list")
    builder = _RecordRows(columns=columns)
    for index, record in enumerate(records):
        builder.add(index, record)
    return builder.finish()


def read_json_body(body: bytes) -> tuple[dict[str, Any], Callable[[ColumnChoice], list] | None]:
    """The fields of a JSON create request, and a reader of its `rows`, checked while
    they are read.

    `json.loads` would build every entry before anything could be counted (a 20 MB body
    of a million tiny rows is about 700 MB of objects); here the top-level object is
    walked by hand and the entries of `rows` are decoded one at a time and counted (keys
    per entry, distinct keys, rows): reading stops at the first entry over a limit. Rows
    are built (rows_from_records' rules) by the returned reader, given the column choice
    that the fields name (`columns` may come after `rows` in the body). Returns (other
    fields, the rows' reader or None when there is no `rows`).
    """
    try:
        text = body.decode(json.detect_encoding(body)) if body else ""
    except (UnicodeDecodeError, LookupError):
        raise JsonBodyError("The request body is not valid JSON: send a JSON object.") from None
    text = text.lstrip("\ufeff")
    try:
        return _walk_body(text)
    except RecursionError:
        raise JsonBodyError("The request body is nested too deeply to be read.") from None
    except (ValueError, IndexError) as exc:
        if isinstance(exc, JsonBodyError | UploadError):
            raise
        raise JsonBodyError("The request body is not valid JSON: send a JSON object.") from None


_WHITESPACE = re.compile(r"[ \t\n\r]*")


class _TooManyKeys(Exception):
    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.count = count


def _bounded_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Any object, nested ones too: a row of 100,000 keys is refused as soon as it is read.
    if len(pairs) > MAX_COLUMNS:
        raise _TooManyKeys(len(pairs))
    return dict(pairs)


_DECODER = json.JSONDecoder(object_pairs_hook=_bounded_object)


def _skip(text: str, index: int) -> int:
    return _WHITESPACE.match(text, index).end()


def _walk_body(text: str) -> tuple[dict[str, Any], Callable[[ColumnChoice], list] | None]:
    index = _skip(text, 0)
    if text[index : index + 1] != "{":
        raise JsonBodyError("Send a JSON object with `rows`.")
    fields: dict[str, Any] = {}
    reader: Callable[[ColumnChoice], list] | None = None
    index = _skip(text, index + 1)
    if text[index] == "}":
        index += 1
    else:
        while True:
            if text[index] != '"':
                raise ValueError("expected a key")
            key, index = _DECODER.raw_decode(text, index)
            index = _skip(text, index)
            if text[index] != ":":
                raise ValueError("expected ':'")
            index = _skip(text, index + 1)
            if key == "rows" and text[index] == "[":
                start = index
                index = _read_rows(text, start, _RowCounter())
                reader = functools.partial(_rows_at, text, start)
            else:
                try:
                    value, index = _DECODER.raw_decode(text, index)
                except _TooManyKeys as exc:
                    if key == "rows":
                        raise _too_wide(exc.count, "rows") from None
                    raise JsonBodyError(f"`{key}` has {exc.count:,} keys.") from None
                if key == "rows":
                    reader = functools.partial(_records_rows, value)
                else:
                    fields[key] = value
            index = _skip(text, index)
            if text[index] == ",":
                index = _skip(text, index + 1)
                continue
            if text[index] != "}":
                raise ValueError("expected ',' or '}'")
            index += 1
            break
    if _skip(text, index) != len(text):
        raise ValueError("extra data after the object")
    return fields, reader


def _records_rows(records: object, columns: ColumnChoice) -> list[ParsedRow]:
    return rows_from_records(records, columns=columns)


def _rows_at(text: str, start: int, columns: ColumnChoice) -> list[ParsedRow]:
    builder = _RecordRows(columns=columns)
    _read_rows(text, start, builder)
    return builder.finish()


def _count_keys(keys: dict[str, None], record: dict, *, label: str, index: int) -> None:
    """Add the record's keys to the distinct keys of all entries (the export's columns),
    refusing the first one past MAX_COLUMNS."""
    for key in record:
        if key not in keys:
            keys[key] = None
            if len(keys) > MAX_COLUMNS:
                raise UploadError(
                    f"{label}: the entries use more than {MAX_COLUMNS:,} different keys "
                    f'(a new one: "{_printable(str(key))[:100]}"); each key becomes a '
                    f"column, and at most {MAX_COLUMNS:,} columns are accepted.",
                    code="too_many_columns",
                    row=index,
                    column=_printable(str(key)),
                )


class _RowCounter:
    """The first pass over `rows`: entries, keys and rows counted, nothing kept."""

    def __init__(self) -> None:
        self.keys: dict[str, None] = {}
        self.rows = 0
        self.limit = settings.MAX_BATCH_ITEMS

    def add(self, index: int, record: object) -> None:
        label = f"rows[{index}]"
        if not isinstance(record, dict):
            return  # the second pass says what is wrong with it
        _count_keys(self.keys, record, label=label, index=index)
        if any(str(value).strip() for value in record.values() if value is not None):
            self.rows += 1
            if self.rows > self.limit:  # refused whatever follows: stop reading
                raise UploadError(
                    f"`rows` has more than {self.limit:,} questions; the limit is "
                    f"{self.limit:,} per batch. Split them into several batches.",
                    code="too_many_rows",
                    row=index,
                )


def _read_rows(text: str, index: int, builder) -> int:
    """Decode the entries of the `rows` array at `index` one at a time into `builder`;
    returns the index after the array."""
    index = _skip(text, index + 1)
    if text[index] == "]":
        return index + 1
    number = 0
    while True:
        try:
            record, index = _DECODER.raw_decode(text, index)
        except _TooManyKeys as exc:
            raise _too_wide(exc.count, f"rows[{number}]", row=number) from None
        builder.add(number, record)
        number += 1
        index = _skip(text, index)
        if text[index] == ",":
            index = _skip(text, index + 1)
            continue
        if text[index] != "]":
            raise ValueError("expected ',' or ']'")
        return index + 1


def _too_wide(count: int, label: str, *, row: int | None = None) -> UploadError:
    return UploadError(
        f"{label} has an object of {count:,} keys; at most {MAX_COLUMNS:,} columns are accepted.",
        code="too_many_columns",
        row=row,
    )


class _RecordRows:
    """JSON entries checked one by one as they arrive; `finish` gives the rows. Roles are
    resolved per record (JSON objects may differ in their keys); a role chosen by name
    must be present in every record."""

    def __init__(self, *, columns: ColumnChoice = AUTO) -> None:
        self.choice = columns
        self.rows: list[ParsedRow] = []
        self.keys: dict[str, None] = {}  # distinct keys of all entries: the export's columns
        self.limit = settings.MAX_BATCH_ITEMS

    def add(self, index: int, record: object) -> None:
        label = f"rows[{index}]"
        if not isinstance(record, dict):
            raise UploadError(
                f"{label} is {type(record).__name__}, not an object with a question.",
                code="not_an_object",
                row=index,
            )
        if len(record) > MAX_COLUMNS:  # counted before any value is converted
            raise _too_wide(len(record), label, row=index)
        _count_keys(self.keys, record, label=label, index=index)
        columns = {str(key): _json_text(value) for key, value in record.items()}
        roles = self.choice.resolve(list(columns))
        question_key = roles["question"]
        if question_key is None:
            raise UploadError(
                f"{label} has no question; give it a `question` field "
                f"(or one of: {ACCEPTED_QUESTION_HEADERS}).",
                code="missing_question",
                row=index,
            )
        _check_cells(columns, row_label=label, row=index)
        if not any(value.strip() for value in columns.values()):
            return
        question = columns[question_key].strip()
        if not question:
            raise UploadError(
                f"{label} has an empty question but other fields are filled.",
                code="empty_question",
                row=index,
            )
        if len(self.rows) >= self.limit:  # refused whatever follows: stop reading
            raise UploadError(
                f"`rows` has more than {self.limit:,} questions; the limit is "
                f"{self.limit:,} per batch. Split them into several batches.",
                code="too_many_rows",
                row=index,
            )
        headers = list(columns)
        self.rows.append(_make_row(question, columns, headers, roles, row_label=label, row=index))

    def finish(self) -> list[ParsedRow]:
        if not self.rows:
            raise UploadError("`rows` holds no questions.", code="empty")
        return self.rows


# --- CSV --------------------------------------------------------------------------------


def _parse_csv(data: bytes, filename: str, options: _Options) -> ParsedUpload:
    encoding = _csv_encoding(data, filename)
    sample = _decode_sample(data, encoding)
    stripped = sample.lstrip("\ufeff \t\r\n").lower()
    if stripped.startswith(("<!doctype html", "<html")):
        raise _not_tabular(filename, gettext("an HTML page"))
    control = sum(1 for ch in sample if ch < " " and ch not in "\t\r\n")
    if control > max(2, len(sample) // 100):
        raise UploadError(
            gettext("%(file)s looks like a binary file, not CSV or XLSX text.")
            % {"file": _name(filename)},
            code="binary",
        )
    # Excel reads (and hides) a first line "sep=;" naming the delimiter.
    hint = re.match(r"sep=([^\r\n])[ \t]*\r?\n", sample, re.IGNORECASE)
    delimiter = hint.group(1) if hint else _sniff_delimiter(sample)
    # TextIOWrapper decodes in chunks and newline="" hands the csv module raw line ends,
    # so quoted newlines survive and the whole text never exists as one string.
    stream = io.TextIOWrapper(io.BytesIO(data), encoding=encoding, newline="")
    reader = csv.reader(stream, delimiter=delimiter)
    try:
        if hint:
            next(reader)
        parsed = _build(
            _separator_lines_blank(_numbered(reader)), filename, fmt="csv", options=options
        )
    except csv.Error as exc:
        raise UploadError(
            gettext(
                "%(file)s is not valid CSV near line %(line)s: %(error)s. "
                "An unclosed double quote is the usual cause."
            )
            % {"file": _name(filename), "line": reader.line_num, "error": exc},
            code="malformed_csv",
            row=reader.line_num,
        ) from exc
    parsed.encoding = encoding
    parsed.delimiter = "" if delimiter == NO_SPLIT else delimiter
    return parsed


def _csv_encoding(data: bytes, filename: str) -> str:
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"  # the codec reads the BOM to pick the byte order
    if b"\x00" in data:
        raise UploadError(
            gettext(
                "%(file)s contains NUL bytes: it is a binary file, or UTF-16 text "
                "without a byte-order mark. Upload a CSV (UTF-8 is best) or an XLSX workbook."
            )
            % {"file": _name(filename)},
            code="binary",
        )
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        data.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UploadError(
            gettext(
                "%(file)s is neither UTF-8 nor Windows-1252 text (byte "
                '%(byte)s on line %(line)s). Save it as "CSV UTF-8".'
            )
            % {"file": _name(filename), "byte": f"0x{data[exc.start]:02X}", "line": line},
            code="encoding",
            row=line,
        ) from exc


def _decode_sample(data: bytes, encoding: str) -> str:
    # "ignore" only drops a multi-byte character cut at the end of the sample.
    text = data[: SNIFF_CHARS * 2].decode(encoding, errors="ignore")
    return text.lstrip("\ufeff")


def _sniff_delimiter(sample: str) -> str:
    """Sniffer's choice if it occurs in the header line, else the header's most frequent."""
    cut = sample.rfind("\n", 0, SNIFF_CHARS)
    sample = sample[: cut if cut > 0 else SNIFF_CHARS]
    header = _header_line(sample)
    # Count outside quotes: a quoted header like "Question, in full" is one column.
    unquoted = re.sub(r'"[^"]*"', "", header)
    counts = {d: unquoted.count(d) for d in DELIMITERS}
    if not any(counts.values()):
        return NO_SPLIT
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        sniffed = ""
    if sniffed and counts.get(sniffed):
        return sniffed
    return max(DELIMITERS, key=lambda d: counts[d])


def _header_line(sample: str) -> str:
    """The raw text (quotes kept) of the first record holding more than separators and
    whitespace: the header, as `_build` finds it. A leading `,,` line (an empty
    spreadsheet row) must not make a one-column file comma-separated."""
    # The csv module decides where a record ends (quoted newlines); its line count maps
    # the record back to the raw lines, which keep the quotes that the counting needs.
    lines = LINE.findall(sample)
    reader = csv.reader(io.StringIO(sample, newline=""), delimiter=NO_SPLIT)
    read = 0
    for cells in reader:
        raw, read = "".join(lines[read : reader.line_num]), reader.line_num
        if not _only_separators("".join(cells)):
            return raw
    return ""


# One physical line, the way io.StringIO(newline="") splits them for the csv module.
LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


# Whitespace (as str.strip() sees it, tab included) and the delimiters.
SEPARATORS_ONLY = re.compile(r"[\s,;]*")


def _only_separators(text: str) -> bool:
    # strip() settles the usual cells in C; the regex sees the rest (other whitespace).
    rest = text.strip(" \t\r\n,;")
    return not rest or SEPARATORS_ONLY.fullmatch(rest) is not None


def _separator_lines_blank(
    records: Iterator[tuple[int, list[str]]],
) -> Iterator[tuple[int, list[str]]]:
    """A line of separators only (`,`, `;;`: an empty spreadsheet row) is a blank line. A
    one-column file splits nothing, so without this it would be the question ","; and in
    a `;` file a `,` line is one cell too."""
    for number, cells in records:
        # all() stops at the first cell with text: one regex call for a row of data.
        if cells and all(map(_only_separators, cells)):
            cells = []
        yield number, cells


def _numbered(reader: Iterable[list[str]]) -> Iterator[tuple[int, list[str]]]:
    # A record is a spreadsheet row, even when a quoted newline spans several lines.
    return enumerate(reader, start=1)


# --- XLSX -------------------------------------------------------------------------------


def _parse_xlsx(data: bytes, filename: str, options: _Options) -> ParsedUpload:
    """1. ZIP bounds (rule 11) before openpyxl opens anything; 2. the first worksheet."""
    from openpyxl import load_workbook  # heavy import, only needed for workbooks

    _check_zip_directory(data, filename)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _damaged(filename, gettext("the ZIP container is broken or truncated")) from exc
    if "xl/workbook.xml" not in names:
        raise _not_tabular(filename, _zip_kind(archive, names))
    cells = _check_xlsx_parts(archive, filename)
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises a zoo of types (KeyError, XML, zip) on bad input
        raise _damaged(filename, _reason(exc)) from exc
    try:
        if not workbook.worksheets:
            raise UploadError(f"{_name(filename)} has no worksheet.", code="empty")
        sheet = workbook.worksheets[0]
        path = str(getattr(sheet, "_worksheet_path", "")).lstrip("/")
        # Should the sheet's part not be found by name, the largest count stands for it.
        count = cells.get(path, max(cells.values(), default=0))
        if count > XLSX_MAX_CELLS:
            raise UploadError(
                f"The first worksheet of {_name(filename)} has {count:,} cells; at most "
                f"{XLSX_MAX_CELLS:,} are read from a workbook (10,000 rows of 20 columns). "
                "Delete unused rows and columns, or save it as CSV.",
                code="too_large",
            )
        # Trust the cells, not the sheet's stated size: a bogus <dimension> such as
        # A1:XFD1048576 would otherwise pad every row to 16,384 cells.
        sheet.reset_dimensions()
        try:
            parsed = _build(_xlsx_rows(sheet), filename, fmt="xlsx", options=options)
        except UploadError:
            raise
        except Exception as exc:  # a damaged sheet part only shows up while it streams
            raise _damaged(filename, _reason(exc)) from exc
        parsed.sheet = sheet.title
        return parsed
    finally:
        workbook.close()


def _check_zip_directory(data: bytes, filename: str) -> None:
    """Refuse a ZIP of more than XLSX_MAX_PARTS files before zipfile builds an object per
    file: the count is in the end-of-central-directory record (0xFFFF: ZIP64, which no
    workbook of questions needs)."""
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 65_557))
    if end < 0 or len(data) < end + 22:
        return  # zipfile says what is wrong with it
    entries = int.from_bytes(data[end + 10 : end + 12], "little")
    if entries > XLSX_MAX_PARTS:
        raise UploadError(
            f"{_name(filename)} holds {entries:,} files; a workbook has a few dozen (at most "
            f"{XLSX_MAX_PARTS:,} are accepted). Save it as CSV.",
            code="too_large",
        )


# An element's start tag, with or without a namespace prefix: <c r="A1">, <x:c>, <si/>.
_CELL_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]{0,30}:)?c[\s/>]")
_STRING_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]{0,30}:)?si[\s/>]")
_TAG_OVERLAP = 40  # longer than any tag above, so a tag cut between two chunks is found


def _check_xlsx_parts(archive: zipfile.ZipFile, filename: str) -> dict[str, int]:
    """Rule 11: every part's declared and actual size within its bound, shared strings
    counted; returns the cell count of every part that is a worksheet.

    Parts are decompressed as a stream, chunk by chunk, so a part that lies about its size
    costs at most its bound. Which bound: worksheets and the shared-string table are read
    as streams by openpyxl (XLSX_MAX_PART_BYTES); other XML parts are parsed whole
    (XLSX_MAX_XML_PART_BYTES); binary parts (images) are never read but count towards
    XLSX_MAX_TOTAL_BYTES.
    """
    infos = archive.infolist()
    declared = sum(info.file_size for info in infos)
    if declared > XLSX_MAX_TOTAL_BYTES:
        raise _unpacks_too_much(filename, XLSX_MAX_TOTAL_BYTES)
    for info in infos:  # every declared size first: a lie is refused unread
        if info.file_size > _part_bound(info.filename):
            raise _unpacks_too_much(filename, _part_bound(info.filename), part=info.filename)
    cells: dict[str, int] = {}
    strings = total = 0
    for info in infos:
        bound = _part_bound(info.filename)
        is_xml = info.filename.lower().endswith((".xml", ".rels", ".vml"))
        size = part_cells = part_strings = 0
        tail = b""
        try:
            with archive.open(info) as stream:
                while chunk := stream.read(READ_CHUNK):
                    size += len(chunk)
                    if size > bound:
                        raise _unpacks_too_much(filename, bound, part=info.filename)
                    if total + size > XLSX_MAX_TOTAL_BYTES:
                        raise _unpacks_too_much(filename, XLSX_MAX_TOTAL_BYTES)
                    if not is_xml:
                        continue
                    window = tail + chunk
                    cut = max(len(window) - _TAG_OVERLAP, 0)
                    part_cells += sum(1 for m in _CELL_TAG.finditer(window) if m.start() < cut)
                    part_strings += sum(1 for m in _STRING_TAG.finditer(window) if m.start() < cut)
                    tail = window[cut:]
        except UploadError:
            raise
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error) as exc:
            raise _damaged(filename, f"part {info.filename}: {_reason(exc)}") from exc
        part_cells += len(_CELL_TAG.findall(tail))
        part_strings += len(_STRING_TAG.findall(tail))
        total += size
        strings += part_strings
        if strings > XLSX_MAX_SHARED_STRINGS:
            raise UploadError(
                f"{_name(filename)} holds more than {XLSX_MAX_SHARED_STRINGS:,} different "
                "texts; a workbook of questions needs far fewer. Save it as CSV, or split it.",
                code="too_large",
            )
        if part_cells:
            cells[info.filename] = part_cells
    return cells


def _part_bound(name: str) -> int:
    lowered = name.lower()
    if not lowered.endswith((".xml", ".rels", ".vml")):
        return XLSX_MAX_PART_BYTES
    if lowered.startswith("xl/worksheets/") or "sharedstrings" in lowered:
        return XLSX_MAX_PART_BYTES
    return XLSX_MAX_XML_PART_BYTES


def _unpacks_too_much(filename: str, bound: int, *, part: str = "") -> UploadError:
    where = f"its part {part}" if part else "it"
    return UploadError(
        f"{_name(filename)} unpacks to far more than a workbook of questions needs: {where} "
        f"unpacks to more than {_size(bound)}. Save it as CSV, or split it.",
        code="too_large",
    )


def _xlsx_rows(sheet) -> Iterator[tuple[int, list[str]]]:
    # data_only=True gives the value a spreadsheet app cached when it last saved the file.
    # A formula never calculated (files written by scripts, e.g. openpyxl) has no cached
    # value and comes out empty: we cannot evaluate Excel formulas, and the formula text
    # itself ("=A1*2") is not the question the user meant.
    for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
        end = len(values)
        while end and values[end - 1] is None:  # styled but empty cells at the end
            end -= 1
        yield number, [_cell_text(value) for value in values[:end]]


def _zip_kind(archive: zipfile.ZipFile, names: set[str]) -> str:
    if "word/document.xml" in names:
        return gettext("a Word document (.docx)")
    if "ppt/presentation.xml" in names:
        return gettext("a PowerPoint presentation (.pptx)")
    if "mimetype" in names:
        mimetype = archive.read("mimetype")[:100].decode("ascii", "replace")
        if "opendocument.spreadsheet" in mimetype:
            return gettext("an OpenDocument spreadsheet (.ods); save it as .xlsx or CSV")
        return gettext("an OpenDocument file (%(type)s)") % {"type": mimetype}
    return gettext("a ZIP archive that is not an Excel workbook")


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"  # as a spreadsheet shows it
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _json_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return _cell_text(value)


# --- Shared: header, rows, limits -------------------------------------------------------


def _build(
    records: Iterator[tuple[int, list[str]]],
    filename: str,
    *,
    fmt: Literal["csv", "xlsx"],
    options: _Options = _Options(),
) -> ParsedUpload:
    """1. header = first non-blank row; 2. find alias columns; 3. rows, checked and counted."""
    header_cells: list[str] | None = None
    for _number, cells in records:
        if any(cell.strip() for cell in cells):
            header_cells = cells
            break
    if header_cells is None:
        raise UploadError(f"{_name(filename)} has no rows.", code="empty")
    while not header_cells[-1].strip():  # trailing empty cells: spreadsheet padding
        header_cells.pop()
    _check_width(len(header_cells), row=1)
    _check_characters(
        {f"column {i}": cell for i, cell in enumerate(header_cells, start=1)},
        row_label="Row 1 (the header)",
        row=1,
    )
    headers = _unique_headers(header_cells)
    taken = set(headers)
    named = {i for i, cell in enumerate(header_cells) if cell.strip()}
    if options.preview:
        return _preview(records, headers, fmt=fmt, count=options.preview)
    roles = options.columns.resolve(headers)
    question_key = roles["question"]
    if question_key is None:
        found = ", ".join(f'"{h}"' for h in headers if h) or gettext("none")
        hint = ""
        if any(h.rstrip().endswith("?") for h in header_cells):
            hint = " " + gettext(
                "The first row is read as column names: add a header row above it."
            )
        raise UploadError(
            gettext(
                "No question column. The first row must name one of: "
                "%(names)s (case, spaces, _ and - do not matter). "
                "Columns found: %(found)s."
            )
            % {"names": ACCEPTED_QUESTION_HEADERS, "found": found}
            + hint,
            code="no_question_column",
            row=1,
        )
    question_index = headers.index(question_key)
    header_count = len(headers)
    all_named = len(named) == len(headers)
    limit = settings.MAX_BATCH_ITEMS
    rows: list[ParsedRow] = []
    used_unnamed: set[int] = set()
    empty_question_rows: list[int] = []
    skipped = count = 0
    for number, cells in records:
        if number > MAX_RECORDS:
            raise UploadError(
                f"{_name(filename)} has more than {MAX_RECORDS:,} rows, blank ones included: "
                "more than a spreadsheet holds. Delete the empty rows at its end.",
                code="too_many_rows",
            )
        if not any(map(str.strip, cells)):
            skipped += 1
            continue
        while len(cells) > len(headers):  # CSV rows longer than the header
            if not cells[-1].strip():
                cells.pop()
                continue
            _check_width(len(headers) + 1, row=number)
            headers.append(_fresh_name(f"column {len(headers) + 1}", taken))
            taken.add(headers[-1])
        if not all_named or len(cells) > header_count:
            for index, cell in enumerate(cells):
                if index not in named and cell.strip():
                    used_unnamed.add(index)
        columns = dict(zip(headers, cells, strict=False))
        _check_cells(columns, row_label=f"Row {number}", row=number)
        question = cells[question_index].strip() if question_index < len(cells) else ""
        if not question:
            empty_question_rows.append(number)
            if count + len(empty_question_rows) > limit:
                break  # refused whatever follows: stop reading
            continue
        count += 1
        if count > limit:
            break  # refused whatever follows: stop reading (a 20 MB CSV is 10M rows)
        if not empty_question_rows:
            rows.append(
                _make_row(question, columns, headers, roles, row_label=f"Row {number}", row=number)
            )
    if empty_question_rows:
        raise _empty_question(
            empty_question_rows, question_key, fmt, more=count + len(empty_question_rows) > limit
        )
    if not count:
        raise UploadError(
            gettext("%(file)s has a header row but no questions below it.")
            % {"file": _name(filename)},
            code="header_only",
        )
    _check_count(count, what=_name(filename))
    if len(headers) > header_count:  # a later row grew the header: earlier rows catch up
        for row in rows:
            for header in headers[header_count:]:
                row.columns.setdefault(header, "")
    unused = [h for i, h in enumerate(headers) if i not in named and i not in used_unnamed]
    if unused:  # spreadsheet padding: unnamed and never filled
        for row in rows:
            for key in unused:
                row.columns.pop(key, None)
        headers = [h for h in headers if h not in unused]
    return ParsedUpload(
        rows=rows,
        columns=headers,
        format=fmt,
        skipped_blank=skipped,
        question_column=question_key,
        roles=roles,
    )


def _preview(
    records: Iterator[tuple[int, list[str]]], headers: list[str], *, fmt: str, count: int
) -> ParsedUpload:
    """The header and the first `count` non-blank rows, with the roles guessed by alias."""
    sample: list[list[str]] = []
    for _number, cells in records:
        if len(sample) >= count:
            break
        if not any(map(str.strip, cells)):
            continue
        cells = cells[: len(headers)]
        sample.append(cells + [""] * (len(headers) - len(cells)))
    roles = {role: _find_alias(headers, ROLE_ALIASES[role]) for role in ROLES}
    return ParsedUpload(
        rows=[],
        columns=headers,
        format=fmt,  # type: ignore[arg-type]
        question_column=roles["question"] or "",
        roles=roles,
        preview_rows=sample,
    )


def _make_row(
    question: str,
    columns: dict[str, str],
    headers: list[str],
    roles: dict[str, str | None],
    *,
    row_label: str,
    row: int,
) -> ParsedRow:
    if len(columns) < len(headers):  # short rows lack trailing cells
        for header in headers:
            columns.setdefault(header, "")
    url_key, chat_key = roles.get("url"), roles.get("chat_id")
    url = columns[url_key].strip() if url_key else ""
    if len(url) > MAX_URL_CHARS:  # BatchItem.referring_url is a 2,048-character column
        raise UploadError(
            gettext(
                '%(row)s, column "%(column)s": the URL has %(length)s characters; '
                "the limit is %(limit)s."
            )
            % {
                "row": row_label,
                "column": url_key,
                "length": f"{len(url):,}",
                "limit": f"{MAX_URL_CHARS:,}",
            },
            code="url_too_long",
            row=row,
            column=url_key,
        )
    answer_key, citation_key = roles.get("expected_answer"), roles.get("expected_citation")
    citation = columns[citation_key].strip() if citation_key else ""
    if len(citation) > MAX_URL_CHARS:
        raise UploadError(
            f'{row_label}, column "{citation_key}": the URL has {len(citation):,} characters; '
            f"the limit is {MAX_URL_CHARS:,}.",
            code="url_too_long",
            row=row,
            column=citation_key,
        )
    return ParsedRow(
        question=question,
        referring_url=url,
        chat_key=columns[chat_key].strip() if chat_key else "",
        columns=columns,
        expected_answer=columns[answer_key].strip() if answer_key else "",
        expected_citation_url=citation,
    )


def _find_alias(headers: list[str], aliases: tuple[str, ...]) -> str | None:
    """The first header matching the earliest alias, ignoring case, spaces, `_` and `-`."""
    keys = [re.sub(r"[\s_\-]+", "", header).lower() for header in headers]
    return next((headers[keys.index(a)] for a in aliases if a in keys), None)


def _unique_headers(cells: list[str]) -> list[str]:
    headers: list[str] = []
    taken: set[str] = set()
    for position, cell in enumerate(cells, start=1):
        name = _fresh_name(cell.strip() or f"column {position}", taken)
        headers.append(name)
        taken.add(name)
    return headers


def _fresh_name(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name} ({n})"
    return candidate


def _check_width(columns: int, *, row: int) -> None:
    if columns > MAX_COLUMNS:
        raise UploadError(
            gettext("Row %(row)s has %(count)s columns; at most %(limit)s are accepted.")
            % {"row": row, "count": f"{columns:,}", "limit": f"{MAX_COLUMNS:,}"},
            code="too_many_columns",
            row=row,
        )


def _check_characters(columns: dict[str, str], *, row_label: str, row: int) -> None:
    """Rule 10: no NUL and no unpaired surrogate, in a cell or a header."""
    for column, value in columns.items():
        for where, text in (("cell", value), ("column name", column)):
            found = BAD_CHARACTERS.search(text)
            if found is None:
                continue
            char = found.group()
            what = (
                "a NUL character (U+0000)"
                if char == "\x00"
                else f"an unpaired surrogate (U+{ord(char):04X}), which is not a character"
            )
            raise UploadError(
                f'{row_label}, column "{_printable(column)}": the {where} holds {what} at '
                f"position {found.start() + 1:,}; text with it cannot be stored. Remove it.",
                code="bad_characters",
                row=row,
                column=_printable(column),
            )


def _printable(text: str) -> str:
    return BAD_CHARACTERS.sub("\ufffd", text)


def _check_cells(columns: dict[str, str], *, row_label: str, row: int) -> None:
    if any(BAD_CHARACTERS.search(key) or BAD_CHARACTERS.search(v) for key, v in columns.items()):
        _check_characters(columns, row_label=row_label, row=row)
    if max(map(len, columns.values()), default=0) <= MAX_CELL_CHARS:
        return
    for column, value in columns.items():
        if len(value) > MAX_CELL_CHARS:
            hint = ""
            if "\n" in value:
                hint = " " + gettext("In a CSV this is usually an unclosed double quote.")
            raise UploadError(
                gettext(
                    '%(row)s, column "%(column)s": the cell has %(length)s characters; '
                    "the limit is %(limit)s."
                )
                % {
                    "row": row_label,
                    "column": column,
                    "length": f"{len(value):,}",
                    "limit": f"{MAX_CELL_CHARS:,}",
                }
                + hint,
                code="cell_too_long",
                row=row,
                column=column,
            )


def _check_count(count: int, *, what: str = "The file") -> None:
    """Readers stop at the first question over the limit, so the count is not known."""
    limit = settings.MAX_BATCH_ITEMS
    if count > limit:
        raise UploadError(
            gettext(
                "%(what)s has more than %(limit)s questions; the limit is %(limit)s per "
                "batch. Split it into several batches."
            )
            % {"what": what, "limit": f"{limit:,}"},
            code="too_many_rows",
        )


def _check_size(size: int) -> None:
    limit = settings.MAX_UPLOAD_BYTES
    if size > limit:
        shown, allowed = _size(size), _size(limit)
        if shown == allowed:
            shown, allowed = f"{size:,} bytes", f"{limit:,} bytes"
        raise UploadError(
            gettext("The file is %(size)s; the limit is %(limit)s. Split it into smaller files.")
            % {"size": shown, "limit": allowed},
            code="too_large",
        )


def _empty_question(
    numbers: list[int], question_key: str, fmt: str, *, more: bool = False
) -> UploadError:
    shown = ", ".join(str(n) for n in numbers[:5])
    if more:  # reading stopped at the row limit
        shown += gettext(" and more")
    elif len(numbers) > 5:
        shown += gettext(" and %(count)s more") % {"count": f"{len(numbers) - 5:,}"}
    elif len(numbers) > 1:
        shown = ", ".join(str(n) for n in numbers[:-1]) + gettext(" and %(last)s") % {
            "last": numbers[-1]
        }
    message = ngettext(
        'Row %(rows)s: the "%(column)s" cell is empty but other cells are filled. '
        "Fill in the question or delete the row (the header is row 1).",
        'Rows %(rows)s: the "%(column)s" cell is empty but other cells are filled. '
        "Fill in the question or delete the row (the header is row 1).",
        len(numbers),
    ) % {"rows": shown, "column": question_key}
    if fmt == "xlsx":
        message += " " + gettext(
            "If the cell holds a formula, open the file in Excel and save it again so that "
            "the formula's value is stored in the file."
        )
    return UploadError(
        message,
        code="empty_question",
        row=numbers[0],
        column=question_key,
    )


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        value, unit = n / (1024 * 1024), "MB"
    else:
        value, unit = n / 1024, "KB"
    text = f"{value:.1f}".removesuffix(".0")
    return f"{text} {unit}"


def _name(filename: str) -> str:
    return f'"{filename}"' if filename else gettext("The file")


def _not_tabular(filename: str, what: str) -> UploadError:
    return UploadError(
        gettext("%(file)s is neither CSV nor XLSX: it looks like %(what)s.")
        % {"file": _name(filename), "what": gettext(what)},
        code="not_tabular",
    )


def _damaged(filename: str, reason: str) -> UploadError:
    return UploadError(
        gettext(
            "%(file)s looks like an Excel workbook but cannot be read (%(reason)s). "
            "Open it in Excel and save it again, or save it as CSV."
        )
        % {"file": _name(filename), "reason": reason},
        code="damaged_xlsx",
    )


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
