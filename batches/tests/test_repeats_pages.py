"""Repeats on the batch page: the start step's projected provider calls
(batches.estimate.projected_calls) and the rows' repeat n/k with their question's result."""

from __future__ import annotations

import pytest
from django.urls import reverse

from batches.estimate import projected_calls
from batches.models import BatchItem
from batches.services import create_batch_run
from batches.uploads import ParsedRow

pytestmark = pytest.mark.django_db


def make(owner, questions=3, *, repeats=1, expected=(), **kwargs):
    rows = [
        ParsedRow(
            question=f"Question {n}?",
            columns={"question": f"Question {n}?"},
            expected_answer="An answer." if n in expected else "",
        )
        for n in range(questions)
    ]
    options = {"ai_provider": "extractive", "search_provider": "none"} | kwargs
    return create_batch_run(uploader=owner, name="Repeats", rows=rows, repeats=repeats, **options)


def test_projected_calls_are_questions_times_k(owner):
    projected = projected_calls(make(owner, 3, repeats=4))
    assert (projected.questions, projected.repeats, projected.rows) == (3, 4, 12)
    assert (projected.answer_calls, projected.judge_calls, projected.guard_calls) == (12, 0, 0)
    assert projected.total == 12


def test_projected_calls_add_the_judge_on_rows_with_something_to_judge(owner):
    batch = make(owner, 3, repeats=2, expected={0, 2}, judge_enabled=True)
    projected = projected_calls(batch)
    assert (projected.answer_calls, projected.judge_calls, projected.total) == (6, 4, 10)
    without = make(owner, 3, repeats=2, expected={0, 2})
    assert projected_calls(without).judge_calls == 0


def test_projected_calls_add_the_guard_ai_check_for_a_language_model(owner, settings):
    settings.GUARD_AI_CHECK = True
    settings.COMPATIBLE_BASE_URL = "http://127.0.0.1:9/v1"
    settings.COMPATIBLE_MODELS = ["local-model"]
    batch = make(owner, 2, repeats=3, ai_provider="compatible", model="local-model")
    projected = projected_calls(batch)
    assert (projected.answer_calls, projected.guard_calls, projected.total) == (6, 6, 12)
    # The offline answerer has no model to check with.
    assert projected_calls(make(owner, 2, repeats=3)).guard_calls == 0


def test_rows_the_guard_blocks_at_upload_make_no_call(owner):
    rows = [
        ParsedRow(question="My SIN is 046 454 286, is my file ok?", columns={}),
        ParsedRow(question="How do I renew my passport?", columns={}),
    ]
    batch = create_batch_run(
        uploader=owner, name="Guarded", rows=rows, repeats=2, ai_provider="extractive"
    )
    projected = projected_calls(batch)
    assert (projected.rows, projected.blocked_rows, projected.answer_calls) == (4, 2, 2)


def test_start_step_shows_the_projected_calls(owner_client, owner):
    batch = make(owner, 3, repeats=4, expected={1}, judge_enabled=True)
    page = owner_client.get(batch.get_absolute_url()).content.decode()
    assert 'id="projected-calls"' in page
    assert "about 16 provider calls" in page
    assert "3 questions × 4 answers each = 12" in page
    assert "AI judge: 4" in page


def test_projected_calls_leave_once_started(owner_client, owner):
    batch = make(owner, 2)
    owner_client.post(reverse("batches:start", args=[batch.pk]))
    assert 'id="projected-calls"' not in owner_client.get(batch.get_absolute_url()).content.decode()


def test_rows_show_repeat_n_of_k_and_the_question_result(owner_client, owner):
    batch = make(owner, 2, repeats=3)
    BatchItem.objects.filter(batch=batch, question_index=0, repeat=1).update(verdict="pass")
    BatchItem.objects.filter(batch=batch, question_index=0, repeat__gt=1).update(verdict="fail")
    page = owner_client.get(batch.get_absolute_url()).content.decode()
    assert "question 1, repeat 2/3" in page and "question 2, repeat 3/3" in page
    assert page.count("Question: 1/3 pass") == 3
    # A filtered page still reads the question's other repeats.
    failing = owner_client.get(batch.get_absolute_url() + "?grade=failing").content.decode()
    assert failing.count("Question: 1/3 pass") == 2


def test_rows_without_repeats_show_no_repeat(owner_client, owner):
    page = owner_client.get(make(owner, 2).get_absolute_url()).content.decode()
    assert "repeat 1/1" not in page and "question-result" not in page


def test_api_status_has_projected_calls_before_start(owner, api):
    batch = make(owner, 2, repeats=5)
    body = api.get("batch/status", {"batchId": batch.pk}).json()
    assert body["projectedCalls"]["total"] == 10 and body["repeats"] == 5
