"""Reads of question sets for the set pages and the API: the user's sets, a set's runs,
the grid of questions × runs and one question's history. A fixed number of queries each,
whatever the number of questions and runs (values() rows, no query per cell).

Who sees what, as for batches (batches.selectors.batches_for): a user sees their own
sets and those shared with them as reviewer (evaluation.sharing.sets_for), and in them
the runs of the batches they may see (their own and those shared with them); staff see
every set and run. Another
user's set is not found (404), never forbidden.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery

from batches.models import Batch, BatchItem, Verdict
from batches.selectors import batches_for
from evaluation.grading import EMPTY_SUMMARY, GradeSummary, grade_summaries
from evaluation.models import Question, QuestionSet, Run
from evaluation.repeats import RepeatResult, repeat_result
from evaluation.sharing import sets_for

# The grid's filters (query parameter `filter`), in the order the page offers them.
GRID_FILTERS = ("regressed", "flaky", "always_failing", "ungraded")


def runs_for(user, question_set: QuestionSet) -> QuerySet[Run]:
    """The set's runs whose batch `user` may see, newest first, with their batch."""
    runs = Run.objects.filter(question_set=question_set).select_related("batch")
    if not user.is_staff:
        runs = runs.filter(batch__in=batches_for(user).values("pk"))
    return runs.order_by("-batch__created_at", "-batch_id")


def set_list_for(user) -> QuerySet[QuestionSet]:
    """The user's sets, newest first, with `question_count`, `run_count` and
    `latest_batch_id` (the newest run's batch) annotated in one query."""
    runs = Run.objects.filter(question_set=OuterRef("pk"))
    if not user.is_staff:
        runs = runs.filter(batch__in=batches_for(user).values("pk"))
    latest = runs.order_by("-batch__created_at", "-batch_id").values("batch_id")[:1]
    run_count = runs.order_by().values("question_set").annotate(n=Count("pk")).values("n")[:1]
    question_count = (
        Question.objects.filter(question_set=OuterRef("pk"))
        .order_by()
        .values("question_set")
        .annotate(n=Count("pk"))
        .values("n")[:1]
    )
    return sets_for(user).annotate(
        run_count=Subquery(run_count),
        question_count=Subquery(question_count),
        latest_batch_id=Subquery(latest),
    )


def attach_latest_grades(sets: Sequence[QuestionSet]) -> None:
    """`latest_grades` (the newest run's GradeSummary, or None) on each set: one query."""
    summaries = grade_summaries(s.latest_batch_id for s in sets if s.latest_batch_id)
    for question_set in sets:
        question_set.latest_grades = summaries.get(question_set.latest_batch_id)


# --- The grid ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One question in one run: its k answers' verdicts and chats, in repeat order."""

    verdicts: tuple[str, ...]
    chat_ids: tuple[str, ...]
    # The experts' review verdict of each answer ("" = not reviewed), in repeat order.
    reviews: tuple[str, ...] = ()

    @property
    def reviewed(self) -> int:
        """How many of the answers an expert reviewed (the grid marks the cell)."""
        return sum(bool(review) for review in self.reviews)

    @property
    def result(self) -> RepeatResult:
        return repeat_result(self.verdicts)

    @property
    def k(self) -> int:
        return len(self.verdicts)

    @property
    def passes(self) -> int:
        return self.result.passes

    @property
    def state(self) -> str:
        """pass (every answer passed), fail (graded, none passed), partial (some
        passed), ungraded (no answer graded yet, or nothing to grade against)."""
        result = self.result
        if result.k and result.passes == result.k:
            return "pass"
        if result.passes:
            return "partial"
        return "fail" if result.graded else "ungraded"

    @property
    def repeats(self) -> list[tuple[int, str, str]]:
        """(repeat number, verdict, chat id) per answer."""
        return [
            (n, verdict, chat_id)
            for n, (verdict, chat_id) in enumerate(
                zip(self.verdicts, self.chat_ids, strict=True), start=1
            )
        ]


EMPTY_CELL = Cell((), ())


