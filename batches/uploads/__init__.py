"""Upload readers: a CSV or XLSX file, or the API's JSON rows, become validated rows
(see DESIGN "Upload rules").

Which module owns what:

- `files`: parse_upload / parse_upload_file / read_upload_bytes, the size limit, the type
  judged by content, clean_filename (rules 1, 2);
- `csv_files`: CSV encoding, delimiter, separator-only lines (rule 3);
- `xlsx`: the ZIP and XML bomb checks, then the first worksheet via openpyxl (rules 4, 11);
- `json_body`: the API's JSON rows (rows_from_records) and request bodies streamed with
  ijson (read_json_body);
- `rows`: roles and their aliases, ColumnChoice, ParsedRow / ParsedUpload, building rows
  from a table (rules 5 to 7, 9) and the column chooser's preview;
- `limits`: every bound and the UploadError naming it (cell, URL, columns, characters,
  sizes, the one "too many questions" message; rules 8 to 10).

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
4. XLSX: the first worksheet, cached values of formulas (see `xlsx._xlsx_rows`), numbers and
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
    whole) are held to the bounds in `xlsx` (`XLSX_*`); the shared-string table (which
    openpyxl loads whole) and the first worksheet's cells are counted in the same pass.
    So any file the size limit allows is parsed in a few seconds and about 200 MB.

Every refusal is one UploadError with a stable `code` and a message for a person.
"""

from __future__ import annotations

from batches.errors import JsonBodyError, UploadError
from batches.uploads.files import (
    clean_filename,
    parse_upload,
    parse_upload_file,
    read_upload_bytes,
)
from batches.uploads.json_body import read_json_body, rows_from_records
from batches.uploads.limits import (
    BAD_CHARACTERS,
    MAX_CELL_CHARS,
    MAX_COLUMNS,
    MAX_URL_CHARS,
    format_size,
    too_many_rows,
)
from batches.uploads.rows import (
    ACCEPTED_QUESTION_HEADERS,
    AUTO,
    PREVIEW_ROWS,
    QUESTION_ALIASES,
    ROLE_ALIASES,
    ROLES,
    URL_ALIASES,
    ColumnChoice,
    ParsedRow,
    ParsedUpload,
    alias_key,
    find_alias,
)

__all__ = [
    "ACCEPTED_QUESTION_HEADERS",
    "AUTO",
    "BAD_CHARACTERS",
    "MAX_CELL_CHARS",
    "MAX_COLUMNS",
    "MAX_URL_CHARS",
    "PREVIEW_ROWS",
    "QUESTION_ALIASES",
    "ROLES",
    "ROLE_ALIASES",
    "URL_ALIASES",
    "ColumnChoice",
    "JsonBodyError",
    "ParsedRow",
    "ParsedUpload",
    "UploadError",
    "alias_key",
    "clean_filename",
    "find_alias",
    "format_size",
    "parse_upload",
    "parse_upload_file",
    "read_json_body",
    "read_upload_bytes",
    "rows_from_records",
    "too_many_rows",
]
