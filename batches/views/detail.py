"""The batch detail page (`/batches/<id>/`): the progress header and the rows table
(status, guard and grade filters, search, sort, paging, chosen uploaded columns), both
polled while the batch is active."""

from __future__ import annotations

import hashlib
import zlib

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.http import urlencode
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET
from django_htmx.http import HTMX_STOP_POLLING

from batches import hooks
from batches.estimate import estimate_batch, projected_calls
from batches.models import Batch, BatchItem
from batches.selectors import (
    GRADE_FILTERS,
    GUARD_FILTERS,
    NOT_FOUND,
    ROW_SORTS,
    batch_items,
    batch_stats,
    guard_counts,
    item_status_counts,
    may_act_on,
)
from batches.upload_guard import screened_items
from batches.uploads import QUESTION_ALIASES, alias_key
from batches.views.common import (
    _attach_grades,
    _get_batch_for_user,
    _grade_filter_labels,
    _poll_token,
    _runner_context,
    _shared_at_counters,
)
from chats.services import counts_words, uses_prompt

DETAIL_PAGE_SIZE = 50


def _guard_filters(batch: Batch, params: dict) -> list[tuple[str, str, int, str]]:
    """The guard outcomes (blocked, redacted) with their labels, row counts (one query)
    and the rows table's link to them."""
    counts = _shared_at_counters(batch, "guard-counts", lambda: guard_counts(batch))
    return [
        (value, value.label, counts[value], _href(batch, params, guard=value, page=None))
        for value in GUARD_FILTERS
    ]


def _row_params(query: QueryDict, batch: Batch) -> dict:
    """The rows table's state from a query string: status filter, search, sort, page and
    the uploaded columns to show."""
    status = query.get("status") or ""
    if status not in (*BatchItem.Status.values, NOT_FOUND):
        status = ""
    sort = query.get("sort") or "position"
    if sort not in ROW_SORTS:
        sort = "position"
    guard = query.get("guard") or ""
    if guard not in GUARD_FILTERS:
        guard = ""
    grade = query.get("grade") or ""
    if grade not in GRADE_FILTERS:
        grade = ""
    available = _context_columns(batch)
    return {
        "status": status,
        "guard": guard,
        "grade": grade,
        "q": (query.get("q") or "").strip()[:200],
        "sort": sort,
        "page": query.get("page") or "1",
        "cols": [column for column in query.getlist("col") if column in available],
    }


def _context_columns(batch: Batch) -> list[str]:
    """Uploaded columns that can be shown beside the question (not the question itself)."""
    return [
        str(column)
        for column in batch.input_columns
        if alias_key(str(column)) not in QUESTION_ALIASES
    ]


def _query_string(params: dict, **changes) -> str:
    """The rows table's query string with `changes` (None drops a key); defaults (first
    page, row order) are left out."""
    keys = ("status", "guard", "grade", "q", "sort", "page")
    values = {key: params[key] for key in keys} | changes
    defaults = {"sort": "position", "page": "1"}
    pairs = [
        (key, value)
        for key, value in values.items()
        if value not in (None, "") and str(value) != defaults.get(key)
    ]
    pairs += [("col", column) for column in params["cols"]]
    return urlencode(pairs)


TOKEN_FIELDS = ("pk", "status", "interaction_id", "verdict", "judge_verdict")


def _table_token(rows: list[BatchItem] | list[tuple], count: int) -> str:
    """What the rows table shows, in eight characters: its rows' states and grades, and
    the number of rows (the pager). A poll renders the table again only when it changed.
    `rows` are the page's rows, or their TOKEN_FIELDS as tuples (a poll's)."""
    state = [
        row if isinstance(row, tuple) else tuple(getattr(row, name) for name in TOKEN_FIELDS)
        for row in rows
    ]
    return f"{zlib.crc32(repr([state, count]).encode()):08x}"


def _row_labels() -> dict[str, str]:
    """The rows table's labels that name a row, translated once for the table (each row
    fills in its number: batch_tags.fill_in); the same messages as the template's."""
    return {
        "select": _("Select row %(row)s"),
        "retry": _("row %(row)s"),
        "ms": _("%(ms)s ms"),
        "chat": _("for row %(row)s"),
        "history": _("of the question of row %(row)s"),
    }