def cells_for(run_ids: Sequence[int], positions: Iterable[int] | None = None) -> dict:
    """{(batch_id, position): Cell} for these runs (and questions; None: all): one query."""
    items = BatchItem.objects.filter(batch_id__in=list(run_ids))
    if positions is not None:
        items = items.filter(question_index__in=list(positions))
    rows = items.order_by("batch_id", "question_index", "repeat", "position").values_list(
        "batch_id", "question_index", "verdict", "chat__chat_id", "interaction__review_verdict"
    )
    verdicts: dict[tuple[int, int], list[str]] = defaultdict(list)
    chats: dict[tuple[int, int], list[str]] = defaultdict(list)
    reviews: dict[tuple[int, int], list[str]] = defaultdict(list)
    for batch_id, index, verdict, chat_id, review in rows:
        verdicts[(batch_id, index)].append(verdict or "")
        chats[(batch_id, index)].append(chat_id)
        reviews[(batch_id, index)].append(review or "")
    return {
        key: Cell(tuple(value), tuple(chats[key]), tuple(reviews[key]))
        for key, value in verdicts.items()
    }


@dataclass(frozen=True)
class QuestionStats:
    """A question's verdicts over the runs (every repeat counted), for the filters."""

    passes: int = 0
    fails: int = 0
    latest_total: int = 0
    latest_passes: int = 0
    latest_fails: int = 0
    previous_total: int = 0
    previous_passes: int = 0

    @property
    def regressed(self) -> bool:
        """Every answer passed in the previous run; one or more fails in the latest."""
        return bool(
            self.previous_total
            and self.previous_passes == self.previous_total
            and self.latest_fails
        )

    @property
    def flaky(self) -> bool:
        """Passed somewhere and failed somewhere: across runs or across repeats."""
        return bool(self.passes and self.fails)

    @property
    def always_failing(self) -> bool:
        """Graded and failed, and never passed in any run."""
        return bool(self.fails and not self.passes)

    @property
    def ungraded(self) -> bool:
        """The latest run gave it no pass or fail verdict (nothing to grade against,
        not answered yet, or no row in that run)."""
        return not (self.latest_passes or self.latest_fails)

    def matches(self, name: str) -> bool:
        return bool(getattr(self, name))


def question_stats(run_ids: Sequence[int]) -> dict[int, QuestionStats]:
    """QuestionStats per question position over these runs (newest first): one query."""
    if not run_ids:
        return {}
    latest = run_ids[0]
    previous = run_ids[1] if len(run_ids) > 1 else None
    passed, failed = Q(verdict=Verdict.PASS), Q(verdict=Verdict.FAIL)
    rows = (
        BatchItem.objects.filter(batch_id__in=list(run_ids))
        .order_by()
        .values("question_index")
        .annotate(
            passes=Count("id", filter=passed),
            fails=Count("id", filter=failed),
            latest_total=Count("id", filter=Q(batch_id=latest)),
            latest_passes=Count("id", filter=Q(batch_id=latest) & passed),
            latest_fails=Count("id", filter=Q(batch_id=latest) & failed),
            previous_total=Count("id", filter=Q(batch_id=previous)),
            previous_passes=Count("id", filter=Q(batch_id=previous) & passed),
        )
    )
    return {row.pop("question_index"): QuestionStats(**row) for row in rows}


@dataclass
class GridRun:
    """A run as a column: its batch, its number in the set (1 = the first run), rates."""

    run: Run
    number: int
    grades: GradeSummary = EMPTY_SUMMARY
    cell_label: str = ""  # what a cell of this run is called on a phone (set_views)

    @property
    def batch(self) -> Batch:
        return self.run.batch


@dataclass
class GridRow:
    position: int
    question: str
    cells: list[tuple[GridRun, Cell]] = field(default_factory=list)
    stats: QuestionStats = field(default_factory=QuestionStats)

    @property
    def number(self) -> int:
        return self.position + 1


def grid_runs(user, question_set: QuestionSet) -> list[GridRun]:
    """Every visible run of the set as a GridRun, newest first (one query)."""
    runs = list(runs_for(user, question_set))
    return [GridRun(run=run, number=len(runs) - index) for index, run in enumerate(runs)]


def attach_run_grades(runs: Iterable[GridRun]) -> None:
    """Each run's GradeSummary (`grades`): one query."""
    runs = list(runs)
    summaries = grade_summaries(grid_run.batch.pk for grid_run in runs)
    for grid_run in runs:
        grid_run.grades = summaries.get(grid_run.batch.pk, EMPTY_SUMMARY)


