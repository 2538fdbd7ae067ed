"""JSON rows: the API's `rows` (a list of objects), and JSON request bodies read with ijson.

Owns the rules a JSON row follows (`rows_from_records`: the same aliases, blank-row and
empty-question rules and limits as a file; errors name the entry, `rows[3]`) and the
reading of a create request's body (`read_json_body`), which never holds the whole body
as Python objects:

1. the body must be UTF-8 (or UTF-16/32 with the encoding json.detect_encoding finds)
   and start with `{`;
2. ijson turns it into a stream of events (its C backend, yajl2_c, when installed);
   `_value` builds each field and each entry of `rows` from those events, one at a time,
   holding any object to MAX_COLUMNS keys (a wider one is read to its end, its keys
   counted and its values dropped, and refused) and any value to MAX_JSON_DEPTH levels;
3. a first pass counts the entries of `rows` (keys per entry, distinct keys, questions):
   reading stops at the first entry over a limit, whatever follows; the other fields
   are kept;
4. the returned reader makes the rows in a second pass, given the column choice that the
   fields name (`columns` may come after `rows` in the body): the rows are built as the
   entries stream, and no list of decoded entries ever exists.

ijson's events are consumed by `_value` rather than by `ijson.items`, because items
builds every object whole, whatever its number of keys or its depth. yajl2_c turns an
unpaired surrogate escape (`\\ud800`) into "?" or a decoding error and refuses integers
beyond 64 bits; a body holding the first, or refused for the second, is read with
ijson's pure-Python backend, which follows the json module (rule 10 then names the row).
"""

from __future__ import annotations

import codecs
import functools
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import ijson
from django.conf import settings

from batches.errors import JsonBodyError, UploadError
from batches.uploads.limits import (
    MAX_COLUMNS,
    MAX_JSON_DEPTH,
    READ_CHUNK,
    check_cells,
    printable,
    too_many_rows,
    too_wide,
)
from batches.uploads.rows import (
    ACCEPTED_QUESTION_HEADERS,
    AUTO,
    ColumnChoice,
    ParsedRow,
    cell_text,
    make_row,
)

try:
    FAST_BACKEND = ijson.get_backend("yajl2_c")
except ImportError:  # no compiler when ijson was installed: the best one it found
    FAST_BACKEND = ijson
PYTHON_BACKEND = ijson.get_backend("python")

NOT_JSON = "The request body is not valid JSON: send a JSON object."
NOT_AN_OBJECT = "Send a JSON object with `rows`."
TOO_DEEP = "The request body is nested too deeply to be read."
_WHITESPACE = re.compile(rb"[ \t\n\r]*")
# \uD800-\uDBFF not followed by \uDC00-\uDFFF, or the second without the first. (An escaped
# backslash before "ud800" matches too: that body is only read more slowly.)
_LONE_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)

RowsReader = Callable[[ColumnChoice], list[ParsedRow]]


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


def read_json_body(body: bytes) -> tuple[dict[str, Any], RowsReader | None]:
    """The fields of a JSON create request, and a reader of its `rows`, checked while
    they are read (see the module docstring). Returns (other fields, the rows' reader or
    None when there is no `rows`). Raises JsonBodyError (not one JSON object) or
    UploadError (a row or the rows refused)."""
    data, start = _utf8(body)
    start = _WHITESPACE.match(data, start).end()
    if data[start : start + 1] != b"{":
        raise JsonBodyError(NOT_AN_OBJECT)
    backend = PYTHON_BACKEND if _has_lone_surrogate(data, start) else FAST_BACKEND

    def count(occurrence: int) -> Callable[[int, object], None]:
        return _RowCounter().add  # each `rows` of the body counted on its own

    try:
        try:
            fields, rows = _walk(_events(backend, data, start), count)
        except (ijson.JSONError, UnicodeDecodeError) as exc:
            if backend is PYTHON_BACKEND or not _fast_backend_gave_up(exc):
                raise
            backend = PYTHON_BACKEND
            fields, rows = _walk(_events(backend, data, start), count)
    except _TooDeep:
        raise JsonBodyError(TOO_DEEP) from None
    except (JsonBodyError, UploadError):
        raise
    except (ijson.JSONError, ValueError, StopIteration):
        raise JsonBodyError(NOT_JSON) from None
    if isinstance(rows, _Streamed):
        return fields, functools.partial(_read_rows, backend, data, start, rows.occurrence)
    if rows is _MISSING:
        return fields, None
    return fields, functools.partial(_records_rows, rows)


