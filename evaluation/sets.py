"""Question sets: every batch is a run of one (services).

- `add_run(batch=...)`: called (through the batches.signals.batch_created signal) in the
  transaction that creates a batch: a batch run again from another joins its source's
  set; an upload whose questions and expectations equal one of the owner's sets joins
  that set (the page offers to make it a set of its own: `split_run`); otherwise the
  upload makes a new set, named from the batch.
- `update_expectations(question=..., ...)`: an edit (or the review's promotion) that
  changes a question's expectations makes a new version of its set.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import F

from batches.models import Batch, BatchItem, row_columns
from evaluation.fingerprints import QUESTION_FIELDS, chat_keys, fingerprint
from evaluation.models import Question, QuestionSet, Run

EXPECTATION_FIELDS = ("expected_answer", "expected_citation_url", "expected_outcome")


def batch_questions(batch: Batch) -> list[dict]:
    """The batch's questions as Question fields, in row order."""
    items = list(
        BatchItem.objects.filter(batch=batch)
        .order_by("position")
        .values(
            "position",
            "chat_id",
            "question",
            "referring_url",
            "row",
            *EXPECTATION_FIELDS,
        )
    )
    keys = chat_keys(item["chat_id"] for item in items)
    return [
        {
            "position": index,
            "question": item["question"],
            "referring_url": item["referring_url"],
            "chat_key": key,
            "expected_answer": item["expected_answer"],
            "expected_citation_url": item["expected_citation_url"],
            "expected_outcome": item["expected_outcome"],
            "columns": row_columns(item["row"], batch.input_columns),
        }
        for index, (item, key) in enumerate(zip(items, keys, strict=True))
    ]


def _current(question_set: QuestionSet) -> list[dict]:
    return list(question_set.questions.order_by("position").values(*QUESTION_FIELDS))


def create_set(*, batch: Batch, questions: list[dict] | None = None) -> QuestionSet:
    questions = batch_questions(batch) if questions is None else questions
    question_set = QuestionSet.objects.create(
        owner=batch.uploader, name=batch.name[:200], fingerprint=fingerprint(questions)
    )
    Question.objects.bulk_create(
        Question(question_set=question_set, **question) for question in questions
    )
    return question_set


def identical_set(*, owner, questions: list[dict]) -> QuestionSet | None:
    """The owner's newest set whose current questions and expectations equal these."""
    if owner is None:
        return None
    return (
        QuestionSet.objects.filter(owner=owner, fingerprint=fingerprint(questions))
        .order_by("-created_at", "-pk")
        .first()
    )


@transaction.atomic
def add_run(*, batch: Batch) -> Run:
    """Make `batch` a run of a set (see the module docstring); returns the run."""
    questions = batch_questions(batch)
    source = Run.objects.filter(batch_id=batch.run_from_id).select_related("question_set")
    source_run = source.first() if batch.run_from_id else None
    if source_run is not None:
        question_set = source_run.question_set
        # Run again copies the source's rows: it used the source's expectations.
        same = fingerprint(questions) == question_set.fingerprint
        version = question_set.version if same else source_run.version
        return Run.objects.create(batch=batch, question_set=question_set, version=version)
    question_set = identical_set(owner=batch.uploader, questions=questions)
    if question_set is None:
        question_set = create_set(batch=batch, questions=questions)
    return Run.objects.create(batch=batch, question_set=question_set, version=question_set.version)


@transaction.atomic
def split_run(*, run: Run) -> Run:
    """The offer on an identical upload's page: "make it a set of its own" instead."""
    question_set = create_set(batch=run.batch)
    run.question_set = question_set
    run.version = question_set.version
    run.save(update_fields=["question_set", "version"])
    return run


@transaction.atomic
def update_expectations(*, question: Question, **expected: str) -> bool:
    """Set the question's expectations (any of EXPECTATION_FIELDS); when one changes, the
    set gets a new version that the next run records. Returns whether anything changed."""
    unknown = set(expected) - set(EXPECTATION_FIELDS)
    if unknown:
        raise ValueError(f"Not an expectation: {', '.join(sorted(unknown))}")
    question_set = QuestionSet.objects.select_for_update().get(pk=question.question_set_id)
    changed = {k: v for k, v in expected.items() if getattr(question, k) != v}
    if not changed:
        return False
    QuestionSet.objects.filter(pk=question_set.pk).update(version=F("version") + 1)
    question_set.refresh_from_db(fields=["version"])
    for name, value in changed.items():
        setattr(question, name, value)
    question.version = question_set.version
    question.save(update_fields=[*changed, "version"])
    question_set.fingerprint = fingerprint(_current(question_set))
    question_set.save(update_fields=["fingerprint", "updated_at"])
    return True
