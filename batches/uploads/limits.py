"""Upload limits and the messages that refuse them: sizes, counts, widths, characters.

Owns every bound an upload of any format is held to (bytes, questions, columns, cell and
URL length, characters no database stores, JSON nesting) and the UploadError that names
each one, so that a CSV, a workbook and a JSON body are refused in the same words.
`too_many_rows` is the one "too many questions" message (files, JSON rows, the create
service). The XLSX ZIP bounds live with the workbook reader (`uploads.xlsx`).
"""

from __future__ import annotations

import re

from django.conf import settings
from django.utils.translation import gettext

from batches.errors import UploadError
from chats.models import URL_MAX_LENGTH

MAX_CELL_CHARS = 32_767  # Excel's limit for one cell
MAX_URL_CHARS = URL_MAX_LENGTH  # BatchItem.referring_url
# A header names a column: a longer one is refused at read time (the column chooser shows
# every header, and each is stored once per batch).
MAX_HEADER_CHARS = 2_048
# Wider files are refused: a real question sheet has a handful of columns, and a header
# of millions of empty cells would only cost time and memory.
MAX_COLUMNS = 500
# Excel's row limit. Blank rows are skipped, not counted as questions, but each costs time
# to read: a 20 MB CSV holds 19 million empty lines.
MAX_RECORDS = 1_048_576
# Arrays and objects inside one another in a JSON body. json.loads gave up near Python's
# recursion limit (about 1,000, less whatever the stack already held); a fixed bound
# below it keeps the refusal the same everywhere and lets json.dumps turn any accepted
# value back into a cell's text.
MAX_JSON_DEPTH = 500
READ_CHUNK = 1024 * 1024
# Text no database stores (rule 10): NUL, and unpaired surrogates (a str holds one only
# when it came from a JSON escape or a lenient decoder).
BAD_CHARACTERS = re.compile("[\x00\ud800-\udfff]")


def check_headers(headers: list[str]) -> None:
    """Refuse a header longer than MAX_HEADER_CHARS, naming its column and the limit."""
    for position, header in enumerate(headers, start=1):
        if len(header) > MAX_HEADER_CHARS:
            raise UploadError(
                gettext(
                    "Row 1 (the header), column %(column)s: the name has %(count)s "
                    "characters; the limit is %(limit)s. Shorten it."
                )
                % {
                    "column": position,
                    "count": f"{len(header):,}",
                    "limit": f"{MAX_HEADER_CHARS:,}",
                },
                code="header_too_long",
                row=1,
                column=f"column {position}",
            )


def check_size(size: int) -> None:
    limit = settings.MAX_UPLOAD_BYTES
    if size > limit:
        shown, allowed = format_size(size), format_size(limit)
        if shown == allowed:
            shown, allowed = f"{size:,} bytes", f"{limit:,} bytes"
        raise UploadError(
            gettext("The file is %(size)s; the limit is %(limit)s. Split it into smaller files.")
            % {"size": shown, "limit": allowed},
            code="too_large",
        )


def too_many_rows(*, what: str, row: int | None = None) -> UploadError:
    """The one "too many questions" refusal. Readers stop at the first question over the
    limit, so the count is not known: the message says "more than"."""
    limit = settings.MAX_BATCH_ITEMS
    return UploadError(
        gettext(
            "%(what)s has more than %(limit)s questions; the limit is %(limit)s per "
            "batch. Split it into several batches."
        )
        % {"what": what, "limit": f"{limit:,}"},
        code="too_many_rows",
        row=row,
    )


def check_count(count: int, *, what: str | None = None) -> None:
    if count > settings.MAX_BATCH_ITEMS:
        raise too_many_rows(what=what or gettext("The file"))


def check_width(columns: int, *, row: int) -> None:
    if columns > MAX_COLUMNS:
        raise UploadError(
            gettext("Row %(row)s has %(count)s columns; at most %(limit)s are accepted.")
            % {"row": row, "count": f"{columns:,}", "limit": f"{MAX_COLUMNS:,}"},
            code="too_many_columns",
            row=row,
        )


def too_wide(count: int, label: str, *, row: int | None = None) -> UploadError:
    """A JSON object of more keys than a row may have columns."""
    return UploadError(
        f"{label} has an object of {count:,} keys; at most {MAX_COLUMNS:,} columns are accepted.",
        code="too_many_columns",
        row=row,
    )


def check_characters(columns: dict[str, str], *, row_label: str, row: int) -> None:
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
                f'{row_label}, column "{printable(column)}": the {where} holds {what} at '
                f"position {found.start() + 1:,}; text with it cannot be stored. Remove it.",
                code="bad_characters",
                row=row,
                column=printable(column),
            )


def printable(text: str) -> str:
    return BAD_CHARACTERS.sub("\ufffd", text)


def check_cells(columns: dict[str, str], *, row_label: str, row: int) -> None:
    """Rules 8 and 10 for one row: characters, then the cell length."""
    if any(BAD_CHARACTERS.search(key) or BAD_CHARACTERS.search(v) for key, v in columns.items()):
        check_characters(columns, row_label=row_label, row=row)
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


def check_url(url: str, *, column: str | None, row_label: str, row: int) -> None:
    """A referring or expected-citation URL fits BatchItem's 2,048-character column."""
    if len(url) > MAX_URL_CHARS:
        raise UploadError(
            gettext(
                '%(row)s, column "%(column)s": the URL has %(length)s characters; '
                "the limit is %(limit)s."
            )
            % {
                "row": row_label,
                "column": column,
                "length": f"{len(url):,}",
                "limit": f"{MAX_URL_CHARS:,}",
            },
            code="url_too_long",
            row=row,
            column=column,
        )


def file_label(filename: str) -> str:
    """How messages name the file: its name in quotes, or "The file"."""
    return f'"{filename}"' if filename else gettext("The file")


def not_tabular(filename: str, what: str) -> UploadError:
    return UploadError(
        gettext("%(file)s is neither CSV nor XLSX: it looks like %(what)s.")
        % {"file": file_label(filename), "what": gettext(what)},
        code="not_tabular",
    )


def format_size(n: int) -> str:
    """Bytes the way messages show them: "1.5 MB", "20 MB", "800 KB"."""
    if n >= 1024 * 1024:
        value, unit = n / (1024 * 1024), "MB"
    else:
        value, unit = n / 1024, "KB"
    text = f"{value:.1f}".removesuffix(".0")
    return f"{text} {unit}"
