"""Question set pages (`/sets/`): the user's sets, a set's grid of questions × runs with
its trend chart, and one question's history across the runs. Reads come from
evaluation.selectors (a fixed number of queries per page); another user's set is 404."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from batches.models import BatchItem
from evaluation import sharing
from evaluation.agreement import agreement_rows, review_summary_of
from evaluation.chart import trend_chart
from evaluation.models import Question, QuestionSet
from evaluation.selectors import (
    GRID_FILTERS,
    attach_latest_grades,
    attach_run_grades,
    filter_counts,
    filter_positions,
    grid_rows,
    grid_runs,
    question_history,
    question_positions,
    question_stats,
    set_list_for,
    sets_for,
)

SET_PAGE_SIZE = 20
QUESTION_PAGE_SIZE = 50
RUN_PAGE_SIZE = 8
CHART_RUNS = 30  # the newest runs drawn in the trend chart


def _get_set_for_user(request: HttpRequest, pk: int) -> QuestionSet:
    """The set when the user may see it (own, or staff); 404 otherwise."""
    return get_object_or_404(sets_for(request.user), pk=pk)


def _set_review_context(request: HttpRequest, question_set: QuestionSet, runs) -> dict:
    """The experts' reviews over the runs the user sees, their agreement with the
    automatic verdict and the judge (one query), and the set's share form (its owner)."""
    summary = review_summary_of(
        BatchItem.objects.filter(batch_id__in=[grid_run.batch.pk for grid_run in runs])
    )
    return {
        "review_summary": summary,
        "review_agreements": agreement_rows(summary),
        "may_share": sharing.may_share_set(request.user, question_set),
    }


def filter_labels() -> dict[str, str]:
    return {
        "regressed": _("Regressed in the latest run"),
        "flaky": _("Flaky"),
        "always_failing": _("Always failing"),
        "ungraded": _("Not graded in the latest run"),
    }


def verdict_labels() -> dict[str, str]:
    return {
        "pass": _("Pass"),
        "fail": _("Fail"),
        "ungraded": _("Not graded"),
        "": _("Not graded yet"),
    }


def cell_texts() -> dict:
    """The words of the grid's cells (evaluation.templatetags.evaluation.grid_cell)."""
    return {
        "verdicts": verdict_labels(),
        "open_chat": _("Open the chat"),
        "passed": _("passed"),
        "no_answer": _("No answer"),
        "reviewed": _("Reviewed by an expert"),
    }


@login_required
@require_GET
def set_list(request: HttpRequest) -> HttpResponse:
    """The user's sets with their number of questions and runs and the latest pass rate
    (three queries)."""
    page = Paginator(set_list_for(request.user), SET_PAGE_SIZE).get_page(request.GET.get("page"))
    sets = list(page.object_list)
    attach_latest_grades(sets)
    return render(request, "evaluation/set_list.html", {"page": page, "sets": sets})


def _grid_params(request: HttpRequest) -> dict[str, str]:
    name = request.GET.get("filter") or ""
    return {
        "q": (request.GET.get("q") or "").strip()[:200],
        "filter": name if name in GRID_FILTERS else "",
        "page": request.GET.get("page") or "1",
        "runs": request.GET.get("runs") or "1",
    }


def _grid_href(question_set: QuestionSet, params: dict, **changes) -> str:
    values = params | changes
    pairs = [
        (key, values[key])
        for key in ("q", "filter", "page", "runs")
        if values.get(key) not in (None, "", "1")
    ]
    query = urlencode(pairs)
    return question_set.get_absolute_url() + (f"?{query}" if query else "")


@login_required
@require_GET
def set_grid(request: HttpRequest, pk: int) -> HttpResponse:
    """Questions down, runs across (newest first, paged), a cell per question and run;
    filters, search, the trend chart, the experts' reviews. Ten queries whatever the set's
    size (eleven when a run has repeats: its grade summary reads pass@k in one more):
    session and user, the set, its runs, their grades, the questions' stats over every
    run, the matching positions, the page's questions, the page's cells, the reviews."""
    question_set = _get_set_for_user(request, pk)
    params = _grid_params(request)
    runs = grid_runs(request.user, question_set)
    run_page = Paginator(runs, RUN_PAGE_SIZE).get_page(params["runs"])
    page_runs = list(run_page.object_list)
    chart_runs = list(reversed(runs[:CHART_RUNS]))
    by_batch = {grid_run.batch.pk: grid_run for grid_run in [*chart_runs, *page_runs]}
    attach_run_grades(by_batch.values())
    stats = question_stats([grid_run.batch.pk for grid_run in runs])
    positions = question_positions(question_set, search=params["q"])
    counts = filter_counts(positions, stats)
    if params["filter"]:
        positions = filter_positions(positions, stats, params["filter"])
    page = Paginator(positions, QUESTION_PAGE_SIZE).get_page(params["page"])
    rows = grid_rows(question_set, list(page.object_list), page_runs, stats)
    for grid_run in page_runs:
        grid_run.cell_label = _("Run %(number)s (%(date)s)") % {
            "number": grid_run.number,
            "date": date_format(timezone.localtime(grid_run.batch.created_at), "SHORT_DATE_FORMAT"),
        }
    labels = filter_labels()
    filters = [("", _("All questions"), None)] + [
        (name, labels[name], counts[name]) for name in GRID_FILTERS
    ]
    context = {
        "question_set": question_set,
        "params": params,
        "runs": runs,
        "page_runs": page_runs,
        "run_last": page_runs[-1].number if page_runs else None,
        "run_page": run_page,
        "page": page,
        "rows": rows,
        "filters": [
            (name, label, count, _grid_href(question_set, params, filter=name, page=None))
            for name, label, count in filters
        ],
        "cell_texts": cell_texts(),
        "chart": trend_chart(chart_runs),
        "chart_runs": chart_runs,
        "prev_href": _grid_href(question_set, params, page=page.number - 1)
        if page.has_previous()
        else "",
        "next_href": _grid_href(question_set, params, page=page.number + 1)
        if page.has_next()
        else "",
        "newer_runs_href": _grid_href(question_set, params, runs=run_page.number - 1)
        if run_page.has_previous()
        else "",
        "older_runs_href": _grid_href(question_set, params, runs=run_page.number + 1)
        if run_page.has_next()
        else "",
        "clear_href": _grid_href(question_set, params, q=None, filter=None, page=None),
        **_set_review_context(request, question_set, runs),
    }
    return render(request, "evaluation/set_grid.html", context)


@login_required
@require_GET
def question_history_view(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    """Question `number` (1-based, as on the grid) of the set: its current expectations,
    then every run's answers in date order, each with its verdict and a word diff
    against the previous run's answer. Six queries, whatever the number of runs."""
    question_set = _get_set_for_user(request, pk)
    question = get_object_or_404(Question, question_set=question_set, position=number - 1)
    history = question_history(request.user, question)
    attach_run_grades(entry.grid_run for entry in history)
    count = question_set.questions.count()
    context = {
        "question_set": question_set,
        "question": question,
        "number": number,
        "count": count,
        "history": history,
        "verdict_labels": verdict_labels(),
        "previous_number": number - 1 if number > 1 else None,
        "next_number": number + 1 if number < count else None,
    }
    return render(request, "evaluation/question_history.html", context)
