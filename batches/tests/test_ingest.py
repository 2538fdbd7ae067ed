"""Upload parsing against the files in batches/tests/data (written by make_files.py)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from batches.errors import UploadError
from batches.uploads import (
    MAX_CELL_CHARS,
    ColumnChoice,
    ParsedRow,
    parse_upload,
    parse_upload_file,
    rows_from_records,
    xlsx,
)

DATA = Path(__file__).parent / "data"


def parse(name: str, *, as_name: str | None = None):
    return parse_upload(data=(DATA / name).read_bytes(), filename=as_name or name)


def refused(name: str, **kwargs) -> UploadError:
    with pytest.raises(UploadError) as info:
        parse(name, **kwargs)
    return info.value


# --- Good files --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "questions", "encoding", "delimiter"),
    [
        (
            "utf8.csv",
            [
                "How do I renew my passport?",
                "Où puis-je trouver mon numéro d’assurance sociale?",
                "Is the 😀 emoji kept?",
            ],
            "utf-8",
            ",",
        ),
        ("utf8_bom.csv", ["When is the tax deadline?", "What is EI?"], "utf-8-sig", ","),
        (
            "utf16_le_bom.csv",
            ["Combien coûte un passeport?", "What is the GST rate?"],
            "utf-16",
            "\t",
        ),
        ("utf16_be_bom.csv", ["Ça marche en big-endian?"], "utf-16", ","),
        (
            "cp1252_accents.csv",
            ["Où est le bureau de Montréal?", "Qu’est-ce que la TPS?"],
            "cp1252",
            ",",
        ),
        ("semicolon.csv", ["How do I apply, and when?", "What is the fee"], "utf-8", ";"),
        ("tab.tsv", ["What is a SIN, exactly?"], "utf-8", "\t"),
        ("one_column.csv", ["What is X, and why?", "A second; with semicolon"], "utf-8", ""),
    ],
)
def test_csv_encodings_and_delimiters_give_the_questions(name, questions, encoding, delimiter):
    parsed = parse(name)
    assert parsed.format == "csv"
    assert [row.question for row in parsed.rows] == questions
    assert parsed.encoding == encoding
    assert parsed.delimiter == delimiter


def test_bom_does_not_leak_into_the_first_header():
    parsed = parse("utf8_bom.csv")
    assert parsed.columns == ["Question", "Department"]
    assert parsed.rows[1].columns == {"Question": "What is EI?", "Department": "ESDC"}


def test_cp1252_keeps_accents_and_typographic_characters_in_every_column():
    parsed = parse("cp1252_accents.csv")
    assert parsed.rows[0].columns["note"] == "“guillemets” – tiret"
    assert parsed.rows[1].columns["note"] == "café €5"


def test_semicolon_file_keeps_unquoted_commas_inside_cells():
    row = parse("semicolon.csv").rows[0]
    assert row.columns == {
        "Question": "How do I apply, and when?",
        "URL": "https://example.ca/apply",
        "Note": "a, b",
    }
    assert row.referring_url == "https://example.ca/apply"


def test_quoted_newlines_and_doubled_quotes_stay_in_one_cell():
    rows = parse("quoted_newlines.csv").rows
    assert [r.question for r in rows] == [
        "First line\r\nsecond line, with comma",
        'He said "hello"',
    ]
    assert [r.referring_url for r in rows] == ["https://example.ca/a", "https://example.ca/b"]


def test_delimiter_inside_a_quoted_header_does_not_fool_the_sniffer():
    data = b'Question;"Notes, free text"\n"A, b";x, y\nC, d;z\n'
    parsed = parse_upload(data=data)
    assert parsed.delimiter == ";"
    assert parsed.columns == ["Question", "Notes, free text"]
    assert [r.question for r in parsed.rows] == ["A, b", "C, d"]


def test_header_line_overrules_a_wrong_sniffer_guess():
    # csv.Sniffer alone answers "," here: it sees `, "yes",` as a quoted field.
    data = b'question;note\nHe said, "yes", twice;a\nShe said, "no", once;b\n'
    parsed = parse_upload(data=data)
    assert parsed.delimiter == ";"
    assert [r.question for r in parsed.rows] == ['He said, "yes", twice', 'She said, "no", once']
    assert parsed.rows[1].columns["note"] == "b"


def test_excel_sep_line_sets_the_delimiter_and_is_not_a_row():
    parsed = parse_upload(data=(DATA / "excel_sep_line.csv").read_bytes()[:-5])
    assert parsed.delimiter == ";"
    assert parsed.columns == ["question", "note"]
    assert [r.question for r in parsed.rows] == ["What, exactly?"]
    # Excel hides the sep line, so the header is row 1 and the next rows count from 2.
    error = refused("excel_sep_line.csv")
    assert error.code == "empty_question" and error.row == 3


@pytest.mark.parametrize(
    ("name", "question_column", "question", "url", "chat_key"),
    [
        (
            "alias_redactedquestion.csv",
            "RedactedQuestion",
            "What is XXX's benefit?",
            "https://example.ca/x",
            "",
        ),
        ("alias_problem_details.csv", "Problem Details", "The form will not submit", "", ""),
        ("alias_prompt.csv", "prompt", "Summarise the EI rules", "", ""),
        (
            "alias_question_spaces.csv",
            "QUESTION",
            "What is the CPP?",
            "https://example.ca/cpp",
            "c1",
        ),
        # question beats redactedquestion beats prompt, wherever they stand.
        ("alias_priority.csv", "Question", "from question", "", ""),
    ],
)
def test_question_url_and_chat_id_aliases(name, question_column, question, url, chat_key):
    parsed = parse(name)
    row = parsed.rows[0]
    assert parsed.question_column == question_column
    assert (row.question, row.referring_url, row.chat_key) == (question, url, chat_key)


def test_alias_file_keeps_every_column_by_its_original_header():
    parsed = parse("alias_priority.csv")
    assert parsed.columns == ["prompt", "Redacted_Question", "Question"]
    assert parsed.rows[0].columns == {
        "prompt": "from prompt",
        "Redacted_Question": "from redacted",
        "Question": "from question",
    }


def test_chat_id_is_carried_per_row_in_file_order():
    rows = parse("chatid_grouping.csv").rows
    assert [(r.chat_key, r.question) for r in rows] == [
        ("a", "What is EI?"),
        ("b", "How do I file taxes?"),
        ("a", "How long does it last?"),
        ("", "A lone question"),
        ("a", "And how do I apply?"),
    ]


def test_extra_duplicate_empty_and_overflow_columns_are_named_and_kept():
    parsed = parse("extra_columns.csv")
    assert parsed.columns == [
        "question",
        "name",
        "name (2)",
        "column 4",
        "department",
        "column 5",
        "column 7",
    ]
    first, short, long = (r.columns for r in parsed.rows)
    assert first == {
        "question": "What is EI?",
        "name": "Ann",
        "name (2)": "Bob",
        "column 4": "unnamed value",
        "department": "ESDC",
        "column 5": "x",
        "column 7": "",
    }
    assert short["name"] == "Cy" and short["department"] == "" and len(short) == 7
    assert long["column 7"] == "beyond the header"
    assert "column 6" not in long  # an empty overflow cell names no column


def test_blank_rows_are_skipped_and_counted():
    parsed = parse("blank_rows.csv")
    assert [r.question for r in parsed.rows] == ["First?", "Second?"]
    assert parsed.skipped_blank == 4
    assert parsed.columns == ["question", "url", "note"]


@pytest.mark.parametrize("line", [",", ",,", ";", ";;", ", ;\t", " , "])
def test_a_line_of_separators_in_a_one_column_file_is_blank(line):
    data = f"question\nFirst?\n{line}\r\nSecond, with a comma?\n{line}\n".encode()

    parsed = parse_upload(data=data)

    assert parsed.delimiter == ""  # one column: lines are not split
    assert [r.question for r in parsed.rows] == ["First?", "Second, with a comma?"]
    assert parsed.skipped_blank == 2


def test_separator_lines_are_blank_in_the_column_chooser_preview():
    parsed = parse_upload(data=b"question\n,\nFirst?\n;;\nSecond?\n", preview=5)
    assert parsed.preview_rows == [["First?"], ["Second?"]]


def test_a_line_of_other_separators_in_a_semicolon_file_is_blank():
    parsed = parse_upload(data=b"question;note\nA, b?;x\n,\n, ;,\n;\n")
    assert parsed.delimiter == ";"
    assert [r.question for r in parsed.rows] == ["A, b?"]
    assert parsed.skipped_blank == 3


def test_a_one_column_file_of_separator_lines_only_has_no_questions():
    with pytest.raises(UploadError) as info:
        parse_upload(data=b"question\n,\n;;\n")
    assert info.value.code == "header_only"


def test_separator_lines_before_the_header_do_not_make_a_one_column_file_split():
    # The sniffer reads the header, the first line with more than separators: a leading
    # ",," (an empty spreadsheet row) must not make the commas in the questions split.
    data = b",,\n;\nquestion\nWhat is X, and Y?\n,\n"

    parsed = parse_upload(data=data)

    assert parsed.delimiter == ""
    assert parsed.columns == ["question"]
    assert [r.question for r in parsed.rows] == ["What is X, and Y?"]
    assert parsed.skipped_blank == 1


def test_separator_lines_before_a_real_header_still_find_its_delimiter():
    parsed = parse_upload(data=b",\n\nquestion;url\nA, b?;https://example.ca\n;\n")
    assert parsed.delimiter == ";"
    assert [(r.question, r.referring_url) for r in parsed.rows] == [("A, b?", "https://example.ca")]
    assert parsed.skipped_blank == 1


def test_quoted_one_column_file_keeps_questions_with_commas():
    data = b'"question"\r\n"What is X, and why?"\r\n","\r\n"Is a, b, c a list?"\r\n,\r\n'

    parsed = parse_upload(data=data)

    assert parsed.columns == ["question"]
    assert [r.question for r in parsed.rows] == ["What is X, and why?", "Is a, b, c a list?"]
    assert parsed.skipped_blank == 2


def test_quoted_header_with_a_comma_is_one_column_and_unquoted_commas_stay():
    # The header's comma is inside quotes: the file has one column, so the comma in the
    # unquoted question is text, not a separator.
    data = b'"Question, in full"\n"What is X, and why?"\nIs a, b a list?\n,\n'

    parsed = parse_upload(data=data, columns=ColumnChoice(question="Question, in full"))

    assert parsed.delimiter == ""
    assert parsed.columns == ["Question, in full"]
    assert [r.question for r in parsed.rows] == ["What is X, and why?", "Is a, b a list?"]


def test_xlsx_first_worksheet_values_become_readable_text():
    parsed = parse("good.xlsx")
    assert parsed.format == "xlsx"
    assert parsed.sheet == "Questions"  # not the active "Notes" sheet
    # The unnamed empty column and the formatted-but-empty padding column are dropped.
    assert parsed.columns == ["Question", "URL", "count", "ratio", "when", "at", "flag", "chat id"]
    first, second = parsed.rows
    assert first.question == "How do I renew my passport?"  # trimmed
    assert first.columns == {
        "Question": "  How do I renew my passport?  ",
        "URL": "https://example.ca/p",
        "count": "3",
        "ratio": "0.25",
        "when": "2024-03-01",
        "at": "2024-03-01 14:30:00",
        "flag": "TRUE",
        "chat id": "k1",
    }
    assert (first.referring_url, first.chat_key) == ("https://example.ca/p", "k1")
    assert second.columns["count"] == "12"
    assert second.columns["ratio"] == "1e-07"
    assert second.columns["flag"] == "FALSE"
    assert second.columns["URL"] == ""
    assert parsed.skipped_blank == 1


def test_xlsx_with_a_bogus_sheet_size_reads_only_the_real_cells():
    parsed = parse("bogus_dimension.xlsx")
    assert [r.question for r in parsed.rows] == ["How do I renew my passport?", "What is EI?"]
    assert parsed.columns == parse("good.xlsx").columns
    assert parsed.skipped_blank == 1


def test_type_is_judged_by_content_not_by_the_file_name():
    assert parse("good.xlsx", as_name="questions.csv").format == "xlsx"
    assert parse("utf8.csv", as_name="questions.xlsx").format == "csv"


def test_xlsx_formulas_give_their_cached_values():
    parsed = parse("formulas_cached.xlsx")
    assert [r.question for r in parsed.rows] == [
        "What is the deadline for tax?",
        "Who qualifies for EI?",
    ]
    assert [r.columns["double"] for r in parsed.rows] == ["6", "4"]


def test_xlsx_formula_without_cached_value_comes_out_empty():
    (row,) = parse("formulas_uncached.xlsx").rows
    assert row.question == "What is the deadline?"
    assert row.columns["double"] == ""


def test_question_formula_without_cached_value_refuses_with_a_save_again_hint():
    error = refused("question_formula_uncached.xlsx")
    assert error.code == "empty_question"
    assert "Rows 2 and 3" in error.message
    assert "save it again" in error.message


# --- Bad files ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "code", "fragments"),
    [
        ("empty.csv", "empty", ["empty"]),
        ("whitespace_only.csv", "empty", ["empty"]),
        ("header_only.csv", "header_only", ["header row but no questions"]),
        (
            "no_question_column.csv",
            "no_question_column",
            ["question, RedactedQuestion, Problem Details, prompt", '"query", "url"'],
        ),
        ("headerless.csv", "no_question_column", ["add a header row"]),
        ("empty_question.csv", "empty_question", ["Rows 3 and 5", '"question"']),
        ("xlsx_empty_question.xlsx", "empty_question", ["Row 3:", '"question"']),
        ("bad_encoding.csv", "encoding", ["neither UTF-8 nor Windows-1252", "line 2", "0x81"]),
        ("utf16_no_bom.csv", "binary", ["NUL bytes", "UTF-16"]),
        ("junk.bin", "binary", ["binary"]),
        ("junk_no_nul.bin", "binary", ["binary"]),
        ("document.pdf", "not_tabular", ["neither CSV nor XLSX", "PDF"]),
        ("image.png", "not_tabular", ["neither CSV nor XLSX", "PNG image"]),
        ("old_excel.xls", "not_tabular", ["Excel 97-2003", ".xls", "save it as .xlsx or CSV"]),
        ("not_xlsx.zip", "not_tabular", ["ZIP archive that is not an Excel workbook"]),
        ("spreadsheet.ods", "not_tabular", ["OpenDocument spreadsheet"]),
        ("html_table.xls", "not_tabular", ["HTML page"]),
        ("damaged_truncated.xlsx", "damaged_xlsx", ["cannot be read", "truncated"]),
        ("damaged_xml.xlsx", "damaged_xlsx", ["cannot be read", "ParseError"]),
        (
            "unclosed_quote.csv",
            "cell_too_long",
            ['Row 2, column "question"', f"{MAX_CELL_CHARS:,}", "unclosed double quote"],
        ),
    ],
)
def test_bad_file_is_refused_with_one_clear_message(name, code, fragments):
    error = refused(name)
    assert error.code == code
    for fragment in fragments:
        assert fragment in error.message
    if code in ("not_tabular", "damaged_xlsx"):
        assert f'"{name}"' in error.message


def test_empty_question_error_points_at_the_first_row_and_column():
    error = refused("empty_question.csv")
    assert (error.row, error.column) == (3, "question")


def test_too_many_rows_names_the_limit_and_the_count(settings):
    settings.MAX_BATCH_ITEMS = 25
    error = refused("many_rows.csv")
    assert error.code == "too_many_rows"
    # Reading stops at the first question over the limit: the total is not counted.
    assert "more than 25 questions" in error.message and "limit is 25" in error.message


def test_rows_up_to_the_limit_are_accepted(settings):
    settings.MAX_BATCH_ITEMS = 30
    assert len(parse("many_rows.csv").rows) == 30


def test_too_large_names_both_sizes(settings):
    settings.MAX_UPLOAD_BYTES = 4 * 1024
    error = refused("large.csv")
    assert error.code == "too_large"
    assert "5.4 KB" in error.message and "limit is 4 KB" in error.message


def test_xlsx_that_unpacks_to_far_more_than_the_limit_is_refused(monkeypatch):
    monkeypatch.setattr(xlsx, "XLSX_MAX_PART_BYTES", 1024 * 1024)
    error = refused("inflated.xlsx")
    assert error.code == "too_large"
    assert "xl/media/padding.bin unpacks to more than 1 MB" in error.message


def test_upload_from_a_file_reads_no_more_than_the_limit_plus_one_byte(settings):
    settings.MAX_UPLOAD_BYTES = 1024
    stream = io.BytesIO(b"question\n" + b"What is it?\n" * 10_000)
    with pytest.raises(UploadError) as info:
        parse_upload_file(file=stream, filename="big.csv")
    assert info.value.code == "too_large"
    assert stream.tell() == 1025


def test_upload_from_a_file_reports_the_real_size_when_known(settings):
    settings.MAX_UPLOAD_BYTES = 1024 * 1024

    class Uploaded(io.BytesIO):
        size = 25 * 1024 * 1024

    upload = Uploaded(b"x" * (2 * 1024 * 1024))
    with pytest.raises(UploadError) as info:
        parse_upload_file(file=upload, filename="big.csv")
    assert "The file is 25 MB; the limit is 1 MB" in info.value.message
    assert upload.tell() == 0  # refused on the announced size, nothing read


def test_upload_from_a_file_parses_like_bytes():
    with (DATA / "good.xlsx").open("rb") as handle:
        parsed = parse_upload_file(file=handle, filename="good.xlsx")
    assert [r.question for r in parsed.rows] == ["How do I renew my passport?", "What is EI?"]


def test_long_cell_names_row_and_column():
    data = f"question,notes\nShort?,ok\nLonger?,{'x' * (MAX_CELL_CHARS + 1)}\n".encode()
    with pytest.raises(UploadError) as info:
        parse_upload(data=data, filename="long.csv")
    assert info.value.code == "cell_too_long"
    assert (info.value.row, info.value.column) == (3, "notes")
    assert 'Row 3, column "notes"' in info.value.message
    assert "unclosed" not in info.value.message  # no line break: not a runaway quote


def test_overlong_referring_url_names_row_and_column():
    data = f"question,URL\nA?,https://e.ca/{'x' * 2100}\n".encode()
    with pytest.raises(UploadError) as info:
        parse_upload(data=data)
    assert info.value.code == "url_too_long"
    assert 'Row 2, column "URL"' in info.value.message and "2,048" in info.value.message


# --- JSON records ------------------------------------------------------------------------


def test_records_use_the_same_aliases_and_turn_values_into_text():
    rows = rows_from_records(
        [
            {"Redacted Question": "  What is EI? ", "referring_url": "https://e.ca", "n": 3.0},
            {"question": "Next?", "chat-id": 7, "ok": True, "none": None, "tags": ["a", "é"]},
        ]
    )
    assert rows[0] == ParsedRow(
        question="What is EI?",
        referring_url="https://e.ca",
        columns={"Redacted Question": "  What is EI? ", "referring_url": "https://e.ca", "n": "3"},
    )
    assert rows[1].chat_key == "7"
    assert rows[1].columns == {
        "question": "Next?",
        "chat-id": "7",
        "ok": "true",
        "none": "",
        "tags": '["a", "é"]',
    }


def test_records_skip_blank_entries():
    rows = rows_from_records([{"question": "", "url": ""}, {"question": "Kept?"}])
    assert [r.question for r in rows] == ["Kept?"]


@pytest.mark.parametrize(
    ("records", "code", "fragment"),
    [
        ({"question": "x"}, "not_a_list", "must be a list"),
        ([], "empty", "no questions"),
        ([{"question": "ok"}, "just text"], "not_an_object", "rows[1] is str"),
        ([{"question": "ok"}, {"url": "https://e.ca"}], "missing_question", "rows[1] has no"),
        ([{"question": "ok"}, {"question": " ", "url": "x"}], "empty_question", "rows[1]"),
        (
            [{"question": "x" * (MAX_CELL_CHARS + 1)}],
            "cell_too_long",
            'rows[0], column "question"',
        ),
        ([{"question": "ok", "url": "h" * 2049}], "url_too_long", 'rows[0], column "url"'),
    ],
)
def test_bad_records_are_refused_naming_the_entry(records, code, fragment):
    with pytest.raises(UploadError) as info:
        rows_from_records(records)
    assert info.value.code == code
    assert fragment in info.value.message


def test_records_over_the_limit_are_refused(settings):
    settings.MAX_BATCH_ITEMS = 3
    with pytest.raises(UploadError) as info:
        rows_from_records([{"question": f"Q{i}"} for i in range(4)])
    assert info.value.code == "too_many_rows"
    assert "more than 3 questions" in info.value.message and "limit is 3" in info.value.message


def test_a_very_wide_header_is_refused():
    data = b"question" + b",x" * 5_000 + b"\nWhy?\n"

    with pytest.raises(UploadError) as caught:
        parse_upload(data=data, filename="wide.csv")

    assert caught.value.code == "too_many_columns"
    assert "5,001 columns" in caught.value.message and "500" in caught.value.message


def test_a_row_wider_than_the_limit_is_refused_naming_it():
    data = b"question,url\nFine?,u\nWhy?,u" + b",z" * 600 + b"\n"
    with pytest.raises(UploadError) as caught:
        parse_upload(data=data, filename="wide-row.csv")
    assert (caught.value.code, caught.value.row) == ("too_many_columns", 3)


def test_many_duplicate_headers_are_named_quickly():
    data = b"question" + b",x" * 499 + b"\nWhy?\n"
    parsed = parse_upload(data=data, filename="dupes.csv")
    assert parsed.columns[1:4] == ["x", "x (2)", "x (3)"]
    assert parsed.columns[-1] == "x (499)"
