"""XLSX workbooks: the ZIP and XML bomb checks, then the first worksheet through openpyxl.

Owns rules 4 and 11 of the upload rules (see `batches.uploads`). XLSX is a ZIP, and a
small ZIP can unpack to gigabytes: before openpyxl reads anything, the number of parts,
every part's declared and actual size (decompressed as a stream, never whole), the
shared strings and the first worksheet's cells are held to the `XLSX_*` bounds below.
Then openpyxl's read-only mode streams the first sheet's cached values to `rows.build`.
Also says what a ZIP that is not a workbook is (DOCX, ODS, ...).
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections.abc import Iterator

from django.utils.translation import gettext

from batches.errors import UploadError
from batches.uploads.limits import (
    READ_CHUNK,
    check_width,
    file_label,
    format_size,
    not_tabular,
)
from batches.uploads.rows import Options, ParsedUpload, build, cell_text

# openpyxl costs 10 to 20 microseconds per cell on a 2-core machine and keeps every shared
# string in memory, so the counts matter more than the bytes: 200,000 cells is 10,000
# rows of 20 columns, 2 to 4 s (bench/bench_upload_limits.py).
XLSX_MAX_PARTS = 1_000  # files inside the ZIP; a workbook has a few dozen
XLSX_MAX_PART_BYTES = 64 * 1024 * 1024  # a worksheet or the shared-string table
XLSX_MAX_XML_PART_BYTES = 4 * 1024 * 1024  # other XML parts, which openpyxl parses whole
XLSX_MAX_TOTAL_BYTES = 128 * 1024 * 1024  # all parts together
XLSX_MAX_CELLS = 200_000  # cells of the first worksheet, empty styled ones included
XLSX_MAX_SHARED_STRINGS = 100_000  # openpyxl: about 9 microseconds each, all kept
# Cells openpyxl builds for the first worksheet: it pads each row up to its last cell, so
# a row holding one cell at column XFD costs 16,384 cells. Counted from the cell
# references before openpyxl reads the sheet.
XLSX_MAX_PADDED_CELLS = 2 * XLSX_MAX_CELLS


def parse_xlsx(data: bytes, filename: str, options: Options) -> ParsedUpload:
    """1. ZIP bounds (rule 11) before openpyxl opens anything; 2. the first worksheet."""
    from openpyxl import load_workbook  # heavy import, only needed for workbooks

    _check_zip_directory(data, filename)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _damaged(filename, gettext("the ZIP container is broken or truncated")) from exc
    if "xl/workbook.xml" not in names:
        raise not_tabular(filename, _zip_kind(archive, names))
    cells, shapes = _check_xlsx_parts(archive, filename)
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises a zoo of types (KeyError, XML, zip) on bad input
        raise _damaged(filename, _reason(exc)) from exc
    try:
        if not workbook.worksheets:
            raise UploadError(f"{file_label(filename)} has no worksheet.", code="empty")
        sheet = workbook.worksheets[0]
        path = str(getattr(sheet, "_worksheet_path", "")).lstrip("/")
        # Should the sheet's part not be found by name, the largest count stands for it.
        count = cells.get(path, max(cells.values(), default=0))
        if count > XLSX_MAX_CELLS:
            raise UploadError(
                f"The first worksheet of {file_label(filename)} has {count:,} cells; at most "
                f"{XLSX_MAX_CELLS:,} are read from a workbook (10,000 rows of 20 columns). "
                "Delete unused rows and columns, or save it as CSV.",
                code="too_large",
            )
        _check_shape(shapes.get(path) or _widest(shapes), filename)
        # Trust the cells, not the sheet's stated size: a bogus <dimension> such as
        # A1:XFD1048576 would otherwise pad every row to 16,384 cells.
        sheet.reset_dimensions()
        try:
            parsed = build(_xlsx_rows(sheet), filename, fmt="xlsx", options=options)
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
            f"{file_label(filename)} holds {entries:,} files; a workbook has a few dozen (at "
            f"most {XLSX_MAX_PARTS:,} are accepted). Save it as CSV.",
            code="too_large",
        )


# An element's start tag, with or without a namespace prefix: <c r="A1">, <x:c>, <si/>.
_CELL_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]{0,30}:)?c[\s/>]")
_STRING_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]{0,30}:)?si[\s/>]")
_TAG_OVERLAP = 40  # longer than any tag above, so a tag cut between two chunks is found


def _check_xlsx_parts(
    archive: zipfile.ZipFile, filename: str
) -> tuple[dict[str, int], dict[str, SheetShape]]:
    """Rule 11: every part's declared and actual size within its bound, shared strings
    counted; returns the cell count of every part that is a worksheet, and the shape
    (widest row, cells once padded) of every part under xl/worksheets/.

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
    shapes: dict[str, SheetShape] = {}
    strings = total = 0
    for info in infos:
        bound = _part_bound(info.filename)
        is_xml = info.filename.lower().endswith((".xml", ".rels", ".vml"))
        size = part_cells = part_strings = 0
        tail = b""
        shape = SheetShape() if info.filename.startswith("xl/worksheets/") else None
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
                    if shape is not None:
                        shape.scan(chunk)
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
                f"{file_label(filename)} holds more than {XLSX_MAX_SHARED_STRINGS:,} different "
                "texts; a workbook of questions needs far fewer. Save it as CSV, or split it.",
                code="too_large",
            )
        if part_cells:
            cells[info.filename] = part_cells
        if shape is not None:
            shape.finish()
            shapes[info.filename] = shape
    return cells, shapes


