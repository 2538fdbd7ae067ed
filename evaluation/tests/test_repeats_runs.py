"""Runs with repeats: answered k times by a fake provider whose answers differ between
repeats (pass@k true, pass^k false), set membership, compare, the export's columns, the
grade summary, and POST /api/sets/{id}/run."""

from __future__ import annotations

import csv
import io
import itertools
import json
import threading

import pytest

from batches import engine, services
from batches.export import stream_csv, stream_json
from batches.models import Batch
from batches.uploads import ParsedRow
from evaluation.compare import compare_batches, comparison_json
from evaluation.grading import grade_summary
from evaluation.models import Run
from evaluation.repeats import answer_agreement, question_results

pytestmark = pytest.mark.django_db(transaction=True)

RIGHT = "Renew your passport online with form PPTC 054 before it expires."
WRONG = "Bananas are yellow and grow in warm countries far away."


def rows() -> list[ParsedRow]:
    return [
        ParsedRow(
            question=f"Question {n}?",
            columns={"question": f"Question {n}?", "expected": RIGHT},
            expected_answer=RIGHT,
        )
        for n in (1, 2)
    ]


def first_right_then_wrong(server):
    """Each question's first call gets the expected answer, every later one a wrong one."""
    seen: dict[str, int] = {}
    lock = threading.Lock()

    def respond(system, messages):
        question = str(messages[-1].get("content", ""))
        with lock:
            seen[question] = seen.get(question, 0) + 1
            return RIGHT if seen[question] == 1 else WRONG

    server.responder = respond


def run_to_end(batch: Batch) -> Batch:
    services.start_batch(batch=batch)
    engine.process_for_duration(batch_id=batch.pk, seconds=60, concurrency=2)
    batch.refresh_from_db()
    return batch


@pytest.fixture
def repeated(fake_ai, make_batch):
    first_right_then_wrong(fake_ai)
    return run_to_end(make_batch(rows=rows(), repeats=3))


def test_answers_differing_between_repeats_give_pass_at_k_but_not_pass_all_k(repeated):
    assert (repeated.status, repeated.total_items, repeated.processed_items) == (
        Batch.Status.COMPLETED,
        6,
        6,
    )
    results = question_results(repeated.items.select_related("interaction"))
    assert set(results) == {0, 1}
    for result in results.values():
        assert (result.k, result.passes, result.graded) == (3, 1, 3)
        assert (result.pass_at_k, result.pass_all_k, result.flaky) == (True, False, True)
        # One answer right, two alike: the three pairs' mean similarity is between.
        assert 0 < result.agreement < 1

    summary = grade_summary(repeated)
    assert (summary.questions, summary.pass_at_k_count, summary.pass_all_k_count) == (2, 2, 0)
    assert (summary.pass_at_k_rate, summary.pass_all_k_rate) == (1.0, 0.0)
    assert summary.verdict_passed == 2 and summary.verdict_graded == 6


def test_export_has_question_number_repeat_and_the_question_results(repeated):
    text = b"".join(stream_csv(repeated)).decode("utf-8-sig")
    records = list(csv.DictReader(io.StringIO(text)))
    assert [(r["row"], r["question_number"], r["repeat"]) for r in records] == [
        ("1", "1", "1"),
        ("2", "1", "2"),
        ("3", "1", "3"),
        ("4", "2", "1"),
        ("5", "2", "2"),
        ("6", "2", "3"),
    ]
    assert {
        (r["question_passes"], r["question_pass_at_k"], r["question_pass_all_k"]) for r in records
    } == {("1/3", "true", "false")}
    data = json.loads(b"".join(stream_json(repeated)))
    assert [(r["question_number"], r["repeat"]) for r in data][:2] == [(1, 1), (1, 2)]
    assert data[0]["question_pass_at_k"] is True and data[0]["question_agreement"] > 0


def test_export_without_repeats_has_question_number_and_repeat_only(fake_ai, make_batch):
    batch = run_to_end(make_batch(2))
    header = next(csv.reader(io.StringIO(b"".join(stream_csv(batch)).decode("utf-8-sig"))))
    assert header[2:5] == ["row", "question_number", "repeat"]
    assert not any(column.startswith("question_pass") for column in header)


def test_a_repeated_run_joins_the_set_of_the_same_file_without_repeats(owner, make_batch):
    plain = make_batch(rows=rows(), ai_provider="extractive", model="")
    repeated = make_batch(rows=rows(), repeats=3, ai_provider="extractive", model="")
    plain_run, repeated_run = Run.objects.get(batch=plain), Run.objects.get(batch=repeated)
    assert repeated_run.question_set_id == plain_run.question_set_id
    assert plain_run.question_set.questions.count() == 2


def test_a_repeated_conversation_joins_the_same_set(owner, make_batch):
    turns = [
        ParsedRow(question="Hello?", chat_key="c", columns={"question": "Hello?"}),
        ParsedRow(question="And then?", chat_key="c", columns={"question": "And then?"}),
        ParsedRow(question="Alone?", columns={"question": "Alone?"}),
    ]
    plain = make_batch(rows=turns, ai_provider="extractive", model="")
    repeated = make_batch(rows=turns, repeats=2, ai_provider="extractive", model="")
    question_set = Run.objects.get(batch=plain).question_set
    assert Run.objects.get(batch=repeated).question_set == question_set
    assert list(question_set.questions.values_list("chat_key", flat=True)) == ["1", "1", ""]


