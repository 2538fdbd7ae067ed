"""Uploaded files: read within the size limit, judged by content, handed to their reader.

Owns rules 1 and 2 of the upload rules (see `batches.uploads`): the size limit, applied
before anything is parsed, and the type told by the first bytes (a ZIP goes to
`uploads.xlsx`, which says what other ZIPs are; PDFs, images, old .xls files and other
known signatures are refused by name; anything else goes to `uploads.csv_files`). Also
the file name, cleaned of characters no database stores.
"""

from __future__ import annotations

from typing import BinaryIO

from django.conf import settings
from django.utils.translation import gettext, gettext_noop

from batches.errors import UploadError
from batches.uploads.csv_files import parse_csv
from batches.uploads.limits import (
    BAD_CHARACTERS,
    READ_CHUNK,
    check_size,
    file_label,
    not_tabular,
)
from batches.uploads.rows import AUTO, ColumnChoice, Options, ParsedUpload
from batches.uploads.xlsx import parse_xlsx

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


def parse_upload(
    *, data: bytes, filename: str = "", columns: ColumnChoice = AUTO, preview: int = 0
) -> ParsedUpload:
    """Parse an uploaded CSV or XLSX file (see the upload rules in `batches.uploads`).

    `columns` overrides the alias detection per role. `preview=N` reads only the header
    and the first N rows for the column chooser (no question column required)."""
    check_size(len(data))
    if not data or data.isspace():  # isspace() copies nothing, unlike strip()
        raise UploadError(
            gettext("%(file)s is empty.") % {"file": file_label(filename)}, code="empty"
        )
    options = Options(columns=columns, preview=preview)
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return parse_xlsx(data, filename, options)
    for magic, what in SIGNATURES:
        if data.startswith(magic):
            raise not_tabular(filename, what)
    return parse_csv(data, filename, options)


def clean_filename(name: str) -> str:
    """An uploaded file's name without characters no database stores (rule 10): the name
    is only a label, so it is cleaned rather than refused."""
    return BAD_CHARACTERS.sub("", name)


def parse_upload_file(*, file: BinaryIO, filename: str = "", **options) -> ParsedUpload:
    """Like parse_upload, reading at most MAX_UPLOAD_BYTES + 1 bytes of `file`."""
    limit = settings.MAX_UPLOAD_BYTES
    size = getattr(file, "size", None)  # Django's UploadedFile knows it
    if isinstance(size, int):
        check_size(size)
    # Read in chunks: file.read(limit + 1) would reserve the whole limit up front.
    chunks: list[bytes] = []
    total = 0
    while total <= limit and (chunk := file.read(min(READ_CHUNK, limit + 1 - total))):
        chunks.append(chunk)
        total += len(chunk)
    check_size(total)
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    del chunks
    return parse_upload(data=data, filename=filename, **options)


def read_upload_bytes(*, file: BinaryIO) -> bytes:
    """The file's bytes, refusing more than MAX_UPLOAD_BYTES (kept for a second step)."""
    limit = settings.MAX_UPLOAD_BYTES
    size = getattr(file, "size", None)
    if isinstance(size, int):
        check_size(size)
    data = file.read(limit + 1)
    check_size(len(data))
    return data
