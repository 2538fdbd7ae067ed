"""Question sets: every batch is a run of one (evaluation.sets)."""

from __future__ import annotations

import pytest

from batches.services import create_batch_run, delete_batch, run_again
from batches.uploads import ParsedRow
from evaluation import sets
from evaluation.models import Question, QuestionSet, Run

pytestmark = pytest.mark.django_db


def rows(expected=("a1", "a2")) -> list[ParsedRow]:
    return [
        ParsedRow(question=f"q{n}", columns={"question": f"q{n}"}, expected_answer=answer)
        for n, answer in enumerate(expected, start=1)
    ]


def upload(owner, name="weekly", **kwargs):
    return create_batch_run(
        uploader=owner,
        name=name,
        rows=kwargs.pop("rows", None) or rows(),
        ai_provider="extractive",
        search_provider="none",
        **kwargs,
    )


def test_an_upload_makes_a_set_named_from_the_batch(owner):
    batch = upload(owner)
    run = Run.objects.get(batch=batch)
    assert (run.question_set.name, run.question_set.owner, run.version) == ("weekly", owner, 1)
    assert list(
        run.question_set.questions.values_list("position", "question", "expected_answer")
    ) == [(0, "q1", "a1"), (1, "q2", "a2")]


def test_an_identical_upload_joins_the_set_and_may_split(owner):
    first = upload(owner)
    second = upload(owner, name="again")
    assert second.set_run.question_set_id == first.set_run.question_set_id
    run = sets.split_run(run=second.set_run)
    assert run.question_set_id != first.set_run.question_set_id
    assert run.question_set.questions.count() == 2


def test_other_expectations_or_another_owner_make_a_new_set(owner, other_user):
    first = upload(owner)
    changed = upload(owner, rows=rows(expected=("a1", "different")))
    stranger = upload(other_user)
    assert len({b.set_run.question_set_id for b in (first, changed, stranger)}) == 3


def test_run_again_joins_its_source_set(owner):
    first = upload(owner)
    again = run_again(batch=first, uploader=owner, name="", model="")
    assert again.set_run.question_set_id == first.set_run.question_set_id
    assert QuestionSet.objects.count() == 1


def test_changing_expectations_makes_a_new_version_that_the_next_run_records(owner):
    first = upload(owner)
    question_set = first.set_run.question_set
    question = Question.objects.get(question_set=question_set, position=1)
    assert not sets.update_expectations(question=question, expected_answer="a2")
    assert sets.update_expectations(question=question, expected_answer="better")
    question_set.refresh_from_db()
    assert (question_set.version, question.version) == (2, 2)
    # The old run keeps its version; a file with the new expectations joins at v2.
    assert Run.objects.get(batch=first).version == 1
    newer = upload(owner, rows=rows(expected=("a1", "better")))
    assert (newer.set_run.question_set_id, newer.set_run.version) == (question_set.pk, 2)
    with pytest.raises(ValueError):
        sets.update_expectations(question=question, referring_url="not an expectation")


def test_deleting_a_batch_deletes_its_run_not_the_set(owner):
    batch = upload(owner)
    question_set = batch.set_run.question_set
    delete_batch(batch=batch)
    assert not Run.objects.filter(question_set=question_set).exists()
    assert QuestionSet.objects.filter(pk=question_set.pk).exists()