def _rows_context(
    request: HttpRequest, batch: Batch, query: QueryDict, *, table: bool = True
) -> dict:
    """The rows section: status tabs with counts, the page of rows, the pager.
    A fixed number of queries: counts (1), guard counts (1), the page (1), plus the count
    of a search. Without `table`, only what `table_token` needs of the page's rows is
    read, `page_rows` is a function that reads them in full (one query more, for a poll
    whose table changed), and the table's links (`_table_links`) are left out."""
    params = _row_params(query, batch)
    counts = _shared_at_counters(batch, "status-counts", lambda: item_status_counts(batch))
    counts = counts | {NOT_FOUND: batch.not_found_items}  # the batch's counter, as read now
    status = params["status"]
    items = batch_items(
        batch,
        status=status or None,
        guard=params["guard"] or None,
        grade=params["grade"] or None,
        query=params["q"],
        sort=params["sort"],
    )
    # The search results are not shown in the table (a JSON list per row to decode).
    items = full = items.defer("interaction__search_results")
    if not table:
        # Only what the table's token reads, as tuples (no answers, no chats, no model
        # instances): the page's rows are read in full (`full_rows`) only when the token
        # says the table changed.
        items = items.select_related(None).values_list(*TOKEN_FIELDS)
    paginator = Paginator(items, DETAIL_PAGE_SIZE)
    if not (params["q"] or params["guard"] or params["grade"]):
        # The paginator's COUNT is known from the status counts: no extra query.
        all_rows = sum(counts[value] for value in BatchItem.Status.values)
        paginator.count = counts[status] if status else all_rows
    page = paginator.get_page(params["page"])
    filters = [("", _("All"), sum(counts[value] for value in BatchItem.Status.values))]
    filters += [(value, label, counts[value]) for value, label in BatchItem.Status.choices]
    filters.append((NOT_FOUND, _("Not found"), counts[NOT_FOUND]))
    rows = list(page.object_list)

    def full_rows() -> list[BatchItem]:
        if table or not rows:
            return rows
        return list(full[page.start_index() - 1 : page.end_index()])

    context = {
        "page_rows": full_rows,
        "row_labels": _row_labels(),
        "items": _shown_items(batch, rows, params["cols"]) if table else [],
        "table_token": _table_token(rows, paginator.count),
        "batch": batch,
        "page": page,
        "params": params,
        "status": status,
        "filters": [
            (value, label, count, _href(batch, params, status=value, page=None))
            for value, label, count in filters
        ],
        "guard": params["guard"],
        "guard_filters": _guard_filters(batch, params),
        "grade": params["grade"],
        "grade_links": [
            (value, label, _href(batch, params, grade=value or None, page=None))
            for value, label in _grade_filter_labels()
        ],
        "guard_all_href": _href(batch, params, guard=None, page=None),
        "rows_query": _query_string(params),
        "retryable_count": counts[BatchItem.Status.FAILED] + counts[BatchItem.Status.CANCELLED],
        "context_columns": _context_columns(batch),
        "counts_words": counts_words(batch.ai_provider),
        "can_retry_rows": not batch.is_active and may_act_on(request.user, batch),
        "next_url": _href(batch, params),
    }
    if table:
        context |= _table_links(batch, params, page)
        context["table_key"] = _table_key(context)
    return context


def _table_key(context: dict) -> str:
    """The key the rendered rows of the table are kept under (detail.html, table-body):
    what each row shows that can change (status, answer, error, grades, review) and what
    the table shows them with (language, columns, question set, who may retry). "" (not
    kept) with repeats: a row shows its question's other repeats, on any page."""
    batch = context["batch"]
    if batch.repeats > 1:
        return ""
    rows = [
        (
            item.pk,
            item.status,
            item.interaction_id,
            item.attempts,
            item.error,
            item.graded_at,
            item.expected_answer,
            item.expected_citation_url,
            # A turn's review (and any change of it) moves its updated_at.
            item.interaction.updated_at if item.interaction else None,
        )
        for item in context["items"]
    ]
    shown = [
        get_language(),
        batch.pk,
        batch.page_language,
        context["params"]["cols"],
        context["can_retry_rows"],
        context["counts_words"],
        context["run_set"].url if context.get("run_set") else "",
    ]
    return f"{batch.pk}:{hashlib.sha256(repr([rows, shown]).encode()).hexdigest()}"