def _utf8(body: bytes) -> tuple[bytes, int]:
    """The body as UTF-8 and where its text starts (after any BOMs); JsonBodyError when
    it is not text. UTF-8 is checked in chunks, so no str of the whole body is made."""
    try:
        encoding = json.detect_encoding(body) if body else "utf-8"
        if encoding in ("utf-8", "utf-8-sig"):
            decoder = codecs.getincrementaldecoder("utf-8")()
            view = memoryview(body)
            for offset in range(0, len(view), READ_CHUNK):
                decoder.decode(view[offset : offset + READ_CHUNK], offset + READ_CHUNK >= len(view))
            data = body
        else:  # UTF-16 or UTF-32: rare enough to be transcoded whole
            data = body.decode(encoding).encode("utf-8")
    except (UnicodeDecodeError, LookupError):
        raise JsonBodyError(NOT_JSON) from None
    start = 0
    while data.startswith(codecs.BOM_UTF8, start):
        start += len(codecs.BOM_UTF8)
    return data, start


def _has_lone_surrogate(data: bytes, start: int) -> bool:
    # find() scans in C; the regex, which has no literal prefix to look for, runs only
    # when a surrogate escape is there at all.
    return (data.find(b"\\ud", start) >= 0 or data.find(b"\\uD", start) >= 0) and bool(
        _LONE_SURROGATE.search(data, start)
    )


def _fast_backend_gave_up(exc: Exception) -> bool:
    """yajl2_c refused what the json module reads: an integer beyond 64 bits, or text
    that is not UTF-8 after an escape was decoded."""
    return isinstance(exc, UnicodeDecodeError) or "integer overflow" in str(exc)


# Read after the body as a second JSON value. yajl accepts an unclosed string after a
# complete value (`{} "abc`: it waits for the rest of the token), so the body is read in
# multiple-values mode with this value after it: the body is one object iff the only
# value after that object is this empty string (an unclosed string swallows its quote).
_SENTINEL = b' ""'


class _BodyStream:
    """The body from `start`, then _SENTINEL, as a file for ijson (no copy of the body)."""

    def __init__(self, data: bytes, start: int) -> None:
        self.view = memoryview(data)[start:]
        self.position = 0
        self.sentinel_sent = False

    def read(self, size: int = -1) -> bytes:
        if self.position < len(self.view):
            end = len(self.view) if size < 0 else self.position + size
            chunk = bytes(self.view[self.position : end])
            self.position += len(chunk)
            return chunk
        if not self.sentinel_sent:
            self.sentinel_sent = True
            return _SENTINEL
        return b""


def _events(backend, data: bytes, start: int) -> Iterator[tuple[str, Any]]:
    stream = _BodyStream(data, start)
    # use_float: floats, as json.loads gives them (not Decimal).
    return backend.basic_parse(stream, use_float=True, multiple_values=True)


class _Streamed:
    """`rows` was an array, read entry by entry: which `rows` of the body (a key may
    repeat; the last one wins, as in a dict)."""

    def __init__(self, occurrence: int) -> None:
        self.occurrence = occurrence


_MISSING = object()


def _walk(
    events: Iterator[tuple[str, Any]],
    start_rows: Callable[[int], Callable[[int, object], None] | None],
    *,
    keep_fields: bool = True,
) -> tuple[dict[str, Any], object]:
    """The top-level object: each entry of an array `rows` is built and handed to the
    adder that `start_rows(occurrence)` gives for that `rows` (None: skipped), then
    dropped; other fields are built (or skipped unless `keep_fields`). Returns (fields,
    `rows`: a _Streamed, the value of a `rows` that is not an array, or _MISSING).
    StopIteration, should the events end early, is for the caller to turn into an error.
    """
    next(events)  # "{": read_json_body saw it
    fields: dict[str, Any] = {}
    rows: object = _MISSING
    occurrence = 0
    while True:
        event, key = next(events)
        if event == "end_map":
            break
        event, value = next(events)
        if key == "rows" and event == "start_array":
            occurrence += 1
            add = start_rows(occurrence)
            if add is None:
                _skip(events, event)
            else:
                index = 0
                while (entry := next(events))[0] != "end_array":
                    try:
                        record = _value(events, *entry)
                    except _Wide as exc:
                        raise too_wide(exc.count, f"rows[{index}]", row=index) from None
                    add(index, record)
                    index += 1
            rows = _Streamed(occurrence)
            continue
        if not keep_fields:
            _skip(events, event)
            continue
        try:
            value = _value(events, event, value)
        except _Wide as exc:
            if key == "rows":
                raise too_wide(exc.count, "rows") from None
            raise JsonBodyError(f"`{key}` has {exc.count:,} keys.") from None
        if key == "rows":
            rows = value
        else:
            fields[key] = value
    if next(events, None) != ("string", "") or next(events, None) is not None:
        raise ValueError("extra data after the object")  # see _SENTINEL
    return fields, rows


