"""Issue 23's "done when", end to end: a set run three times through the API (one run with
repeats=3) against a fake provider made to flip answers; the grid page and the API grid
agree, and the flaky and regressed filters find the questions that flipped."""

from __future__ import annotations

import re
import threading

import pytest
from django.urls import reverse

from batches.models import Batch
from batches.uploads import ParsedRow
from evaluation.models import Run
from evaluation.tests.test_repeats_runs import RIGHT, WRONG, run_to_end

pytestmark = pytest.mark.django_db(transaction=True)

QUESTIONS = ("Steady question?", "Flaky question?", "Regressing question?")


def script(server, plan: dict[str, list[str]]):
    """Each question's answers in call order (the last one repeats)."""
    calls: dict[str, int] = {}
    lock = threading.Lock()

    def respond(system, messages):
        question = str(messages[-1].get("content", ""))
        with lock:
            n = calls.get(question, 0)
            calls[question] = n + 1
        answers = plan[question]
        return answers[min(n, len(answers) - 1)]

    server.responder = respond


def run_set(api, set_id: int, *, repeats: int) -> Batch:
    response = api.post(
        f"sets/{set_id}/run",
        {"aiProvider": "compatible", "model": "local-model", "repeats": repeats},
    )
    assert response.status_code == 201, response.content
    return run_to_end(Batch.objects.get(pk=response.json()["batchId"]))


def shown_questions(client, set_id: int, name: str) -> list[str]:
    html = client.get(reverse("evaluation:set", args=[set_id]) + f"?filter={name}").content
    return re.findall(r'<tr id="question-(\d+)">', html.decode())


def test_three_runs_one_with_repeats_flip_as_the_fake_provider_made_them(
    api, client, owner, fake_ai, make_batch
):
    rows = [
        ParsedRow(question=q, columns={"question": q, "expected": RIGHT}, expected_answer=RIGHT)
        for q in QUESTIONS
    ]
    # Run 1: every answer right.
    script(fake_ai, {q: [RIGHT] for q in QUESTIONS})
    first = run_to_end(make_batch(rows=rows))
    set_id = Run.objects.get(batch=first).question_set_id
    # Run 2, repeats=3: the flaky question right once then wrong; the others right.
    script(fake_ai, {QUESTIONS[0]: [RIGHT], QUESTIONS[1]: [RIGHT, WRONG], QUESTIONS[2]: [RIGHT]})
    second = run_set(api, set_id, repeats=3)
    # Run 3: the regressing question now wrong.
    script(fake_ai, {QUESTIONS[0]: [RIGHT], QUESTIONS[1]: [RIGHT], QUESTIONS[2]: [WRONG]})
    third = run_set(api, set_id, repeats=1)
    assert [b.processed_items for b in (first, second, third)] == [3, 9, 3]

    grid = api.get(f"sets/{set_id}/grid").json()
    assert [run["batchId"] for run in grid["runs"]] == [third.pk, second.pk, first.pk]
    by_question = {row["question"]: row["runs"] for row in grid["rows"]}
    flaky = by_question[QUESTIONS[1]][str(second.pk)]
    # Which repeat got the first (right) answer depends on the order the calls went out.
    assert (sorted(flaky["verdicts"]), flaky["passAtK"], flaky["passAllK"]) == (
        ["fail", "fail", "pass"],
        True,
        False,
    )
    assert by_question[QUESTIONS[0]][str(second.pk)]["passAllK"] is True
    assert by_question[QUESTIONS[2]][str(third.pk)]["verdicts"] == ["fail"]

    client.force_login(owner)
    page = client.get(reverse("evaluation:set", args=[set_id])).content.decode()
    assert "1/3" in page and "3/3" in page  # the k/k cells of the repeated run
    assert shown_questions(client, set_id, "flaky") == ["2", "3"]
    assert shown_questions(client, set_id, "regressed") == ["3"]
