"""Review mode's pages: the filters, saving with htmx and without JavaScript, the reviewed
file's upload (preview, problems, apply), promoting an answer to the expected answer."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from openpyxl import load_workbook

from batches.export import stream_xlsx
from batches.models import BatchItem
from chats.models import Interaction
from evaluation.models import Question, Run
from evaluation.review import save_review
from evaluation.tests.test_evaluation_views import graded

pytestmark = pytest.mark.django_db


@pytest.fixture
def batch(owner):
    batch = graded(owner, ["One.", "Two.", "Three.", None], expected=["One.", "x", "y", "z"])
    items = list(batch.items.order_by("position"))
    for item, verdict, judge in zip(
        items, ["pass", "fail", "pass", ""], ["pass", "pass", "", ""], strict=True
    ):
        item.verdict, item.judge_verdict = verdict, judge
    BatchItem.objects.bulk_update(items, ["verdict", "judge_verdict"])
    return batch


def _rows(page: str) -> list[str]:
    return [part.split('"')[0] for part in page.split('data-row="')[1:]]


def test_one_row_at_a_time_with_next_and_previous(owner_client, batch):
    page = owner_client.get(f"/batches/{batch.pk}/review/").content.decode()
    assert _rows(page) == ["1"]  # the failed row 4 has nothing to review
    assert 'id="review-next"' in page and 'id="review-prev"' not in page
    assert "1 of 3" in page
    page = owner_client.get(f"/batches/{batch.pk}/review/?row=3").content.decode()
    assert _rows(page) == ["3"] and 'id="review-next"' not in page


def test_filters(owner_client, batch, owner):
    items = {item.position: item for item in batch.items.select_related("interaction")}
    save_review(item=items[0], verdict="incorrect", notes="", user=owner)  # auto pass, judge pass
    save_review(item=items[1], verdict="incorrect", notes="", user=owner)  # auto fail, judge pass

    def rows(review_filter: str) -> list[str]:
        url = f"/batches/{batch.pk}/review/?filter={review_filter}&view=list"
        return _rows(owner_client.get(url).content.decode())

    assert rows("not_reviewed") == ["3"]
    assert rows("reviewed") == ["1", "2"]
    assert rows("disagrees_verdict") == ["1"]
    assert rows("judge_disagrees") == ["1", "2"]
    assert rows("") == ["1", "2", "3"]


def test_saving_with_htmx_answers_the_card(owner_client, batch, owner):
    item = batch.items.get(position=1)
    response = owner_client.post(
        f"/batches/{batch.pk}/review/{item.pk}/",
        {"verdict": "partly_correct", "notes": "Misses the fee."},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith("<article") and 'data-review="partly_correct"' in body
    assert 'aria-pressed="true"' in body
    turn = Interaction.objects.get(batch_item=item)
    assert (turn.review_verdict, turn.review_notes, turn.reviewed_by) == (
        "partly_correct",
        "Misses the fee.",
        owner,
    )
    # The notes' own button keeps the verdict.
    owner_client.post(
        f"/batches/{batch.pk}/review/{item.pk}/",
        {"notes": "Better."},
        headers={"HX-Request": "true"},
    )
    turn.refresh_from_db()
    assert (turn.review_verdict, turn.review_notes) == ("partly_correct", "Better.")
    bad = owner_client.post(
        f"/batches/{batch.pk}/review/{item.pk}/",
        {"verdict": "great"},
        headers={"HX-Request": "true"},
    )
    assert bad.status_code == 422
    turn.refresh_from_db()
    assert turn.review_verdict == "partly_correct"


def test_saving_without_javascript_redirects_back(owner_client, batch):
    item = batch.items.get(position=0)
    url = f"/batches/{batch.pk}/review/?row=1"
    response = owner_client.post(
        f"/batches/{batch.pk}/review/{item.pk}/", {"verdict": "correct", "next": url}
    )
    assert response.status_code == 302 and response.url == url


def test_the_chat_page_shows_the_review(owner_client, batch, owner):
    item = batch.items.select_related("chat", "interaction").get(position=0)
    save_review(item=item, verdict="cannot_tell", notes="Needs the policy team.", user=owner)
    page = owner_client.get(item.chat.get_absolute_url()).content.decode()
    assert 'data-review="cannot_tell"' in page and "Needs the policy team." in page


def test_upload_preview_then_apply(owner_client, batch):
    workbook = load_workbook(io.BytesIO(b"".join(stream_xlsx(batch))))
    sheet = workbook["Results"]
    sheet["F2"], sheet["G2"] = "correct", "Good."
    sheet["F3"] = "incorrect"
    out = io.BytesIO()
    workbook.save(out)
    page = owner_client.post(
        f"/batches/{batch.pk}/reviews/upload/",
        {"file": SimpleUploadedFile("reviewed.xlsx", out.getvalue())},
    )
    assert page.status_code == 200
    body = page.content.decode()
    assert "New reviews: 2" in body and 'data-kind="new"' in body
    assert not Interaction.objects.exclude(review_verdict="").exists()
    draft = page.context["draft"]
    applied = owner_client.post(f"/batches/{batch.pk}/reviews/apply/", {"draft": draft.pk})
    assert applied.status_code == 302
    assert Interaction.objects.exclude(review_verdict="").count() == 2
    # The draft is gone: applying twice is refused.
    again = owner_client.post(f"/batches/{batch.pk}/reviews/apply/", {"draft": draft.pk})
    assert again.status_code == 302
    assert Interaction.objects.exclude(review_verdict="").count() == 2


def test_upload_problems_name_their_cells(owner_client, batch):
    workbook = load_workbook(io.BytesIO(b"".join(stream_xlsx(batch))))
    workbook["Results"]["F3"] = "sort of"
    out = io.BytesIO()
    workbook.save(out)
    page = owner_client.post(
        f"/batches/{batch.pk}/reviews/upload/",
        {"file": SimpleUploadedFile("reviewed.xlsx", out.getvalue())},
    )
    assert page.status_code == 422
    assert 'data-cell="F3"' in page.content.decode()


def test_promote_makes_a_new_version_of_the_set(owner_client, batch):
    item = batch.items.get(position=1)
    run = Run.objects.select_related("question_set").get(batch=batch)
    version = run.question_set.version
    response = owner_client.post(
        f"/batches/{batch.pk}/review/{item.pk}/promote/", {"expected_answer": "Two, edited."}
    )
    assert response.status_code == 302
    question = Question.objects.get(question_set=run.question_set, position=1)
    assert question.expected_answer == "Two, edited."
    run.question_set.refresh_from_db()
    assert run.question_set.version == version + 1 == question.version
    # Without text: the row's answer itself.
    owner_client.post(f"/batches/{batch.pk}/review/{item.pk}/promote/", {})
    question.refresh_from_db()
    assert question.expected_answer == "Two."


def test_the_batch_page_shows_agreement(owner_client, batch, owner):
    items = {item.position: item for item in batch.items.select_related("interaction")}
    save_review(item=items[0], verdict="correct", notes="", user=owner)
    save_review(item=items[1], verdict="correct", notes="", user=owner)
    page = owner_client.get(f"/batches/{batch.pk}/").content.decode()
    assert "Reviewed: 2 of 3 answered rows." in page
    assert "Expert-reviewed: 2" in page
    # Automatic: pass, fail vs reviewer pass, pass: 50 %. Judge: pass, pass: 100 %.
    automatic = page.split('data-agreement="automatic"')[1].split("</tr>")[0]
    assert "50.0 %" in automatic
    judge = page.split('data-agreement="judge"')[1].split("</tr>")[0]
    assert "100.0 %" in judge
