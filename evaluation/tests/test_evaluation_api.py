"""Evaluation through the API: preview + create with chosen columns, expected columns by
alias, grades in status/list, regrade, run-again, compare (json/csv/xlsx), ownership."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from openpyxl import load_workbook

from batches.models import Batch, BatchItem, UploadDraft
from batches.tests.api_helpers import error_of
from chats.models import Interaction
from evaluation.grading import regrade_batch
from evaluation.tests.test_evaluation_views import graded

pytestmark = pytest.mark.django_db

FILE = (
    "Ask,englishAnswer,orig-citation,Page\n"
    "How do I renew?,Online.,https://x.example/a,https://x.example/p\n"
    "Fees?,120 dollars.,,\n"
)


def _file(text: str = FILE) -> SimpleUploadedFile:
    return SimpleUploadedFile("q.csv", text.encode(), content_type="text/csv")


def test_preview_then_create_with_chosen_columns(api, owner):
    response = api.upload("batch/preview", {"file": _file()})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["columns"] == ["Ask", "englishAnswer", "orig-citation", "Page"]
    assert body["rows"][0] == [
        "How do I renew?",
        "Online.",
        "https://x.example/a",
        "https://x.example/p",
    ]
    assert body["guessed"] == {
        "question": None,
        "url": None,
        "chatId": None,
        "expectedAnswer": "englishAnswer",
        "expectedCitation": "orig-citation",
        "expectedOutcome": None,
        "expectedBlock": None,
    }
    assert UploadDraft.objects.get(pk=body["uploadId"]).owner == owner

    created = api.post(
        "batch/create",
        {
            "uploadId": body["uploadId"],
            "aiProvider": "extractive",
            "searchProvider": "none",
            "columns": {"question": "Ask", "url": "Page"},
        },
    )
    assert created.status_code == 201, created.content
    batch = Batch.objects.get(pk=created.json()["batchId"])
    assert batch.source_filename == "q.csv"
    first, second = batch.items.order_by("position")
    assert (first.question, first.referring_url) == ("How do I renew?", "https://x.example/p")
    assert (first.expected_answer, first.expected_citation_url) == (
        "Online.",
        "https://x.example/a",
    )
    assert (second.expected_answer, second.expected_citation_url) == ("120 dollars.", "")
    assert not UploadDraft.objects.exists()
    again = api.post("batch/create", {"uploadId": body["uploadId"], "aiProvider": "extractive"})
    assert again.status_code == 404  # used once


def test_create_multipart_with_columns_as_json_text(api):
    response = api.upload(
        "batch/create",
        {
            "file": _file(),
            "aiProvider": "extractive",
            "searchProvider": "none",
            "columns": '{"question": "Ask", "expectedCitation": ""}',
        },
    )
    assert response.status_code == 201, response.content
    item = BatchItem.objects.order_by("position").first()
    assert (item.expected_answer, item.expected_citation_url) == ("Online.", "")


def test_create_refuses_an_unknown_chosen_column(api):
    response = api.upload(
        "batch/create",
        {"file": _file(), "aiProvider": "extractive", "columns": '{"question": "Nope"}'},
    )
    assert response.status_code == 422
    error = error_of(response)
    assert error["reason"] == "unknown_column" and error["column"] == "Nope"
    bad = api.upload("batch/create", {"file": _file(), "columns": "{not json"})
    assert bad.status_code == 400 and "columns" in error_of(bad)["fields"]
    assert not Batch.objects.exists()


def test_json_rows_with_expected_aliases_and_judge(api):
    response = api.post(
        "batch/create",
        {
            "aiProvider": "extractive",
            "searchProvider": "none",
            "judgeEnabled": True,
            "rows": [
                {"question": "Q?", "golden answer": "A.", "citationUrl": "https://x.example/"},
                {"prompt_text": "R?", "Expected-Answer": "B."},
            ],
            "columns": {"question": "prompt_text"},
        },
    )
    # The chosen question key must be in every record.
    assert response.status_code == 422
    ok = api.post(
        "batch/create",
        {
            "aiProvider": "extractive",
            "searchProvider": "none",
            "judgeEnabled": True,
            "rows": [
                {"question": "Q?", "golden answer": "A.", "citationUrl": "https://x.example/"},
                {"question": "R?", "Expected-Answer": "B."},
            ],
        },
    )
    assert ok.status_code == 201 and ok.json()["judgeEnabled"] is True
    items = list(BatchItem.objects.order_by("position"))
    assert [(i.expected_answer, i.expected_citation_url) for i in items] == [
        ("A.", "https://x.example/"),
        ("B.", ""),
    ]


def test_someone_elses_upload_is_404(api, other_user):
    draft = UploadDraft.objects.create(owner=other_user, filename="x.csv", data=FILE.encode())
    response = api.post("batch/create", {"uploadId": draft.pk, "aiProvider": "extractive"})
    assert response.status_code == 404
    assert UploadDraft.objects.filter(pk=draft.pk).exists()


def test_status_and_list_carry_the_grade_summary(api, owner):
    batch = graded(
        owner,
        ["Answer", "I could not find this in the documents searched.", None],
        citations=["https://example.org/a", "https://example.org/z", ""],
    )
    grades = api.get("batch/status", {"batchId": batch.pk}).json()["grades"]
    assert grades == {
        "passRate": 0.5,
        "verdictGraded": 2,
        "verdictPassed": 1,
        "verdictUngraded": 0,
        "expertReviewed": 0,
        "outcomeAccuracy": None,
        "outcomeChecked": 0,
        "citationMatchRate": 0.5,
        "citationChecked": 2,
        "meanSimilarity": None,
        "similarityCount": 0,
        "answerFoundRate": 0.5,
        "foundChecked": 2,
        "judgePassRate": None,
        "judged": 0,
        "judgePassed": 0,
        "judgeFailed": 0,
        "judgeNoVerdict": 0,
        "guardPrecision": None,
        "guardBlocked": 0,
        "guardRecall": None,
        "guardExpectedBlocks": 0,
        # Without repeats the per-question rates are empty.
        "repeats": 1,
        "questions": 0,
        "questionsGraded": 0,
        "passAtKRate": None,
        "passAtKCount": 0,
        "passAllKRate": None,
        "passAllKCount": 0,
    }
    listed = api.get("batch/list").json()["batches"][0]
    assert listed["grades"] == grades


def test_regrade_and_run_again(api, owner):
    batch = graded(owner, ["Answer"], expected=["Answer"])
    BatchItem.objects.filter(batch=batch).update(expected_citation_url="https://example.org/a")
    regraded = api.post("batch/regrade", {"batchId": batch.pk})
    assert regraded.status_code == 200
    assert regraded.json()["grades"]["citationMatchRate"] == 1.0

    again = api.post("batch/run-again", {"batchId": batch.pk, "pageLanguage": "fr"})
    assert again.status_code == 201, again.content
    body = again.json()
    assert body["runFrom"] == batch.pk and body["pageLanguage"] == "fr"
    assert body["aiProvider"] == "extractive" and body["searchProvider"] == "none"
    new = Batch.objects.get(pk=body["batchId"])
    assert new.items.get().expected_citation_url == "https://example.org/a"

    refused = api.post("batch/run-again", {"batchId": batch.pk, "aiProvider": "openai"})
    assert refused.status_code == 422
    assert "aiProvider" in error_of(refused)["fields"]


def _pair(owner):
    a = graded(owner, ["Same", "Old text", "Third"], citations=["", "https://example.org/a", ""])
    b = graded(
        owner,
        ["Same", "New text", "Third changed"],
        citations=["", "https://example.org/a", ""],
        name="B",
    )
    # b answers row 2 from another page: its citation grade drops.
    item = b.items.get(position=1)
    Interaction.objects.filter(pk=item.interaction_id).update(citation_url="https://example.org/b")
    regrade_batch(batch=b)
    return a, b


def test_compare_json_csv_xlsx(api, owner):
    a, b = _pair(owner)
    response = api.get("batch/compare", {"batchId": a.pk, "otherBatchId": b.pk})
    assert response.status_code == 200
    body = response.json()
    assert body["alignedBy"] == "question"
    assert body["baseline"]["batchId"] == a.pk and body["new"]["batchId"] == b.pk
    assert body["summary"]["changes"] == {
        "improved": 0,
        "regressed": 1,
        "changed": 1,
        "same": 1,
        "only_in_baseline": 0,
        "only_in_new": 0,
    }
    # Row 2 is the only one graded (by its citation): a passes it, b fails it.
    assert body["summary"]["passRate"] == {"baseline": 1.0, "new": 0.0, "delta": -1.0}
    assert body["summary"]["citationMatchRate"] == {"baseline": 1.0, "new": 0.0, "delta": -1.0}
    assert body["summary"]["meanSimilarity"] == {"baseline": None, "new": None, "delta": None}
    second = body["rows"][1]
    assert second["row"] == 2 and second["change"] == "regressed"
    assert second["baselineVerdict"] == "pass" and second["newVerdict"] == "fail"
    assert second["baseline"]["citationMatch"] is True and second["new"]["citationMatch"] is False
    assert second["baseline"]["answer"] == "Old text" and second["new"]["answer"] == "New text"
    assert 0 <= second["answersSimilarity"] < 1
    # The ids the other way round: the same comparison (the older batch is the baseline).
    swapped = api.get("batch/compare", {"batchId": b.pk, "otherBatchId": a.pk}).json()
    assert swapped == body

    csv_response = api.get(
        "batch/compare", {"batchId": a.pk, "otherBatchId": b.pk, "format": "csv"}
    )
    text = b"".join(csv_response.streaming_content).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["change"] for row in rows] == ["same", "regressed", "changed"]

    xlsx = api.get("batch/compare", {"batchId": a.pk, "otherBatchId": b.pk, "format": "xlsx"})
    sheet = load_workbook(io.BytesIO(b"".join(xlsx.streaming_content))).active
    values = list(sheet.values)
    assert values[0][:2] == ("row", "change") and values[2][1] == "regressed"
    assert "baseline_verdict" in values[0] and "new_verdict" in values[0]
    # Formatted like the results XLSX: frozen bold header with a filter, widths, wrapping.
    assert sheet.title == "New vs baseline" and sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == f"A1:{sheet.cell(1, sheet.max_column).column_letter}4"
    assert sheet["A1"].font.bold and sheet["C1"].value == "question"
    assert sheet.column_dimensions["C"].width == 50
    assert sheet["C2"].alignment.wrap_text
    assert f"batchchat-compare-{b.pk}-vs-{a.pk}-" in xlsx["Content-Disposition"]

    bad = api.get("batch/compare", {"batchId": a.pk, "otherBatchId": b.pk, "format": "pdf"})
    assert bad.status_code == 400


def test_compare_with_someone_elses_batch_is_404(api, owner, other_user):
    mine = graded(owner, ["A"])
    theirs = graded(other_user, ["A"], name="secret")
    for params in (
        {"batchId": mine.pk, "otherBatchId": theirs.pk},
        {"batchId": theirs.pk, "otherBatchId": mine.pk},
    ):
        response = api.get("batch/compare", params)
        assert response.status_code == 404
        assert "secret" not in response.content.decode()


def test_run_again_refuses_nul_characters(api, owner):
    batch = graded(owner, ["A"])
    response = api.post("batch/run-again", {"batchId": batch.pk, "name": "a\x00b"})
    assert response.status_code == 400
    assert "name" in error_of(response)["fields"]
    columns = api.post(
        "batch/create",
        {"aiProvider": "extractive", "rows": [{"q": "x"}], "columns": {"question": "\x00"}},
    )
    assert columns.status_code == 400