_SHAPE_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]{0,30}:)?(row|c)(?=[\s/>])([^<>]{0,400})")
_CELL_REF = re.compile(rb'\sr\s*=\s*["\']([A-Za-z]{1,3})[0-9]')
_SHAPE_OVERLAP = 500  # longer than a row or cell start tag with its attributes


class SheetShape:
    """A worksheet's rows as openpyxl will build them, read from the cell references
    (`<c r="XFD7">`) as the part streams: the widest row (with its number) and the cells
    once every row is padded up to its last cell. Counting costs about a microsecond per
    tag; openpyxl would spend 10 to 20 per padded cell."""

    def __init__(self) -> None:
        self.rows = 0
        self.widest = 0
        self.widest_row = 0
        self.padded = 0
        self._row_width = 0
        self._tail = b""

    def scan(self, chunk: bytes) -> None:
        window = self._tail + chunk
        cut = max(len(window) - _SHAPE_OVERLAP, 0)
        for match in _SHAPE_TAG.finditer(window):
            if match.start() >= cut:
                break
            self._tag(match)
        self._tail = window[cut:]

    def finish(self) -> None:
        for match in _SHAPE_TAG.finditer(self._tail):
            self._tag(match)
        self._tail = b""
        self._end_row()

    def _tag(self, match: re.Match) -> None:
        if match.group(1) == b"row":
            self._end_row()
            self.rows += 1
            return
        ref = _CELL_REF.search(match.group(2))
        self._row_width = _column_number(ref.group(1)) if ref else self._row_width + 1

    def _end_row(self) -> None:
        if self._row_width > self.widest:
            self.widest, self.widest_row = self._row_width, max(self.rows, 1)
        self.padded += self._row_width
        self._row_width = 0


def _column_number(letters: bytes) -> int:
    number = 0
    for letter in letters.upper():
        number = number * 26 + letter - 64
    return number


def _widest(shapes: dict[str, SheetShape]) -> SheetShape | None:
    return max(shapes.values(), key=lambda shape: shape.padded, default=None)


def _check_shape(shape: SheetShape | None, filename: str) -> None:
    """Refuse a sheet whose cells reach past the column limit, or whose rows, padded up to
    their last cell as openpyxl builds them, hold more than XLSX_MAX_PADDED_CELLS cells."""
    if shape is None:
        return
    check_width(shape.widest, row=shape.widest_row)
    if shape.padded > XLSX_MAX_PADDED_CELLS:
        raise UploadError(
            f"The first worksheet of {file_label(filename)} spreads its rows over "
            f"{shape.padded:,} cells (counting the empty ones before each row's last cell); "
            f"at most {XLSX_MAX_PADDED_CELLS:,} are read. Delete unused columns, or save it "
            "as CSV.",
            code="too_large",
        )


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
        f"{file_label(filename)} unpacks to far more than a workbook of questions needs: "
        f"{where} unpacks to more than {format_size(bound)}. Save it as CSV, or split it.",
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
        yield number, [cell_text(value) for value in values[:end]]


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


def _damaged(filename: str, reason: str) -> UploadError:
    return UploadError(
        gettext(
            "%(file)s looks like an Excel workbook but cannot be read (%(reason)s). "
            "Open it in Excel and save it again, or save it as CSV."
        )
        % {"file": file_label(filename), "reason": reason},
        code="damaged_xlsx",
    )


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