def _skip(events: Iterator[tuple[str, Any]], event: str) -> None:
    """Past the value that starts with `event`, building nothing (the second pass: the
    first found it sound)."""
    if event != "start_map" and event != "start_array":
        return
    depth = 1
    for event, _ in events:
        if event == "start_map" or event == "start_array":
            depth += 1
        elif event == "end_map" or event == "end_array":
            depth -= 1
            if not depth:
                return


class _Wide(Exception):
    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.count = count


class _TooDeep(Exception):
    pass


def _value(events: Iterator[tuple[str, Any]], event: str, value: Any) -> Any:
    """The JSON value that starts with (event, value), built from the events after it.

    Any object (nested ones too) of more than MAX_COLUMNS keys raises _Wide with its
    count once it ends; past that many keys its values are dropped, so a row of 100,000
    keys costs no more memory than one of 500. More than MAX_JSON_DEPTH arrays and
    objects inside one another raises _TooDeep. A stack, not recursion, holds the levels.
    """
    if event == "start_map":
        root: Any = {}
    elif event == "start_array":
        root = []
    else:
        return value
    # One level: [container, its current key, keys seen].
    stack: list[list[Any]] = [[root, None, 0]]
    for event, value in events:
        top = stack[-1]
        if event == "map_key":
            top[1] = value
            top[2] += 1
            continue
        if event == "end_map" or event == "end_array":
            done = stack.pop()
            if done[2] > MAX_COLUMNS:
                raise _Wide(done[2])
            if not stack:
                return root
            continue  # attached to its parent when it started
        if event == "start_map" or event == "start_array":
            if len(stack) >= MAX_JSON_DEPTH:
                raise _TooDeep
            value = {} if event == "start_map" else []
            stack.append([value, None, 0])
        container = top[0]
        if type(container) is list:
            container.append(value)
        elif top[2] <= MAX_COLUMNS:
            container[top[1]] = value
    raise StopIteration  # the events ended inside the value


def _records_rows(records: object, columns: ColumnChoice) -> list[ParsedRow]:
    return rows_from_records(records, columns=columns)


def _read_rows(
    backend, data: bytes, start: int, occurrence: int, columns: ColumnChoice
) -> list[ParsedRow]:
    """The second pass: the rows of the `occurrence`-th `rows`, made as the entries
    stream (the first pass found the body sound and within the limits)."""
    builder = _RecordRows(columns=columns)
    _walk(
        _events(backend, data, start),
        lambda seen: builder.add if seen == occurrence else None,
        keep_fields=False,
    )
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
                    f'(a new one: "{printable(str(key))[:100]}"); each key becomes a '
                    f"column, and at most {MAX_COLUMNS:,} columns are accepted.",
                    code="too_many_columns",
                    row=index,
                    column=printable(str(key)),
                )


class _RowCounter:
    """The first pass over `rows`: entries, keys and rows counted, nothing kept."""

    def __init__(self) -> None:
        self.keys: dict[str, None] = {}
        self.rows = 0
        self.limit = settings.MAX_BATCH_ITEMS

    def add(self, index: int, record: object) -> None:
        if type(record) is not dict or not record:
            return  # not a row (the second pass says what is wrong with it), or blank
        _count_keys(self.keys, record, label=f"rows[{index}]", index=index)
        if any(str(value).strip() for value in record.values() if value is not None):
            self.rows += 1
            if self.rows > self.limit:  # refused whatever follows: stop reading
                raise too_many_rows(what="`rows`", row=index)


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
            raise too_wide(len(record), label, row=index)
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
        check_cells(columns, row_label=label, row=index)
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
            raise too_many_rows(what="`rows`", row=index)
        headers = list(columns)
        self.rows.append(make_row(question, columns, headers, roles, row_label=label, row=index))

    def finish(self) -> list[ParsedRow]:
        if not self.rows:
            raise UploadError("`rows` holds no questions.", code="empty")
        return self.rows


def _json_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return cell_text(value)
