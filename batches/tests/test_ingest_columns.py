"""Upload: expected answer / citation aliases, the column chooser's ColumnChoice, preview."""

from __future__ import annotations

import io

import pytest
from openpyxl import Workbook

from batches.errors import UploadError
from batches.uploads import ColumnChoice, parse_upload, rows_from_records


@pytest.mark.parametrize(
    ("answer_header", "citation_header"),
    [
        ("expected answer", "expected citation"),
        ("expectedAnswer", "expectedCitation"),
        ("Golden_Answer", "citationUrl"),
        ("englishAnswer", "orig-citation"),
        ("orig-answer", "Expected Citation URL"),
        ("EXPECTED-ANSWER", "citation_url"),
    ],
)
def test_expected_columns_by_alias(answer_header, citation_header):
    data = f"question,{answer_header},{citation_header}\nQ?, The answer. ,https://x.example/a \n"
    parsed = parse_upload(data=data.encode())
    row = parsed.rows[0]
    assert (row.expected_answer, row.expected_citation_url) == (
        "The answer.",
        "https://x.example/a",
    )
    assert parsed.roles["expected_answer"] == answer_header
    assert row.columns[answer_header] == " The answer. "  # the original cell is kept as is


def test_explicit_expected_citation_wins_over_an_earlier_runs_citation_url():
    data = b"question,citation_url,expected_citation_url\nQ?,https://old/,https://want/\n"
    assert parse_upload(data=data).rows[0].expected_citation_url == "https://want/"


def test_no_expected_columns():
    row = parse_upload(data=b"question\nQ?\n").rows[0]
    assert (row.expected_answer, row.expected_citation_url) == ("", "")


def test_column_choice_picks_any_column_and_none():
    data = b"Ask,Where,Gold,url\nQ1?,https://p/,A1,https://x/\n"
    parsed = parse_upload(
        data=data, columns=ColumnChoice(question="Ask", url="Where", expected_answer="Gold")
    )
    row = parsed.rows[0]
    assert (row.question, row.referring_url, row.expected_answer) == ("Q1?", "https://p/", "A1")
    assert parsed.question_column == "Ask"
    # "" turns a role off even where an alias would match.
    off = parse_upload(data=data, columns=ColumnChoice(question="Ask", url=""))
    assert off.rows[0].referring_url == ""
    auto = parse_upload(data=data, columns=ColumnChoice(question="Ask"))
    assert auto.rows[0].referring_url == "https://x/"


def test_column_choice_naming_a_missing_column_is_refused():
    with pytest.raises(UploadError) as caught:
        parse_upload(data=b"Ask\nQ?\n", columns=ColumnChoice(question="Question"))
    assert caught.value.code == "unknown_column" and caught.value.column == "Question"
    assert '"Ask"' in caught.value.message


def test_expected_citation_longer_than_a_url_column_is_refused():
    data = ("question,expected citation\nQ?,https://x/" + "a" * 2100 + "\n").encode()
    with pytest.raises(UploadError) as caught:
        parse_upload(data=data)
    assert caught.value.code == "url_too_long"


def test_preview_reads_header_and_first_rows_without_a_question_column():
    lines = ["Ask,Gold,Note"] + [f"Q{i}?,A{i}" for i in range(10)]
    parsed = parse_upload(data="\n".join(lines).encode(), preview=3)
    assert parsed.rows == []
    assert parsed.columns == ["Ask", "Gold", "Note"]
    assert parsed.preview_rows == [["Q0?", "A0", ""], ["Q1?", "A1", ""], ["Q2?", "A2", ""]]
    assert parsed.roles == {
        "question": None,
        "url": None,
        "chat_id": None,
        "expected_answer": None,
        "expected_citation": None,
        "expected_outcome": None,
        "expected_block": None,
    }


def test_preview_of_a_workbook():
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["Question", "Golden answer"])
    sheet.append(["Q?", "A."])
    out = io.BytesIO()
    workbook.save(out)
    parsed = parse_upload(data=out.getvalue(), filename="q.xlsx", preview=5)
    assert parsed.preview_rows == [["Q?", "A."]]
    assert parsed.roles["question"] == "Question"
    assert parsed.roles["expected_answer"] == "Golden answer"


def test_json_records_with_a_column_choice():
    rows = rows_from_records(
        [{"ask": "Q?", "gold": "A."}], columns=ColumnChoice(question="ask", expected_answer="gold")
    )
    assert (rows[0].question, rows[0].expected_answer) == ("Q?", "A.")


@pytest.mark.parametrize(
    "header", ["expected outcome", "expectedOutcome", "Answer Type", "answerType"]
)
def test_expected_outcome_column_by_alias(header):
    data = f"question,{header}\nQ1,not-gc\nQ2,Pt Muni\nQ3,normal\nQ4,whatever\n".encode()

    rows = parse_upload(data=data).rows

    assert [row.expected_outcome for row in rows] == ["not-gc", "pt-muni", "normal", ""]


def test_codes_in_the_expected_citation_column_are_outcomes_not_urls():
    data = (
        b"question,expected citation\nQ1,not-gc\nQ2,PT-MUNI\nQ3,https://want/\n"
        b"Q4,clarifying-question\n"
    )

    rows = parse_upload(data=data).rows

    assert [(r.expected_outcome, r.expected_citation_url) for r in rows] == [
        ("not-gc", ""),
        ("pt-muni", ""),
        ("", "https://want/"),
        ("clarifying-question", ""),
    ]


@pytest.mark.parametrize("header", ["BLOCK", "expected block"])
def test_blocking_column_says_blocked_or_not(header):
    data = f"question,{header}\nQ1,Block\nQ2,Don't block\nQ3,yes\nQ4,no\nQ5,\n".encode()

    rows = parse_upload(data=data).rows

    assert [row.expected_outcome for row in rows] == [
        "blocked",
        "not-blocked",
        "blocked",
        "not-blocked",
        "",
    ]


def test_expected_block_wins_over_an_expected_answer_type_and_not_blocked_does_not():
    data = b"question,answer type,BLOCK\nQ1,not-gc,Block\nQ2,not-gc,Don't block\n"

    rows = parse_upload(data=data).rows

    assert [row.expected_outcome for row in rows] == ["blocked", "not-gc"]


def test_column_choice_picks_the_outcome_and_blocking_columns():
    data = b"Ask,Kind,Stop\nQ1,pt-muni,no\n"

    chosen = parse_upload(
        data=data,
        columns=ColumnChoice(question="Ask", expected_outcome="Kind", expected_block="Stop"),
    )

    assert chosen.roles["expected_outcome"] == "Kind"
    assert chosen.rows[0].expected_outcome == "pt-muni"


def test_json_records_carry_the_expected_outcome():
    rows = rows_from_records([{"question": "Q", "expectedOutcome": "not-found"}])

    assert rows[0].expected_outcome == "not-found"
