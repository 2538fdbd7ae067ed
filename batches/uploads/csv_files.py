"""CSV files: encoding, delimiter and records, read with the stdlib `csv` module.

Owns rule 3 of the upload rules (see `batches.uploads`): the encoding (BOM, UTF-8,
Windows-1252), the delimiter (Excel's `sep=` line, csv.Sniffer checked against the
header line, or none for a one-column file), text that is really HTML or binary, and
lines of separators only, which are blank rows. The records go to `rows.build`.
(Named csv_files, not csv, so that it is never mistaken for the stdlib module.)
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterable, Iterator

from django.utils.translation import gettext

from batches.errors import UploadError
from batches.uploads.limits import file_label, not_tabular
from batches.uploads.rows import Options, ParsedUpload, build

DELIMITERS = ",;\t"
# Never occurs in accepted text (NUL bytes are refused as binary), so a one-column CSV
# keeps commas inside its questions.
NO_SPLIT = "\x00"
SNIFF_CHARS = 16_384


def parse_csv(data: bytes, filename: str, options: Options) -> ParsedUpload:
    encoding = _csv_encoding(data, filename)
    sample = _decode_sample(data, encoding)
    stripped = sample.lstrip("\ufeff \t\r\n").lower()
    if stripped.startswith(("<!doctype html", "<html")):
        raise not_tabular(filename, gettext("an HTML page"))
    control = sum(1 for ch in sample if ch < " " and ch not in "\t\r\n")
    if control > max(2, len(sample) // 100):
        raise UploadError(
            gettext("%(file)s looks like a binary file, not CSV or XLSX text.")
            % {"file": file_label(filename)},
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
        parsed = build(
            _separator_lines_blank(_numbered(reader)), filename, fmt="csv", options=options
        )
    except csv.Error as exc:
        raise UploadError(
            gettext(
                "%(file)s is not valid CSV near line %(line)s: %(error)s. "
                "An unclosed double quote is the usual cause."
            )
            % {"file": file_label(filename), "line": reader.line_num, "error": exc},
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
            % {"file": file_label(filename)},
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
            % {"file": file_label(filename), "byte": f"0x{data[exc.start]:02X}", "line": line},
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
    whitespace: the header, as `build` finds it. A leading `,,` line (an empty
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
