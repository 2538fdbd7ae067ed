"""Issue 24 "Done when": a batch exported to XLSX, reviewed in the file as an expert would
(openpyxl), uploaded back; the reviews on the page and in the API, agreement checked by
hand, a re-upload changes nothing, a tampered key is refused naming its cell; CSV too."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from openpyxl import load_workbook

from batches.export import stream_csv, stream_xlsx
from batches.models import BatchItem, JudgeVerdict, Verdict
from batches.tests.api_helpers import ApiClient, error_of
from chats.models import Interaction
from evaluation.agreement import Agreement, review_summaries
from evaluation.review import save_review
from evaluation.tests.test_evaluation_views import graded

pytestmark = pytest.mark.django_db

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# Automatic verdicts, judge verdicts and what the expert says, row by row (6 rows).
AUTOMATIC = ["pass", "pass", "fail", "fail", "pass", "fail"]
JUDGE = ["pass", "fail", "fail", "pass", "pass", ""]
EXPERT = ["correct", "incorrect", "incorrect", "correct", "partly_correct", "cannot_tell"]


@pytest.fixture
def batch(owner):
    batch = graded(owner, [f"Answer {i}." for i in range(6)], expected=["x"] * 6)
    items = list(batch.items.order_by("position"))
    for item, verdict, judge in zip(items, AUTOMATIC, JUDGE, strict=True):
        item.verdict, item.judge_verdict = verdict, judge
    BatchItem.objects.bulk_update(items, ["verdict", "judge_verdict"])
    return batch


def _exported_xlsx(batch) -> bytes:
    return b"".join(stream_xlsx(batch))


def _review_in_spreadsheet(data: bytes, reviews: dict[int, tuple[str, str]]) -> bytes:
    """What an expert does: fill the review columns of the rows, save the file."""
    workbook = load_workbook(io.BytesIO(data))
    sheet = workbook["Results"]
    header = [cell.value for cell in sheet[1]]
    verdict_col = header.index("review_verdict") + 1
    notes_col = header.index("review_notes") + 1
    for row, (verdict, notes) in reviews.items():
        sheet.cell(row=row + 1, column=verdict_col, value=verdict)
        sheet.cell(row=row + 1, column=notes_col, value=notes)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def _upload(api, batch, data: bytes, *, name="reviewed.xlsx", **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    path = f"batch/reviews?batchId={batch.pk}" + (f"&{query}" if query else "")
    return api.upload(path, {"file": SimpleUploadedFile(name, data, content_type=XLSX)})


def test_the_xlsx_is_laid_out_for_review(batch):
    workbook = load_workbook(io.BytesIO(_exported_xlsx(batch)))
    sheet = workbook["Results"]
    header = [cell.value for cell in sheet[1]]
    assert header[:7] == [
        "question",
        "expected_answer",
        "answer",
        "citation_url",
        "verdict",
        "review_verdict",
        "review_notes",
    ]
    validations = sheet.data_validations.dataValidation
    assert len(validations) == 1
    assert validations[0].formula1 == '"correct,partly_correct,incorrect,cannot_tell"'
    assert str(validations[0].sqref).startswith("F2:F")
    key_letter = sheet.cell(row=1, column=header.index("row_key") + 1).column_letter
    assert sheet.column_dimensions[key_letter].hidden
    assert sheet.column_dimensions["G"].width >= 40  # notes wide
    assert sheet["G2"].alignment.wrap_text


def test_round_trip_through_the_api(batch, owner, client):
    api = ApiClient(owner)
    reviewed = _review_in_spreadsheet(
        _exported_xlsx(batch),
        {row: (verdict, f"note {row}") for row, verdict in enumerate(EXPERT, start=1)},
    )

    preview = _upload(api, batch, reviewed, dryRun="true")
    assert preview.status_code == 200, preview.content
    body = preview.json()
    assert (body["new"], body["changed"], body["unchanged"], body["conflicts"]) == (6, 0, 0, 0)
    assert body["applied"] == 0
    assert not Interaction.objects.exclude(review_verdict="").exists()

    applied = _upload(api, batch, reviewed).json()
    assert applied["applied"] == 6
    turns = Interaction.objects.filter(batch_item__batch=batch).order_by("batch_item__position")
    assert [turn.review_verdict for turn in turns] == EXPERT
    assert [turn.review_notes for turn in turns] == [f"note {i}" for i in range(1, 7)]
    assert {turn.reviewed_by for turn in turns} == {owner}

    # In the API's results and status.
    results = api.get("batch/results", {"batchId": batch.pk, "format": "json"})
    rows = json.loads(b"".join(results.streaming_content))
    assert [row["review_verdict"] for row in rows] == EXPERT
    assert {row["reviewed_by"] for row in rows} == {"owner"}
    status = api.get("batch/status", {"batchId": batch.pk}).json()
    review = status["review"]
    assert (review["answered"], review["reviewed"]) == (6, 6)
    assert review["verdicts"]["correct"] == {"count": 2, "percent": 33.3}

    # Hand-checked agreement. Reviewer as verdict: P F F P F (the sixth cannot tell).
    # Automatic:                                    P P F F P
    # confusion (reviewer x machine): PP=1 PF=1 FP=2 FF=1; agreement 2/5 = 40 %.
    # p_e = P(rev pass) * P(auto pass) + P(rev fail) * P(auto fail)
    #     = 2/5 * 3/5 + 3/5 * 2/5 = 12/25; kappa = (10/25 - 12/25) / (13/25) = -2/13.
    automatic = review["automatic"]
    assert automatic["confusion"] == {
        "reviewerPassMachinePass": 1,
        "reviewerPassMachineFail": 1,
        "reviewerFailMachinePass": 2,
        "reviewerFailMachineFail": 1,
    }
    assert automatic["percent"] == 40.0
    assert automatic["kappa"] == round(-2 / 13, 4)
    # Judge: P F F P P (sixth none). Reviewer P F F P F: PP=2 FF=2 FP=1 PF=0: 80 %.
    # p_e = 2/5 * 3/5 + 3/5 * 2/5 = 12/25; kappa = (20/25 - 12/25) / (13/25) = 8/13.
    judge = review["judge"]
    assert judge["percent"] == 80.0 and judge["compared"] == 5
    assert judge["kappa"] == round(8 / 13, 4)

    # The expert's verdict is the final one in the grade summary: P F F P F, and the
    # sixth (cannot tell) keeps its automatic fail: 2 pass of 6 graded, 5 by experts.
    grades = status["grades"]
    assert (grades["verdictPassed"], grades["verdictGraded"], grades["expertReviewed"]) == (
        2,
        6,
        5,
    )

    # On the page.
    client.force_login(owner)
    page = client.get(f"/batches/{batch.pk}/").content.decode()
    assert page.count('data-review="incorrect"') == 2
    assert "note 4" in page

    # A re-upload of the same file changes nothing.
    before = list(turns.values_list("reviewed_at", flat=True))
    again = _upload(api, batch, reviewed).json()
    assert (again["unchanged"], again["applied"], again["new"], again["changed"]) == (6, 0, 0, 0)
    assert list(turns.values_list("reviewed_at", flat=True)) == before


def test_a_tampered_key_is_refused_naming_its_cell_and_nothing_is_applied(batch, owner):
    api = ApiClient(owner)
    workbook = load_workbook(io.BytesIO(_exported_xlsx(batch)))
    sheet = workbook["Results"]
    header = [cell.value for cell in sheet[1]]
    key_cell = sheet.cell(row=4, column=header.index("row_key") + 1)
    batch_id, item_id, signature = key_cell.value.split(":")
    key_cell.value = f"{batch_id}:{int(item_id) + 1}:{signature}"
    sheet.cell(row=2, column=6, value="correct")
    sheet.cell(row=5, column=6, value="wonderful")
    out = io.BytesIO()
    workbook.save(out)

    response = _upload(api, batch, out.getvalue())
    assert response.status_code == 422
    error = error_of(response)
    cells = {problem["cell"] for problem in error["rows"]}
    assert cells == {f"{key_cell.column_letter}4", "F5"}
    assert "F5" in str(error["rows"]) and "wonderful" in str(error["rows"])
    assert key_cell.coordinate in error["message"]
    assert not Interaction.objects.exclude(review_verdict="").exists()


def test_conflicts_are_rows_reviewed_in_batchchat_after_the_export(batch, owner, other_user):
    api = ApiClient(owner)
    exported = _exported_xlsx(batch)
    first = batch.items.select_related("interaction").get(position=0)
    second = batch.items.select_related("interaction").get(position=1)
    save_review(item=second, verdict="correct", notes="seen", user=owner)
    exported_after = _exported_xlsx(batch)
    save_review(item=first, verdict="incorrect", notes="in the page", user=owner)

    # The old file says something else for rows 1 and 2 (blank for 2): both conflicts.
    reviewed = _review_in_spreadsheet(exported, {1: ("correct", "")})
    body = _upload(api, batch, reviewed, dryRun="true").json()
    assert body["conflicts"] == 2 and body["rows"][0]["currentVerdict"] == "incorrect"
    # Row 2 was reviewed before this file was exported, then changed in the file: changed.
    reviewed = _review_in_spreadsheet(exported_after, {2: ("incorrect", "seen again")})
    body = _upload(api, batch, reviewed).json()
    assert (body["changed"], body["conflicts"], body["applied"]) == (1, 1, 1)
    first.interaction.refresh_from_db()
    assert first.interaction.review_verdict == "incorrect"
    body = _upload(api, batch, reviewed, overwrite="true").json()
    assert (body["applied"], body["unchanged"]) == (1, 5)
    first.interaction.refresh_from_db()
    assert first.interaction.review_verdict == ""  # the file's (blank) review wins


def test_csv_round_trip_with_french_labels_and_semicolons(batch, owner):
    data = b"".join(stream_csv(batch)).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(data)))
    header = rows[0]
    rows[1][header.index("review_verdict")] = "Partiellement correct"
    rows[2][header.index("review_notes")] = "=SUM(A1) is not a formula"
    out = io.StringIO()
    csv.writer(out, delimiter=";").writerows(rows)
    response = ApiClient(owner).upload(
        f"batch/reviews?batchId={batch.pk}",
        {"file": SimpleUploadedFile("r.csv", out.getvalue().encode("utf-8"))},
    )
    assert response.status_code == 200, response.content
    assert response.json()["new"] == 2
    turns = Interaction.objects.filter(batch_item__batch=batch).order_by("batch_item__position")
    assert turns[0].review_verdict == "partly_correct"
    assert turns[1].review_notes == "=SUM(A1) is not a formula"
    # Exported again (the notes protected with a quote) and uploaded back: nothing changes.
    again = b"".join(stream_csv(batch))
    response = ApiClient(owner).upload(
        f"batch/reviews?batchId={batch.pk}", {"file": SimpleUploadedFile("r.csv", again)}
    )
    assert response.json()["unchanged"] == 6 and response.json()["applied"] == 0


def test_kappa_by_hand():
    agreement = Agreement(pass_pass=20, pass_fail=5, fail_pass=10, fail_fail=15)
    # p_o = 35/50 = 0.7; p_e = 25/50 * 30/50 + 25/50 * 20/50 = 0.5; kappa = 0.2/0.5 = 0.4.
    assert agreement.percent == 70.0
    assert agreement.kappa == 0.4
    assert Agreement(pass_pass=3).kappa is None  # one answer everywhere: undefined


def test_review_summaries_count_only_answered_rows(owner):
    batch = graded(owner, ["A.", None, "C."])
    summary = review_summaries([batch.pk])[batch.pk]
    assert (summary.answered, summary.reviewed) == (2, 0)
    assert summary.automatic.percent is None
    assert Verdict.PASS and JudgeVerdict.PASS  # the vocabulary the summary maps onto


def test_a_file_longer_than_the_batch_is_refused(batch, owner, settings):
    lines = ["row_key,review_verdict"] + [",correct"] * (6 + 1001)
    response = ApiClient(owner).upload(
        f"batch/reviews?batchId={batch.pk}",
        {"file": SimpleUploadedFile("r.csv", "\n".join(lines).encode())},
    )
    assert response.status_code == 422
    assert "Too many rows" in error_of(response)["message"]
    settings.MAX_UPLOAD_BYTES = 10
    response = ApiClient(owner).upload(
        f"batch/reviews?batchId={batch.pk}", {"file": SimpleUploadedFile("r.csv", b"x" * 11)}
    )
    assert response.status_code == 413


def test_not_a_workbook_is_refused(batch, owner):
    response = _upload(ApiClient(owner), batch, b"PK\x03\x04 not really a zip")
    assert response.status_code == 422
    assert error_of(response)["rows"][0]["cell"] == "A1"
