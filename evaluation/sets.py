"""Question sets: every batch is a run of one (services).

- `add_run(batch=...)`: called (through the batches.signals.batch_created signal) in the
  transaction that creates a batch: a batch run again from another joins its source's
  set; an upload whose questions and expectations equal one of the owner's sets joins
  that set (the page offers to make it a set of its own: `split_run`); otherwise the
  upload makes a new set, named from the batch.
- `update_expectations(question=..., ...)`: an edit (or the review's promotion) that
  changes a question's expectations makes a new version of its set.
- `run_set(question_set=..., ...)`: a new run of a set from its current questions and
  expectations (the API's `POST /api/sets/{id}/run`); the batch joins that set.

A batch whose questions are answered k times (`Batch.repeats`) has k rows per question;
its questions are its first repeats (`repeat == 1`) by `question_index`, so a run with
repeats has the same fingerprint, and joins the same set, as a run without.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar

from django.db import transaction
from django.db.models import F

from batches import services as batch_services
from batches.bulk import insert_rows
from batches.models import Batch, BatchItem, row_columns
from batches.uploads import ParsedRow
from evaluation.fingerprints import QUESTION_FIELDS, chat_keys, fingerprint
from evaluation.models import Question, QuestionSet, Run

EXPECTATION_FIELDS = ("expected_answer", "expected_citation_url", "expected_outcome")


def batch_questions(batch: Batch) -> list[dict]:
    """The batch's questions as Question fields, in question order (first repeats)."""
    items = BatchItem.objects.filter(batch=batch)
    if batch.repeats > 1:
        # Question-major: the first repeats are in question order by position too.
        items = items.filter(repeat=1)
    items = list(
        items.order_by("position").values(
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
    # batches.bulk's insert (COPY on PostgreSQL): an upload's set has as many questions
    # as the batch has rows, and bulk_create took more time than the batch's own rows.
    fields = list(questions[0]) if questions else []
    insert_rows(
        Question,
        varying=fields,
        rows=([question[name] for name in fields] for question in questions),
        constants={"question_set": question_set},
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


# The set a batch being created by run_set joins (add_run runs inside create_batch_run,
# through the batch_created signal, and batches knows nothing of sets).
_joining: ContextVar[QuestionSet | None] = ContextVar("joining_set", default=None)


@transaction.atomic
def add_run(*, batch: Batch) -> Run:
    """Make `batch` a run of a set (see the module docstring); returns the run."""
    joining = _joining.get()
    if joining is not None:
        return Run.objects.create(batch=batch, question_set=joining, version=joining.version)
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


def question_set_ids(batch_ids: Iterable[int]) -> dict[int, int]:
    """{batch_id: question_set_id} of these batches' runs (one query)."""
    return dict(
        Run.objects.filter(batch_id__in=list(batch_ids)).values_list("batch_id", "question_set_id")
    )


def set_rows(question_set: QuestionSet) -> tuple[list[ParsedRow], list[str] | None]:
    """The set's current questions and expectations as upload rows, and the headers of its
    uploaded columns in file order (its newest run's; None: as the rows have them)."""
    latest = question_set.runs.select_related("batch").order_by("-batch__created_at").first()
    headers = list(latest.batch.input_columns) if latest and latest.batch.input_columns else None
    rows = [
        ParsedRow(
            question=question.question,
            referring_url=question.referring_url,
            chat_key=question.chat_key,
            columns=dict(question.columns or {}),
            expected_answer=question.expected_answer,
            expected_citation_url=question.expected_citation_url,
            expected_outcome=question.expected_outcome,
        )
        for question in question_set.questions.order_by("position")
    ]
    return rows, headers


def run_set(
    *,
    question_set: QuestionSet,
    uploader,
    name: str = "",
    ai_provider: str | None = "",
    model: str | None = "",
    search_provider: str | None = "",
    page_language: str = "en",
    apply_overrides: bool = False,
    judge_enabled: bool = False,
    repeats: int = 1,
    start: bool = False,
) -> Batch:
    """A new run of `question_set`: a batch of its current questions and expectations
    with these settings, a run of this set at its current version; started at once when
    `start`. Raises UploadError or ProviderNotConfigured like create_batch_run (nothing is
    created then)."""
    rows, headers = set_rows(question_set)
    token = _joining.set(question_set)
    try:
        with transaction.atomic():
            batch = batch_services.create_batch_run(
                uploader=uploader,
                name=(name or "").strip() or question_set.name,
                rows=rows,
                ai_provider=ai_provider,
                model=model,
                search_provider=search_provider,
                page_language=page_language,
                apply_overrides=apply_overrides,
                judge_enabled=judge_enabled,
                input_columns=headers,
                repeats=repeats,
            )
    finally:
        _joining.reset(token)
    if start:
        batch_services.start_batch(batch=batch)
    return batch
