"""Hostile uploads: ZIP bombs, rows past the limit, characters no database stores.

The workbooks are built here, in code, from the small good.xlsx: a part is replaced by a
stream written chunk by chunk, so a test never holds the unpacked bomb in memory.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from batches.errors import JsonBodyError, UploadError
from batches.uploads import (
    MAX_CELL_CHARS,
    ColumnChoice,
    parse_upload,
    read_json_body,
    rows_from_records,
    xlsx,
)

DATA = Path(__file__).parent / "data"
GOOD = (DATA / "good.xlsx").read_bytes()
SHEET = "xl/worksheets/sheet1.xml"
STRINGS = "xl/sharedStrings.xml"


def workbook_with(part: str, head: bytes, repeated: bytes, times: int, tail: bytes) -> bytes:
    """good.xlsx with `part` replaced by head + repeated * times + tail, streamed."""
    source = zipfile.ZipFile(io.BytesIO(GOOD))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for name in source.namelist():
            if name != part:
                target.writestr(name, source.read(name))
        info = zipfile.ZipInfo(part)
        info.compress_type = zipfile.ZIP_DEFLATED
        with target.open(info, "w") as stream:
            stream.write(head)
            block = repeated * 10_000
            for _ in range(times // 10_000):
                stream.write(block)
            stream.write(repeated * (times % 10_000))
            stream.write(tail)
    return out.getvalue()


def shared_strings_bomb(count: int) -> bytes:
    head = b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    return workbook_with(STRINGS, head, b"<si><t>a</t></si>", count, b"</sst>")


def sheet_of(rows: int, row_xml: bytes) -> bytes:
    head = (
        b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        b'<sheetData><row><c t="inlineStr"><is><t>question</t></is></c></row>'
    )
    return workbook_with(SHEET, head, row_xml, rows, b"</sheetData></worksheet>")


@pytest.fixture
def no_openpyxl(monkeypatch):
    """Proof that a refusal came before openpyxl read anything."""

    def refuse(*args, **kwargs):
        raise AssertionError("openpyxl was asked to load a workbook that should be refused")

    monkeypatch.setattr("openpyxl.load_workbook", refuse)


def refused(data: bytes, name: str = "hostile.xlsx") -> UploadError:
    with pytest.raises(UploadError) as info:
        parse_upload(data=data, filename=name)
    return info.value


# --- XLSX: ZIP bombs -----------------------------------------------------------------------


def test_a_shared_string_table_larger_than_any_sheet_needs_is_refused_before_openpyxl(
    no_openpyxl,
):
    data = shared_strings_bomb(xlsx.XLSX_MAX_SHARED_STRINGS + 1)
    assert len(data) < 100_000  # 5 MB of XML in a few KB

    error = refused(data)

    assert error.code == "too_large"
    assert f"more than {xlsx.XLSX_MAX_SHARED_STRINGS:,} different texts" in error.message


def test_a_sheet_with_more_cells_than_the_limit_is_refused_before_it_is_parsed(monkeypatch):
    # 40,000 rows of 10 tiny cells: 400,001 cells in 200 KB.
    data = sheet_of(40_000, b"<row>" + b"<c><v>1</v></c>" * 10 + b"</row>")
    parsed_rows = []
    monkeypatch.setattr(xlsx, "_xlsx_rows", lambda sheet: parsed_rows.append(sheet) or iter(()))

    error = refused(data)

    assert error.code == "too_large"
    assert "400,001 cells" in error.message and "200,000" in error.message
    assert parsed_rows == []


def test_a_padded_row_workbook_is_refused_from_its_cell_references(monkeypatch):
    # The adversarial pass's file: 199,990 rows each holding one empty cell at column XFD.
    # openpyxl padded every row to 16,384 cells (144 s of CPU); now refused unread.
    data = sheet_of(199_990, b'<row><c r="XFD1"/></row>')
    parsed_rows = []
    monkeypatch.setattr(xlsx, "_xlsx_rows", lambda sheet: parsed_rows.append(sheet) or iter(()))

    error = refused(data)

    # Refused unread: openpyxl never builds a row (the behaviour that kept it from
    # spending minutes padding cells; no CPU-time bound, which a loaded machine breaks).
    assert error.code == "too_many_columns"
    assert "16,384 columns" in error.message and "500" in error.message
    assert parsed_rows == []


def test_rows_padded_past_the_cell_bound_are_refused_before_openpyxl_builds_them(monkeypatch):
    # Within the column limit, but 2,000 rows padded to column 400 are 800,000 cells.
    data = sheet_of(2_000, b'<row><c r="A2"><v>1</v></c><c r="OJ2"><v>1</v></c></row>')
    parsed_rows = []
    monkeypatch.setattr(xlsx, "_xlsx_rows", lambda sheet: parsed_rows.append(sheet) or iter(()))

    error = refused(data)

    assert error.code == "too_large"
    assert f"{xlsx.XLSX_MAX_PADDED_CELLS:,}" in error.message
    assert parsed_rows == []


def test_a_part_declared_larger_than_its_bound_is_refused_unread(no_openpyxl, monkeypatch):
    data = workbook_with("xl/styles.xml", b"<styleSheet>", b" " * 1000, 5_000, b"</styleSheet>")
    opened = []
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda *a, **k: opened.append(a[1]))

    error = refused(data)

    assert error.code == "too_large"
    assert "xl/styles.xml unpacks to more than 4 MB" in error.message
    assert opened == []  # refused on the declared size: nothing decompressed


def test_a_part_that_unpacks_to_more_than_it_declares_is_refused(no_openpyxl):
    part = "xl/styles.xml"
    data = bytearray(workbook_with(part, b"<a>", b" " * 1000, 1_000, b"</a>"))
    # Declare 1,000 bytes in the central directory (it unpacks to 1 MB): reading stops at
    # the declared size, and the checksum shows the lie.
    patched = 0
    for offset in _central_entries(bytes(data)):
        name_length = int.from_bytes(data[offset + 28 : offset + 30], "little")
        if data[offset + 46 : offset + 46 + name_length] == part.encode():
            assert int.from_bytes(data[offset + 24 : offset + 28], "little") == 1_000_007
            data[offset + 24 : offset + 28] = (1_000).to_bytes(4, "little")
            patched += 1
    assert patched == 1

    error = refused(bytes(data))

    assert error.code == "damaged_xlsx"
    assert "xl/styles.xml" in error.message


def _central_entries(data: bytes):
    offset = data.find(b"PK\x01\x02")
    while offset >= 0:
        yield offset
        offset = data.find(b"PK\x01\x02", offset + 4)


def test_a_zip_of_thousands_of_parts_is_refused_before_zipfile_reads_its_directory(
    no_openpyxl,
):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        target.writestr("xl/workbook.xml", b"<workbook/>")
        for number in range(xlsx.XLSX_MAX_PARTS + 1):
            target.writestr(f"x/{number}", b"")
    error = refused(out.getvalue())
    assert error.code == "too_large" and "1,002 files" in error.message


@pytest.mark.slow
@pytest.mark.parametrize(
    "make",
    [
        # The adversarial pass: 25 million tiny strings (425 MB unpacked) in about 1 MB...
        lambda: shared_strings_bomb(25_000_000),
        # ... and a 520 MB sheet in 1.7 MB.
        lambda: sheet_of(4_000_000, b"<row><c><v>1</v></c><c><v>2</v></c><c><v>3</v></c></row>"),
    ],
    ids=["shared-strings", "sheet"],
)
def test_the_bombs_of_the_adversarial_pass_are_refused_without_openpyxl(no_openpyxl, make):
    error = refused(make())
    assert error.code == "too_large"


# --- Rows: reading stops at the limit ------------------------------------------------------


def test_csv_reading_stops_at_the_first_question_over_the_limit(settings):
    settings.MAX_BATCH_ITEMS = 5
    # Row 8 would be refused for its cell: it is never read.
    lines = [f"Question {n}?" for n in range(6)] + ["x" * (MAX_CELL_CHARS + 1)]
    data = ("question\n" + "\n".join(lines) + "\n").encode()

    error = refused(data, "many.csv")

    assert error.code == "too_many_rows"
    assert "more than 5 questions" in error.message


def test_rows_with_empty_questions_stop_reading_at_the_limit_too(settings):
    settings.MAX_BATCH_ITEMS = 3
    data = b"question,note\n" + b",x\n" * 10 + ("y" * 40_000).encode() + b"\n"

    error = refused(data, "empty.csv")

    assert error.code == "empty_question"
    assert "Rows 2, 3, 4, 5 and more" in error.message


def test_xlsx_reading_stops_at_the_first_question_over_the_limit(settings, monkeypatch):
    settings.MAX_BATCH_ITEMS = 3
    data = sheet_of(20, b'<row><c t="inlineStr"><is><t>Why?</t></is></c></row>')
    yielded = []
    real = xlsx._xlsx_rows

    def counting(sheet):
        for row in real(sheet):
            yielded.append(row)
            yield row

    monkeypatch.setattr(xlsx, "_xlsx_rows", counting)

    error = refused(data)

    assert error.code == "too_many_rows"
    assert len(yielded) == 1 + 4  # the header and the limit + 1 questions


# --- Characters no database stores ---------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "what"),
    [("a\x00b", "NUL character (U+0000)"), ("a\ud800b", "unpaired surrogate (U+D800)")],
)
def test_json_rows_with_a_nul_or_a_lone_surrogate_are_refused_naming_row_and_column(cell, what):
    with pytest.raises(UploadError) as info:
        rows_from_records([{"question": "Fine?"}, {"question": "Also fine?", "note": cell}])
    assert info.value.code == "bad_characters"
    assert (info.value.row, info.value.column) == (1, "note")
    assert 'rows[1], column "note"' in info.value.message and what in info.value.message


def test_a_json_key_with_a_lone_surrogate_is_refused():
    with pytest.raises(UploadError) as info:
        rows_from_records([{"question": "Fine?", "n\ud800": "x"}])
    assert info.value.code == "bad_characters" and "column name" in info.value.message


def test_a_utf16_csv_with_a_nul_character_is_refused_naming_row_and_column():
    data = "question,note\nFine?,ok\nBad?,a\x00b\n".encode("utf-16")
    error = refused(data, "nul.csv")
    assert error.code == "bad_characters"
    assert (error.row, error.column) == (3, "note")


def test_a_nul_in_a_header_is_refused():
    data = "question,no\x00te\nFine?,ok\n".encode("utf-16")
    error = refused(data, "nul.csv")
    assert error.code == "bad_characters" and error.row == 1


# --- JSON bodies: checked while read -------------------------------------------------------


def test_json_rows_stop_being_read_at_the_first_row_over_the_limit(settings):
    settings.MAX_BATCH_ITEMS = 3
    rows = b",".join(b'{"question": "Q%d?"}' % n for n in range(4))
    # What follows the fourth question is never read: not even its syntax.
    body = b'{"name": "x", "rows": [' + rows + b", this is not JSON"

    with pytest.raises(UploadError) as info:
        read_json_body(body)

    assert info.value.code == "too_many_rows" and info.value.row == 3


def test_a_json_row_with_more_keys_than_columns_allowed_is_refused():
    record = {"question": "Wide?", **{f"k{n}": n for n in range(100_000)}}
    with pytest.raises(UploadError) as info:
        rows_from_records([record])
    assert info.value.code == "too_many_columns"
    assert "rows[0]" in info.value.message and "500" in info.value.message


def test_json_rows_using_more_distinct_keys_than_columns_allowed_are_refused():
    records = [{"question": f"Q{n}?", **{f"k{n}-{i}": "x" for i in range(10)}} for n in range(60)]
    with pytest.raises(UploadError) as info:
        rows_from_records(records)
    assert info.value.code == "too_many_columns"
    assert info.value.row == 49  # the entry whose keys pass 500 columns in all


def test_the_json_body_reader_gives_fields_and_rows():
    fields, rows = read_json_body(
        '\ufeff{"name": "N", "rows": [{"question": "A?"}, {"prompt": "B?", "url": "u"}],'
        ' "applyOverrides": true}'.encode()
    )
    assert fields == {"name": "N", "applyOverrides": True}
    assert [(r.question, r.referring_url) for r in rows(ColumnChoice())] == [
        ("A?", ""),
        ("B?", "u"),
    ]


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"[1, 2]", b'{"rows": [{"question": "A?"}', b'{"a": 1} x', b"[" * 100_000],
)
def test_the_json_body_reader_refuses_what_is_not_one_object(body):
    with pytest.raises(JsonBodyError):
        read_json_body(body)


def test_deep_nesting_in_a_row_is_refused_as_a_bad_body():
    body = b'{"rows": [{"question": "A?", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}]}"
    with pytest.raises(JsonBodyError) as info:
        read_json_body(body)
    assert "nested too deeply" in str(info.value)


def test_a_json_row_of_many_keys_in_a_body_is_refused_with_its_count():
    record = {"question": "Wide?", **{f"k{n}": n for n in range(100_000)}}
    body = json.dumps({"rows": [record]}).encode()
    with pytest.raises(UploadError) as info:
        read_json_body(body)
    assert info.value.code == "too_many_columns" and info.value.row == 0
    assert "rows[0] has an object of 100,001 keys" in info.value.message


def test_a_field_holding_an_object_of_many_keys_is_a_bad_body():
    body = json.dumps({"name": {f"k{n}": n for n in range(600)}, "rows": []}).encode()
    with pytest.raises(JsonBodyError) as info:
        read_json_body(body)
    assert str(info.value) == "`name` has 600 keys."


@pytest.mark.parametrize("tail", [b' "unclosed', b' "', b' "a\\\\', b" x", b" {}"])
def test_anything_after_the_object_is_a_bad_body(tail):
    with pytest.raises(JsonBodyError):
        read_json_body(b'{"rows": [{"question": "A?"}]}' + tail)


def test_json_values_become_the_text_json_loads_gives():
    # A surrogate pair, an integer beyond 64 bits (which yajl refuses: the pure-Python
    # backend reads it), floats as floats, nested values as JSON.
    body = (
        b'{"rows": [{"question": "Emoji \\ud83d\\ude00?", "big": 123456789012345678901234567890,'
        b' "f": 1.5, "e": 1e3, "nested": [1, {"a": null}], "t": true}]}'
    )
    fields, rows = read_json_body(body)
    (row,) = rows(ColumnChoice())
    assert row.question == "Emoji \U0001f600?"
    assert row.columns == {
        "question": "Emoji \U0001f600?",
        "big": "123456789012345678901234567890",
        "f": "1.5",
        "e": "1000",
        "nested": '[1, {"a": null}]',
        "t": "true",
    }
