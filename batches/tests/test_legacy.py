"""The conversion rules of batches.legacy, value by value (no database needed)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from batches import legacy


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12, 12),
        ("4631", 4631),
        ({"$numberLong": "3232"}, 3232),
        ({"$numberInt": "7"}, 7),
        (12.9, 12),
        ("", None),
        (None, None),
        ("n/a", None),
        (True, None),
        (-5, None),
    ],
)
def test_to_int_reads_numbers_in_every_legacy_shape(value, expected):
    assert legacy.to_int(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        {"$date": "2025-01-09T09:12:37.227Z"},
        "2025-01-09T09:12:37.227Z",
        {"$date": {"$numberLong": "1736413957227"}},
        1736413957227,
        datetime(2025, 1, 9, 9, 12, 37, 227000),
    ],
)
def test_to_datetime_reads_extended_json_dates_as_utc(value):
    assert legacy.to_datetime(value) == datetime(2025, 1, 9, 9, 12, 37, 227000, tzinfo=UTC)


def test_to_datetime_gives_none_for_garbage():
    assert legacy.to_datetime("yesterday") is None
    assert legacy.to_datetime(None) is None


def test_plain_json_flattens_extended_json_for_storage():
    value = {
        "_id": {"$oid": "a107e2bdb4a00670e9e69eef"},
        "n": {"$numberLong": "5"},
        "when": {"$date": "2025-01-09T09:12:37Z"},
        "list": [{"$oid": "b107e2bdb4a00670e9e69eef"}],
    }
    assert legacy.plain_json(value) == {
        "_id": "a107e2bdb4a00670e9e69eef",
        "n": "5",
        "when": "2025-01-09T09:12:37+00:00",
        "list": ["b107e2bdb4a00670e9e69eef"],
    }


def test_parse_search_results_reads_the_old_text_format():
    text = (
        "Title: First\nLink: https://a.example/\nSummary: one\n"
        "Title: Second\nLink: https://b.example/\nSummary: two\nand more"
    )
    assert legacy.parse_search_results(text) == [
        {"title": "First", "url": "https://a.example/", "snippet": "one"},
        {"title": "Second", "url": "https://b.example/", "snippet": "two and more"},
    ]
    assert legacy.parse_search_results("") == []
    assert legacy.parse_search_results(None) == []
    assert legacy.parse_search_results("Link: https://c.example/") == [
        {"title": "", "url": "https://c.example/", "snippet": ""}
    ]


def test_answer_text_drops_the_old_sentence_tags():
    assert legacy.answer_text("<s-1>One.</s-1> <s-2>Two.</s-2>") == "One. Two."
    assert legacy.answer_text("Plain answer") == "Plain answer"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("en", "en"), ("fr", "fr"), ("fra", "fr"), ("French", "fr"), ("eng", "en"), ("", "en")],
)
def test_language_maps_old_codes(value, expected):
    assert legacy.language(value) == expected


def test_convert_entry_completed_keeps_input_columns_and_builds_the_turn():
    row = legacy.convert_entry(
        {
            "entry_id": "batch-0",
            "question": " Q? ",
            "url": "https://x.example/",
            "status": "completed",
            "answer": "<s-1>A.</s-1>",
            "answer_citation_url": "https://c.example/",
            "answer_citation_head": "C",
            "answer_model": "gpt-4o",
            "answer_input_tokens": {"$numberLong": "10"},
            "answer_output_tokens": 2,
            "department": "CRA",
            "mystery": "kept",
        }
    )
    assert (row.status, row.error, row.question) == ("done", "", "Q?")
    assert row.row == {
        "entry_id": "batch-0",
        "question": " Q? ",
        "url": "https://x.example/",
        "mystery": "kept",
    }
    assert row.interaction["answer"] == "A."
    assert row.interaction["input_tokens"] == 10
    assert row.interaction["citation_title"] == "C"


@pytest.mark.parametrize(
    ("entry", "status", "error_part"),
    [
        ({"question": "Q", "status": "failed", "error": "Timeout"}, "failed", "Timeout"),
        ({"question": "Q", "status": "failed"}, "failed", "no reason recorded"),
        ({"question": "Q", "status": "completed"}, "failed", "no answer"),
        ({"question": "Q"}, "pending", ""),
        ({"question": "Q", "status": "weird"}, "pending", ""),
        ({"question": "Q", "status": "weird", "answer": "A"}, "done", ""),
        ({"status": "completed", "answer": "A"}, "failed", "no question"),
        ("not a dict", "failed", "no question"),
    ],
)
def test_convert_entry_maps_statuses(entry, status, error_part):
    row = legacy.convert_entry(entry)
    assert row.status == status
    assert error_part in row.error
    assert (row.interaction is not None) == (status == "done")


def test_counters_follow_the_engine_rules():
    assert legacy.counters_for(["done", "failed", "pending", "done"]) == {
        "total_items": 4,
        "processed_items": 2,
        "failed_items": 1,
        "last_processed_index": 2,
    }


@pytest.mark.parametrize(
    ("old", "statuses", "expected"),
    [
        ("processing", ["done", "failed"], "completed"),
        ("processing", ["done", "pending"], "uploaded"),
        ("cancelled", ["done", "pending"], "cancelled"),
        ("completed", [], "completed"),
    ],
)
def test_batch_status_for(old, statuses, expected):
    assert legacy.batch_status_for(old, legacy.counters_for(statuses)) == expected


def test_read_export_reads_json_lines_and_reports_bad_lines(tmp_path):
    path = tmp_path / "batches.json"
    path.write_text(
        '{"_id": {"$oid": "a107e2bdb4a00670e9e69eef"}, "n": {"$numberLong": "3"}}\n'
        "\n"
        "{broken\n"
        "[1]\n",
        encoding="utf-8",
    )
    documents, errors = legacy.read_export(path)
    assert len(documents) == 1 and documents[0]["n"] == 3
    assert [e.split(":")[0] for e in errors] == [
        f"{tmp_path.name}/batches.json line 3",
        f"{tmp_path.name}/batches.json line 4",
    ]


def test_read_export_reads_a_json_array_with_bom(tmp_path):
    path = tmp_path / "batches.json"
    path.write_text('\ufeff[{"a": 1}, {"a": 2}]', encoding="utf-8")
    documents, errors = legacy.read_export(path)
    assert [d["a"] for d in documents] == [1, 2] and errors == []