def question_positions(question_set: QuestionSet, *, search: str = "") -> list[int]:
    """The positions of the set's questions, in order; only those whose text contains
    `search` (case ignored) when given. One query."""
    questions = question_set.questions.all()
    if search:
        questions = questions.filter(question__icontains=search)
    return list(questions.order_by("position").values_list("position", flat=True))


def grid_rows(
    question_set: QuestionSet,
    positions: Sequence[int],
    runs: Sequence[GridRun],
    stats: dict[int, QuestionStats] | None = None,
) -> list[GridRow]:
    """The rows of these questions with a cell per run, in `positions` order: two queries
    (the questions' texts, the runs' rows)."""
    texts = dict(
        question_set.questions.filter(position__in=list(positions)).values_list(
            "position", "question"
        )
    )
    cells = cells_for([grid_run.batch.pk for grid_run in runs], positions) if runs else {}
    stats = stats or {}
    return [
        GridRow(
            position=position,
            question=texts.get(position, ""),
            cells=[
                (grid_run, cells.get((grid_run.batch.pk, position), EMPTY_CELL))
                for grid_run in runs
            ],
            stats=stats.get(position, QuestionStats()),
        )
        for position in positions
    ]


def filter_positions(
    positions: Sequence[int], stats: dict[int, QuestionStats], name: str
) -> list[int]:
    empty = QuestionStats()
    return [p for p in positions if stats.get(p, empty).matches(name)]


def filter_counts(positions: Sequence[int], stats: dict[int, QuestionStats]) -> dict[str, int]:
    empty = QuestionStats()
    return {
        name: sum(stats.get(p, empty).matches(name) for p in positions) for name in GRID_FILTERS
    }


# --- One question's history -----------------------------------------------------------------


@dataclass
class HistoryAnswer:
    item: BatchItem
    previous: BatchItem | None  # the previous run's answer it is compared with

    @property
    def answer(self) -> str:
        return self.item.interaction.answer if self.item.interaction else ""

    @property
    def previous_answer(self) -> str | None:
        if self.previous is None:
            return None
        return self.previous.interaction.answer if self.previous.interaction else ""


@dataclass
class HistoryRun:
    grid_run: GridRun
    answers: list[HistoryAnswer]
    cell: Cell


def question_history(user, question: Question) -> list[HistoryRun]:
    """Every visible run's answers to `question`, oldest run first, each answer with the
    previous run's answer of the same repeat (else its first) to diff against. Two
    queries (the runs, their rows with answers and chats)."""
    runs = list(reversed(grid_runs(user, question.question_set)))
    items = (
        BatchItem.objects.filter(
            batch_id__in=[r.batch.pk for r in runs], question_index=question.position
        )
        .select_related("interaction", "chat")
        .order_by("batch_id", "repeat", "position")
    )
    by_run: dict[int, list[BatchItem]] = defaultdict(list)
    for item in items:
        by_run[item.batch_id].append(item)
    history: list[HistoryRun] = []
    previous: list[BatchItem] = []
    for grid_run in runs:
        rows = by_run.get(grid_run.batch.pk, [])
        answers = []
        for item in rows:
            same = [p for p in previous if p.repeat == item.repeat]
            answers.append(HistoryAnswer(item, (same or previous or [None])[0]))
        cell = Cell(tuple(i.verdict or "" for i in rows), tuple(i.chat.chat_id for i in rows))
        history.append(HistoryRun(grid_run=grid_run, answers=answers, cell=cell))
        if rows:
            previous = rows
    return history


# --- For the batch list (batches.hooks.RunSets) -------------------------------------------


@dataclass(frozen=True)
class SetLabel:
    set_id: int
    name: str

    @cached_property  # each row of the batch page's table links into it
    def url(self) -> str:
        from django.urls import reverse

        return reverse("evaluation:set", args=[self.set_id])


def set_labels(batch_ids: Iterable[int]) -> dict[int, SetLabel]:
    """{batch_id: SetLabel} for these batches' sets: one query."""
    rows = Run.objects.filter(batch_id__in=list(batch_ids)).values_list(
        "batch_id", "question_set_id", "question_set__name"
    )
    return {batch_id: SetLabel(set_id, name) for batch_id, set_id, name in rows}


def set_batch_ids(set_id: int) -> QuerySet:
    """The ids of the set's batches, as a subquery."""
    return Run.objects.filter(question_set_id=set_id).values("batch_id")