def test_compare_aligns_questions_and_reads_passes_out_of_k(fake_ai, make_batch, repeated):
    fake_ai.responder = lambda system, messages: RIGHT  # every answer right now
    again = services.run_again(batch=repeated, uploader=repeated.uploader, repeats=1)
    again = run_to_end(again)

    comparison = compare_batches(a=again, b=repeated)
    assert (comparison.baseline.pk, comparison.new.pk) == (repeated.pk, again.pk)
    assert comparison.aligned_by == "row"
    assert [row.row for row in comparison.rows] == [1, 2]
    # 1/3 passing before, 1/1 now: improved, although repeat 1 passed on both sides.
    assert [row.change for row in comparison.rows] == ["improved", "improved"]
    body = comparison_json(comparison)
    baseline = body["rows"][0]["baseline"]
    assert (baseline["repeats"], baseline["passes"], baseline["passAtK"], baseline["passAllK"]) == (
        3,
        1,
        True,
        False,
    )
    assert body["rows"][0]["new"]["repeats"] == 1


def test_compare_by_question_text_with_repeats(fake_ai, make_batch, repeated):
    fake_ai.responder = lambda system, messages: WRONG
    other = run_to_end(make_batch(rows=list(reversed(rows())), repeats=2))
    comparison = compare_batches(a=repeated, b=other)
    assert comparison.aligned_by == "question"
    assert len(comparison.rows) == 2
    assert {row.change for row in comparison.rows} == {"regressed"}  # 1/3 -> 0/2


def test_agreement_of_identical_and_of_different_answers():
    assert answer_agreement(["Same words here.", "same words here"]) == 1.0
    assert answer_agreement(["one", "two"]) == 0.0
    assert answer_agreement(["alone"]) is None


def test_api_status_and_results_carry_the_question_results(api, repeated):
    body = api.get("batch/status", {"batchId": repeated.pk}).json()
    assert body["repeats"] == 3
    grades = body["grades"]
    assert (grades["questions"], grades["passAtKRate"], grades["passAllKRate"]) == (2, 1.0, 0.0)
    data = api.get("batch/results", {"batchId": repeated.pk, "format": "json"})
    records = json.loads(b"".join(data.streaming_content))
    assert {(r["question_number"], r["repeat"]) for r in records} == set(
        itertools.product((1, 2), (1, 2, 3))
    )


def test_set_run_api_makes_a_run_of_the_set_with_repeats(api, owner, make_batch):
    source = make_batch(rows=rows(), ai_provider="extractive", model="")
    question_set = Run.objects.get(batch=source).question_set
    response = api.post(
        f"sets/{question_set.pk}/run",
        {"aiProvider": "extractive", "searchProvider": "none", "repeats": 2, "name": "Weekly"},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["questionSetId"], body["repeats"], body["totalItems"]) == (question_set.pk, 2, 4)
    assert (body["name"], body["status"], body["aiProvider"]) == (
        "Weekly",
        "uploaded",
        "extractive",
    )
    batch = Batch.objects.get(pk=body["batchId"])
    assert batch.uploader == owner
    run = Run.objects.get(batch=batch)
    assert (run.question_set_id, run.version) == (question_set.pk, question_set.version)
    assert list(batch.items.filter(repeat=1).values_list("question", "expected_answer")) == [
        ("Question 1?", RIGHT),
        ("Question 2?", RIGHT),
    ]


def test_set_run_api_starts_when_asked_and_refuses_bad_repeats(api, make_batch):
    question_set = Run.objects.get(
        batch=make_batch(rows=rows(), ai_provider="extractive", model="")
    ).question_set
    started = api.post(
        f"sets/{question_set.pk}/run", {"aiProvider": "extractive", "start": True}
    ).json()
    assert started["status"] == "queued"
    refused = api.post(f"sets/{question_set.pk}/run", {"aiProvider": "extractive", "repeats": 0})
    assert refused.status_code == 422
    assert "repeats" in refused.json()["error"]["fields"]


def test_set_run_api_is_404_for_another_users_set(api, other_user, make_batch):
    theirs = Run.objects.get(
        batch=make_batch(rows=rows(), uploader=other_user, ai_provider="extractive", model="")
    ).question_set
    response = api.post(f"sets/{theirs.pk}/run", {"aiProvider": "extractive"})
    assert response.status_code == 404
    assert response.json()["error"]["message"] == f"No question set with id {theirs.pk}."
    assert api.post("sets/999999/run", {}).status_code == 404
    assert api.post(f"sets/{2**64}/run", {}).status_code == 404
    assert Batch.objects.count() == 1


def test_compare_page_shows_each_sides_passes_out_of_k(client, fake_ai, make_batch, repeated):
    fake_ai.responder = lambda system, messages: RIGHT
    again = run_to_end(services.run_again(batch=repeated, uploader=repeated.uploader))
    client.force_login(repeated.uploader)
    page = client.get(f"/batches/{again.pk}/compare/{repeated.pk}/").content.decode()
    assert page.count("Question: 1/3 pass") == 2  # the baseline's two questions
    assert page.count("Question: 3/3 pass") == 2  # the new run's