def _table_links(batch: Batch, params: dict, page) -> dict:
    """What only the table and its pager show: the pages' and the sorts' links, and the
    batch's question set (each row links to its question's history there; one query).
    A poll that redraws only the counts does without them."""
    run_sets = hooks.run_sets()
    sorts = {"position": "position", "status": "status"}
    sorts |= {"latency_desc": "-latency", "latency_asc": "latency"}
    prev_href = next_href = ""
    if page.has_previous():
        prev_href = _href(batch, params, page=page.previous_page_number())
    if page.has_next():
        next_href = _href(batch, params, page=page.next_page_number())
    return {
        "run_set": run_sets.labels([batch.pk]).get(batch.pk) if run_sets else None,
        "page_links": [
            (number, _href(batch, params, page=number) if number else "")
            for number in _page_numbers(page.number, page.paginator.num_pages)
        ],
        "sort_links": {
            name: _href(batch, params, sort=key, page=None) for name, key in sorts.items()
        },
        "prev_href": prev_href,
        "next_href": next_href,
    }


def _shown_items(batch: Batch, rows: list[BatchItem], columns: list[str]) -> list[BatchItem]:
    """The page's rows as the guard will send them (batches.upload_guard), with the
    uploaded cells chosen to show beside the question."""
    items = screened_items(rows, headers=batch.input_columns, language=batch.page_language)
    for item in items:
        item.context_cells = [(column, item.shown_row.get(column)) for column in columns]
    _attach_question_results(batch, items)
    return items


def _attach_question_results(batch: Batch, items: list[BatchItem]) -> None:
    """With repeats: `item.question_result` on each row of the page, its question's k
    rows read as one (passes out of k, pass@k, pass^k, agreement), whichever page or
    filter the other repeats are on (one query)."""
    if batch.repeats <= 1 or not items:
        return
    indexes = {item.question_index for item in items}
    repeats = (
        batch.items.filter(question_index__in=indexes)
        .select_related("interaction")
        .only("question_index", "repeat", "status", "verdict", "interaction__answer")
    )
    results = hooks.graders().question_results(repeats)
    for item in items:
        item.question_result = results.get(item.question_index)


def _href(batch: Batch, params: dict, **changes) -> str:
    """The detail page's URL with the rows table's state (and `changes`)."""
    query = _query_string(params, **changes)
    return batch.get_absolute_url() + (f"?{query}" if query else "")


def _page_numbers(current: int, last: int) -> list[int | None]:
    """Page numbers to link: first, last, and two each side of the current (None = gap)."""
    wanted = {1, last, *range(current - 2, current + 3)}
    numbers: list[int | None] = []
    for number in sorted(n for n in wanted if 1 <= n <= last):
        if numbers and numbers[-1] is not None and number - numbers[-1] > 1:
            numbers.append(None)
        numbers.append(number)
    return numbers


def _progress_context(batch: Batch, rows: dict | None = None) -> dict:
    """The progress section; `rows` (the rows section's context) gives its poll the rows
    table's state to follow."""
    rows = rows or {}
    # The estimate searches a sample of rows: built on the start step and while paused
    # (pages that do not poll), not on every progress poll.
    show_estimate = batch.status in (Batch.Status.UPLOADED, Batch.Status.PAUSED)
    return {
        "batch": batch,
        # The start step: what Start will send, before anything is sent.
        "projected": projected_calls(batch) if batch.status == Batch.Status.UPLOADED else None,
        "stats": batch_stats(batch),
        # Economy mode: the submissions to the provider's batch API (one query).
        "provider_batches": list(batch.provider_batches.all()) if batch.is_economy else [],
        "estimate": estimate_batch(batch) if show_estimate else None,
        "currency": settings.AI_PRICE_CURRENCY,
        "finished_statuses": Batch.FINISHED_STATUSES,
        **_runner_context(batch),
        "next_url": batch.get_absolute_url(),
        "poll_token": _poll_token(batch),
        "table_token": rows.get("table_token", ""),
        "rows_query": rows.get("rows_query", ""),
    }


