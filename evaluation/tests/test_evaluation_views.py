"""Evaluation pages: grades on the detail page and the list, grade filters, regrade, run
again, compare (page + downloads), and the upload's column chooser."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from batches.models import Batch, BatchItem, UploadDraft
from batches.services import create_batch_run, run_again
from batches.tests.view_helpers import HX, LIST_URL, csv_file, upload_data
from batches.uploads import ParsedRow
from chats.models import Interaction
from evaluation.grading import regrade_batch

pytestmark = pytest.mark.django_db

XSS = '<script>alert("x")</script>'


def graded(user, answers, *, expected=None, citations=None, name="Graded", **kwargs) -> Batch:
    """A batch whose rows are answered `answers` (None = failed) and graded."""
    expected = expected or [""] * len(answers)
    citations = citations or [""] * len(answers)
    rows = [
        ParsedRow(
            question=f"Question {i}?",
            columns={"question": f"Question {i}?"},
            expected_answer=expected[i],
            expected_citation_url=citations[i],
        )
        for i in range(len(answers))
    ]
    batch = create_batch_run(
        uploader=user,
        name=name,
        rows=rows,
        ai_provider="extractive",
        search_provider="none",
        **kwargs,
    )
    answer_items(batch, answers)
    return batch


def answer_items(batch: Batch, answers, urls=None) -> None:
    urls = urls or ["https://example.org/a"] * len(answers)
    for item, answer, url in zip(
        batch.items.select_related("chat").order_by("position"), answers, urls, strict=True
    ):
        if answer is None:
            item.status = BatchItem.Status.FAILED
            item.save(update_fields=["status"])
            continue
        item.interaction = Interaction.objects.create(
            chat=item.chat, position=0, question=item.question, answer=answer, citation_url=url
        )
        item.status = BatchItem.Status.DONE
        item.save(update_fields=["status", "interaction"])
    regrade_batch(batch=batch)
    done = sum(answer is not None for answer in answers)
    Batch.objects.filter(pk=batch.pk).update(
        status=Batch.Status.COMPLETED,
        processed_items=done,
        failed_items=len(answers) - done,
        last_processed_index=len(answers),
    )


# --- Detail and list ------------------------------------------------------------------------


def test_detail_shows_summary_and_escaped_side_by_side_diff(owner_client, owner):
    batch = graded(
        owner,
        [f"Renew online {XSS}", "I could not find this in the documents searched."],
        expected=["Renew your passport online.", "The fee is 120 dollars."],
        citations=["https://example.org/a/", ""],
    )
    body = owner_client.get(batch.get_absolute_url()).content.decode()
    assert 'id="batch-evaluation"' in body
    assert "Citation match: 100 % (1/1)" in body
    assert "Gave an answer: 50 % (1/2)" in body
    assert "Mean similarity:" in body and "(2 rows)" in body
    assert XSS not in body
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in body
    assert "<del>your passport</del>" in body  # expected words the answer lacks
    assert "<ins>&lt;script&gt;alert" in body  # generated words the expectation lacks


def test_grade_filters(owner_client, owner):
    batch = graded(
        owner,
        ["Good answer", "I could not find this in the documents searched.", "Other", None],
        citations=["https://example.org/a", "", "https://example.org/b", ""],
    )
    url = batch.get_absolute_url()

    def rows(query: str) -> list[str]:
        body = owner_client.get(url + query).content.decode()
        return [part.split('"')[0] for part in body.split('<tr id="row-')[1:]]

    assert rows("") == ["0", "1", "2", "3"]
    # By verdict: a not-found answer with nothing expected is ungraded, not failing.
    assert rows("?grade=failing") == ["2"]  # citation mismatch
    assert rows("?grade=failing_first") == ["2", "0", "1", "3"]
    assert rows("?grade=passing") == ["0"]
    assert rows("?grade=ungraded") == ["1", "3"]
    assert rows("?grade=bogus") == ["0", "1", "2", "3"]


def test_detail_and_list_cost_fixed_queries(owner_client, owner):
    small = graded(owner, ["A"] * 2, name="small")
    big = graded(owner, ["A"] * 30, name="big")
    counts = []
    for batch in (small, big):
        with CaptureQueriesContext(connection) as queries:
            assert owner_client.get(batch.get_absolute_url()).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]
    with CaptureQueriesContext(connection) as queries:
        body = owner_client.get(LIST_URL).content.decode()
    list_queries = len(queries)
    assert "Gave an answer: 100 % (30/30)" in body
    graded(owner, ["A"], name="third")
    with CaptureQueriesContext(connection) as queries:
        owner_client.get(LIST_URL)
    assert len(queries) == list_queries


# --- Regrade --------------------------------------------------------------------------------


def test_regrade_button_grades_again_and_switches_the_judge(owner_client, owner):
    batch = graded(owner, ["Answer"], expected=["Answer"], citations=["https://example.org/a"])
    BatchItem.objects.filter(batch=batch).update(expected_citation_url="https://other.example/")
    response = owner_client.post(f"/batches/{batch.pk}/regrade/", {"judge_enabled": "on"})
    assert response.status_code == 302
    batch.refresh_from_db()
    assert batch.judge_enabled is True
    # With the judge, grading is work of the batch: the page shows its progress.
    assert batch.items.get().judge_verdict == ""
    page = owner_client.get(batch.get_absolute_url()).content.decode()
    assert "Grading again with the AI judge: 0 of 1 rows" in page
    assert f"/batches/{batch.pk}/regrade/progress/" in page
    # No Celery broker: the page's poll is the runner, a chunk per poll.
    block = owner_client.post(f"/batches/{batch.pk}/regrade/progress/").content.decode()
    item = batch.items.get()
    assert item.citation_match is False
    assert item.judge_verdict == "error"  # extractive cannot judge: no verdict, said why
    assert "regrade/progress" not in block  # finished: the poll stops
    assert "0 pass, 0 fail, 1 no verdict" in block
    assert "Judge the 1 row with no verdict again" in block

    owner_client.post(f"/batches/{batch.pk}/rejudge/")
    page = owner_client.get(batch.get_absolute_url()).content.decode()
    assert "Grading again with the AI judge: 0 of 1 rows" in page
    owner_client.post(f"/batches/{batch.pk}/regrade/cancel/")
    page = owner_client.get(batch.get_absolute_url()).content.decode()
    assert "Grading again with the AI judge" not in page
    assert "Grading again was cancelled" in page


def test_regrade_needs_post_and_ownership(owner_client, owner, other_user, client):
    batch = graded(owner, ["Answer"])
    assert owner_client.get(f"/batches/{batch.pk}/regrade/").status_code == 405
    client.force_login(other_user)
    assert client.post(f"/batches/{batch.pk}/regrade/").status_code == 404


# --- Run again ------------------------------------------------------------------------------


def test_run_again_form_creates_a_batch_from_the_same_rows(owner_client, owner):
    batch = graded(owner, ["A", "B"], expected=["x", "y"])
    page = owner_client.get(f"/batches/{batch.pk}/run-again/")
    assert page.status_code == 200
    assert 'value="extractive::extractive" selected' in page.content.decode()
    response = owner_client.post(
        f"/batches/{batch.pk}/run-again/",
        {
            "name": "",
            "ai_model": "extractive::extractive",
            "search_provider": "none",
            "page_language": "fr",
        },
    )
    new = Batch.objects.exclude(pk=batch.pk).get()
    assert response.status_code == 302 and response["Location"] == new.get_absolute_url()
    assert new.run_from_id == batch.pk and new.page_language == "fr"
    assert list(new.items.values_list("expected_answer", flat=True)) == ["x", "y"]
    assert new.uploader == owner


def test_run_again_of_another_users_batch_is_404(owner, other_user, client):
    batch = graded(owner, ["A"])
    client.force_login(other_user)
    assert client.get(f"/batches/{batch.pk}/run-again/").status_code == 404
    assert client.post(f"/batches/{batch.pk}/run-again/", {}).status_code == 404
    assert Batch.objects.count() == 1


# --- Compare --------------------------------------------------------------------------------


def _pair(owner):
    a = graded(
        owner,
        ["Same answer", "Old answer about fees", f"A {XSS}"],
        citations=["", "https://example.org/a", ""],
        name="Run A",
    )
    b = run_again(
        batch=a,
        uploader=owner,
        ai_provider="extractive",
        search_provider="none",
        page_language="en",
        apply_overrides=False,
    )
    answer_items(
        b,
        ["Same answer", "New answer about fees", f"B {XSS}"],
        ["https://example.org/a", "https://example.org/b", "https://example.org/a"],
    )
    return a, b


def test_compare_page_shows_classes_and_escaped_diff(owner_client, owner):
    a, b = _pair(owner)
    detail = owner_client.get(a.get_absolute_url()).content.decode()
    assert f'<option value="{b.pk}" selected>' in detail
    picked = owner_client.get(f"/batches/{a.pk}/compare/", {"other": b.pk})
    assert picked["Location"] == f"/batches/{a.pk}/compare/{b.pk}/"

    body = owner_client.get(f"/batches/{a.pk}/compare/{b.pk}/").content.decode()
    assert "aligned by row number" in body
    assert 'data-change="same">Same (1)' in body
    assert 'data-change="regressed">Regressed (1)' in body
    assert 'data-change="changed">Changed (1)' in body
    assert '<tr id="compare-row-2" data-change="regressed">' in body
    assert "<del>Old</del>" in body and "<ins>New</ins>" in body
    assert XSS not in body and "&lt;script&gt;" in body

    only = owner_client.get(f"/batches/{a.pk}/compare/{b.pk}/", {"change": "regressed"})
    assert only.content.decode().count('<tr id="compare-row-') == 1


def test_compare_page_is_new_vs_baseline_in_either_order(owner_client, owner):
    a, b = _pair(owner)  # b was run again from a: a is the baseline
    bodies = [
        owner_client.get(f"/batches/{first}/compare/{second}/").content.decode()
        for first, second in ((a.pk, b.pk), (b.pk, a.pk))
    ]
    for body in bodies:
        baseline = body.split('id="compare-baseline"')[1].split("</div>")[0]
        new = body.split('id="compare-new"')[1].split("</div>")[0]
        assert f"#{a.pk} " in baseline and f"#{b.pk} " in new
        assert "Compare: new vs baseline" in body
        # Row 2 passed on its citation in the baseline and fails in the new run.
        rate = body.split('<tr data-rate="pass_rate">')[1].split("</tr>")[0]
        assert "Pass rate" in rate and "100 %" in rate and "0 %" in rate
        assert "−100 pts" in rate and "grade-bad" in rate
        assert 'data-change="regressed">Regressed (1)' in body
        assert f"/batches/{b.pk}/compare/{a.pk}/download/xlsx/" in body
    assert bodies[0].split("<h1>")[1] == bodies[1].split("<h1>")[1]

    owner_client.cookies["django_language"] = "fr"
    french = owner_client.get(f"/batches/{b.pk}/compare/{a.pk}/").content.decode()
    assert "Référence" in french and "Nouvelle exécution" in french
    assert "Comparaison\u00a0: nouvelle exécution / référence" in french
    assert "Taux de réussite" in french and "−100\u00a0pts" in french
    assert "Écart" in french


def test_compare_with_offers_runs_of_the_same_questions_first(owner_client, owner):
    a, b = _pair(owner)
    newer = graded(owner, ["Unrelated"], name="Unrelated, newer")
    body = owner_client.get(a.get_absolute_url()).content.decode()
    select = body.split('id="compare-other"')[1].split("</select>")[0]
    related = select.split('label="Runs of the same questions"')[1].split("</optgroup>")[0]
    assert f'<option value="{b.pk}" selected>' in related and f"#{newer.pk}" not in related
    unrelated = select.split('label="Other batches"')[1]
    assert f'value="{newer.pk}"' in unrelated
    # From the re-run: its source is offered first (and preselected), in French too.
    owner_client.cookies["django_language"] = "fr"
    french = owner_client.get(b.get_absolute_url()).content.decode()
    related = french.split('label="Exécutions des mêmes questions"')[1].split("</optgroup>")[0]
    assert f'<option value="{a.pk}" selected>' in related
    assert 'label="Autres lots"' in french


def test_compare_download_csv(owner_client, owner):
    a, b = _pair(owner)
    response = owner_client.get(f"/batches/{a.pk}/compare/{b.pk}/download/csv/")
    assert response["Content-Disposition"].startswith("attachment;")
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["change"] for row in rows] == ["same", "regressed", "changed"]
    assert rows[1]["baseline_citation_match"] == "true"
    assert rows[1]["new_citation_match"] == "false"
    assert rows[1]["baseline_verdict"] == "pass" and rows[1]["new_verdict"] == "fail"
    assert owner_client.get(f"/batches/{a.pk}/compare/{b.pk}/download/pdf/").status_code == 404
    data = json.loads(
        b"".join(
            owner_client.get(f"/batches/{a.pk}/compare/{b.pk}/download/json/").streaming_content
        )
    )
    assert data["summary"]["changes"]["regressed"] == 1


def test_compare_needs_both_batches_to_be_yours(owner, other_user, client):
    a, b = _pair(owner)
    theirs = graded(other_user, ["A"], name="theirs")
    client.force_login(other_user)
    assert client.get(f"/batches/{a.pk}/compare/{b.pk}/").status_code == 404
    assert client.get(f"/batches/{theirs.pk}/compare/{a.pk}/").status_code == 404
    assert client.get(f"/batches/{a.pk}/compare/{theirs.pk}/").status_code == 404
    assert client.get(f"/batches/{theirs.pk}/compare/{a.pk}/download/csv/").status_code == 404


# --- Upload: column chooser -----------------------------------------------------------------

UNNAMED = "Ask,Golden Answer,Source,Page\nHow do I renew?,Online.,https://x.example/a,https://x.example/p\n"


def test_file_without_question_column_goes_to_the_column_chooser(owner_client, owner):
    response = owner_client.post(LIST_URL, upload_data(csv_file(UNNAMED)))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="columns-preview"' in body and "How do I renew?" in body
    draft = UploadDraft.objects.get()
    assert draft.owner == owner
    assert "<small>questions.csv</small>" in body
    assert f'name="draft" value="{draft.pk}"' in body
    # Guessed by alias: the expected answer; the question is for the user to pick.
    assert '<option value="2" selected>Golden Answer</option>' in body  # by position
    assert not Batch.objects.exists()

    response = owner_client.post(
        LIST_URL,
        {
            "draft": draft.pk,
            "name": "Chosen",
            "ai_model": "extractive::extractive",
            "search_provider": "none",
            "page_language": "en",
            "question": "1",
            "url": "4",
            "chat_id": "",
            "expected_answer": "2",
            "expected_citation": "3",
        },
    )
    assert response.status_code == 302
    item = BatchItem.objects.get()
    assert (item.question, item.referring_url) == ("How do I renew?", "https://x.example/p")
    assert (item.expected_answer, item.expected_citation_url) == ("Online.", "https://x.example/a")
    assert item.columns()["Ask"] == "How do I renew?"
    assert not UploadDraft.objects.exists()


def test_choose_columns_button_previews_a_good_file_too(owner_client):
    response = owner_client.post(
        LIST_URL, upload_data(csv_file("question,expectedAnswer\nQ?,A.\n"), action="columns"), **HX
    )
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="batch-upload"')  # the htmx partial
    assert '<option value="1" selected>question</option>' in body
    assert '<option value="2" selected>expectedAnswer</option>' in body


def test_chooser_refuses_another_users_draft(owner_client, other_user):
    draft = UploadDraft.objects.create(owner=other_user, filename="x.csv", data=b"question\nQ?\n")
    response = owner_client.post(
        LIST_URL,
        {
            "draft": draft.pk,
            "ai_model": "extractive::extractive",
            "search_provider": "none",
            "page_language": "en",
            "question": "1",
        },
    )
    assert response.status_code == 400
    assert "no longer available" in response.content.decode()
    assert not Batch.objects.exists()


def test_chooser_shows_a_bad_choice_next_to_the_question(owner_client, owner):
    data = "Ask,Other\nQ1?,x\n,y\n"
    owner_client.post(LIST_URL, upload_data(csv_file(data)))
    draft = UploadDraft.objects.get()
    response = owner_client.post(
        LIST_URL,
        {
            "draft": draft.pk,
            "ai_model": "extractive::extractive",
            "search_provider": "none",
            "page_language": "en",
            "question": "1",
        },
    )
    assert response.status_code == 400
    assert 'id="id_question_error"' in response.content.decode()
    assert UploadDraft.objects.filter(pk=draft.pk).exists()  # kept for another try


def test_final_progress_swaps_the_grades_in(owner_client, owner):
    batch = graded(owner, ["Answer"], citations=["https://example.org/a"])
    response = owner_client.get(f"/batches/{batch.pk}/progress/", **HX)
    assert response.status_code == 286
    body = response.content.decode()
    assert (
        '<section id="batch-evaluation" aria-labelledby="evaluation-heading" hx-swap-oob="true">'
        in body
    )
    assert "Citation match: 100 % (1/1)" in body


def test_run_again_and_start_is_one_click_with_the_same_settings(owner_client, owner):
    batch = graded(owner, ["A", "B"], expected=["x", "y"])
    page = owner_client.get(batch.get_absolute_url()).content.decode()
    assert 'name="same_settings"' in page
    response = owner_client.post(
        f"/batches/{batch.pk}/run-again/", {"same_settings": "1", "start": "1"}
    )
    new = Batch.objects.exclude(pk=batch.pk).get()
    assert response.status_code == 302 and response["Location"] == new.get_absolute_url()
    assert new.status == Batch.Status.QUEUED
    assert (new.ai_provider, new.model, new.search_provider, new.page_language) == (
        batch.ai_provider,
        batch.model,
        batch.search_provider,
        batch.page_language,
    )
    assert new.run_from_id == batch.pk


@pytest.mark.parametrize(
    ("extra", "status"),
    [({"start": "1"}, Batch.Status.QUEUED), ({}, Batch.Status.UPLOADED)],
    ids=["create-and-start", "create-only"],
)
def test_run_again_form_starts_the_new_batch_only_when_asked(owner_client, owner, extra, status):
    batch = graded(owner, ["A"], expected=["x"])
    form = {
        "name": "",
        "ai_model": "extractive::extractive",
        "search_provider": "none",
        "page_language": "en",
    }
    owner_client.post(f"/batches/{batch.pk}/run-again/", {**form, **extra})
    assert Batch.objects.exclude(pk=batch.pk).get().status == status


def test_summary_shows_pass_rate_with_its_legend_in_english_and_french(owner_client, owner):
    batch = graded(owner, ["Answer", "Other"], citations=["https://example.org/a", "https://x/"])

    english = owner_client.get(batch.get_absolute_url()).content.decode()
    french = owner_client.get(batch.get_absolute_url(), HTTP_ACCEPT_LANGUAGE="fr").content.decode()

    assert "Pass rate: 50 % (1/2 graded rows)" in english
    assert "A row passes by the first check it has" in english
    assert "Taux de réussite\u00a0: 50 % (1/2 lignes évaluées)" in french