@login_required
@require_GET
def batch_detail(request: HttpRequest, pk: int) -> HttpResponse:
    batch = _get_batch_for_user(request, pk)
    rows = _rows_context(request, batch, request.GET)
    context = _progress_context(batch, rows) | rows
    context |= hooks.graders().detail_context(request, batch, grade=context["params"]["grade"])
    context["uses_prompt"] = uses_prompt(batch.ai_provider)
    context["next_url"] = request.get_full_path()
    return render(request, "batches/detail.html", context)


@login_required
@require_GET
def batch_item_rows(request: HttpRequest, pk: int) -> HttpResponse:
    """The detail page's rows section (tabs, table, pager): the final state once the batch
    is not active, with 286 (the progress poll refreshes it while it is)."""
    batch = _get_batch_for_user(request, pk)
    if not request.htmx:
        query = request.GET.urlencode()
        return redirect(batch.get_absolute_url() + (f"?{query}" if query else ""))
    response = render(
        request, "batches/detail.html#rows", _rows_context(request, batch, request.GET)
    )
    if not batch.is_active:
        response.status_code = HTMX_STOP_POLLING
    return response


@login_required
@require_GET
def batch_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The detail page's one poll while the batch is active (docs/pages.md, "Polling").

    The query carries what the page shows: `v`, the batch's poll token when it was drawn
    (`_poll_token`), `t`, the rows table's token (`_table_token`), and the rows table's
    own state (filters, search, sort, page, columns).

    1. Nothing changed (`v` is the batch's token): 204, the page keeps what it has (three
       queries: session, user, batch).
    2. Else the progress section, and when the rows' counters changed, the rows section
       out of band: the whole section when its table changed (`t`), else only its counts;
       and the grades (graded with the rows that the counters count).
    3. Once the batch is not active: everything in its final state, with 286 so polling
       stops, and the evaluation block (evaluation's `detail_oob`).
    """
    batch = _get_batch_for_user(request, pk)
    if not request.htmx:
        return redirect(batch)
    token = _poll_token(batch)
    seen = request.GET.get("v", "")
    if batch.is_active and seen == token:
        return HttpResponse(status=204)
    rows_changed = seen.split(".")[0] != token.split(".")[0]
    finished = not batch.is_active
    rows = None
    if rows_changed or finished:
        rows = _rows_context(request, batch, request.GET, table=False)
        if finished or rows["table_token"] != request.GET.get("t"):
            rows["items"] = _shown_items(batch, rows["page_rows"](), rows["params"]["cols"])
            rows |= _table_links(batch, rows["params"], rows["page"])
            rows["table_key"] = _table_key(rows)
            rows["rows_oob"] = "section"
        else:
            rows["rows_oob"] = "filters"
    # The final state is announced in the page's live region, and the flash messages of
    # the run ("… started.") are cleared: they no longer describe the batch.
    context = _progress_context(batch, rows or {"table_token": request.GET.get("t", "")})
    if rows is None:
        context["rows_query"] = _query_string(_row_params(request.GET, batch))
    context["announce"] = finished
    response = render(request, "batches/detail.html#progress", context)
    if rows is not None and rows["rows_oob"] == "section":
        rows["oob"] = True
        response.write(render_to_string("batches/detail.html#rows", rows, request=request))
    elif rows is not None:
        rows["filters_oob"] = True
        response.write(render_to_string("batches/detail.html#row-filters", rows, request=request))
    if finished:
        response.status_code = HTMX_STOP_POLLING
        hooks.graders().detail_oob(request, response, batch)
    elif rows_changed:
        _attach_grades([batch])
        grades = {"batch": batch, "grades_oob": True}
        response.write(render_to_string("batches/_batch_grades.html", grades, request=request))
    return response
