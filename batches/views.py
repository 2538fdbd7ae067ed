"""Batch pages: the BatchPage (BatchUpload above BatchList) and the batch detail.

Every page works without JavaScript (forms post and redirect); htmx requests get the
named partial of the same template instead (`"batches/list.html#list"`), plus the flash
messages swapped out of band into the page's live region.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HTMX_STOP_POLLING, HttpResponseClientRedirect

from batches import runners, services
from batches.admission import slice_admission
from batches.compare import CHANGES, COMPARE_FORMATS, compare_batches, compare_response
from batches.errors import SliceRefused, UploadError
from batches.events import run_slice
from batches.export import EXPORT_FORMATS, export_response
from batches.forms import BatchUploadForm, ColumnsForm, RegradeForm, RunAgainForm
from batches.grading import grade_summaries, regrade_batch
from batches.ingest import ACCEPTED_QUESTION_HEADERS
from batches.models import Batch, BatchItem
from batches.selectors import (
    GRADE_FILTERS,
    GUARD_FILTERS,
    NOT_FOUND,
    ROW_SORTS,
    batch_items,
    batch_stats,
    batches_for,
    guard_counts,
    item_status_counts,
    may_act_on,
    not_found_counts,
    worker_alive,
)
from chats.errors import ProviderNotConfigured
from chats.prompts import counts_words, uses_prompt

LIST_PAGE_SIZE = 20
DETAIL_PAGE_SIZE = 50
# A page-driven slice is kept short so that the request finishes well inside any proxy
# timeout and the progress bar moves between slices.
PAGE_SLICE_SECONDS = 5.0


def _get_batch_for_user(request: HttpRequest, pk: int, *, act: bool = False) -> Batch:
    """The batch when the user may see it (own, or staff); 404 otherwise. With `act`, 403
    when they may see it but not change it (staff on another user's batch)."""
    batch = get_object_or_404(batches_for(request.user), pk=pk)
    if act and not may_act_on(request.user, batch):
        raise PermissionDenied(
            _(
                "Staff may read every batch, but only its owner (or a superuser) may start, "
                "process, cancel, retry or delete it."
            )
        )
    return batch


def _inline() -> bool:
    """No broker: the pages may drive slices (only while no worker is alive)."""
    return runners.runner_mode() == "inline"


def _runner_context() -> dict:
    """What the inline driver needs: may the page drive, and is a worker doing it."""
    inline = _inline()
    return {"inline": inline, "worker_alive": inline and worker_alive()}


def _slice_seconds() -> float:
    return min(PAGE_SLICE_SECONDS, settings.BATCH_SLICE_SECONDS)


def _next_url(request: HttpRequest, default: str) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return default


def _with_messages(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """Append pending flash messages, swapped out of band into the live region."""
    response.write(render_to_string("includes/messages_oob.html", request=request))
    return response


def _list_context(request: HttpRequest) -> dict:
    paginator = Paginator(batches_for(request.user), LIST_PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    batches = list(page.object_list)
    not_found_counts(batches)
    _attach_grades(batches)
    next_url = reverse("batches:list")
    if page.number > 1:
        next_url += f"?page={page.number}"
    return {
        "next_url": next_url,
        "page": page,
        "batches": batches,
        "any_active": any(batch.is_active for batch in batches),
        **_runner_context(),
    }


def _render_list(request: HttpRequest, **extra) -> HttpResponse:
    context = _list_context(request) | extra
    return render(request, "batches/list.html#list", context)


@login_required
@require_http_methods(["GET", "POST"])
def batch_page(request: HttpRequest) -> HttpResponse:
    """BatchPage: GET shows the form and the list; POST uploads a batch."""
    if request.method == "POST":
        if "draft" in request.POST:
            # Step 2: the column chooser posted back.
            columns_form = ColumnsForm(request.POST, owner=request.user)
            batch = _create_from_columns(request, columns_form)
            if batch is None:
                return _render_columns(request, columns_form, status=400)
            form = BatchUploadForm()
        else:
            form = BatchUploadForm(
                request.POST,
                request.FILES,
                choose_columns=request.POST.get("action") == "columns",
            )
            if form.is_valid() and form.needs_columns:
                return _columns_step(request, form)
            batch = _create_from_form(request, form)
        if request.htmx:
            context = {"form": BatchUploadForm() if batch else form, "created": batch}
            response = render(request, "batches/list.html#upload", context)
            if batch:
                messages.success(request, _created_message(batch))
                _with_messages(request, response)
                # The new batch appears in the list at once, out of band, with a place
                # for its driver (replaced when it is started).
                response.write(
                    render_to_string(
                        "batches/list.html#list",
                        _list_context(request) | {"oob": True},
                        request=request,
                    )
                )
                response.write(
                    render_to_string("batches/_driver.html#slot", {"batch": batch}, request=request)
                )
            return response
        if batch:
            messages.success(request, _created_message(batch))
            return redirect("batches:list")
        # No JavaScript and an invalid form: render the page with the errors (a redirect
        # would lose them); the status says the upload was refused.
        context = _list_context(request) | {"form": form}
        return render(request, "batches/list.html", context, status=400)
    context = _list_context(request) | {"form": BatchUploadForm()}
    return render(request, "batches/list.html", context)


def _created_message(batch: Batch) -> str:
    return _("Batch “%(name)s” was created with %(count)s questions. Start it when ready.") % {
        "name": batch.name,
        "count": batch.total_items,
    }


def _columns_step(request: HttpRequest, form: BatchUploadForm) -> HttpResponse:
    """Keep the file on the server and show the column chooser with the first rows."""
    upload = form.cleaned_data["file"]
    draft = services.save_upload_draft(
        owner=request.user, filename=upload.name or "", data=form.file_bytes
    )
    initial = {
        key: request.POST.get(key, "")
        for key in ("name", "ai_model", "search_provider", "page_language")
    }
    initial["apply_overrides"] = form.cleaned_data["apply_overrides"]
    initial["judge_enabled"] = form.cleaned_data["judge_enabled"]
    columns_form = ColumnsForm(owner=request.user, draft=draft, initial=initial)
    return _render_columns(request, columns_form)


def _render_columns(request: HttpRequest, form: ColumnsForm, *, status: int = 200):
    # The accepted names, as in the upload hint and the "no question column" error.
    context = {"form": form, "question_headers": ACCEPTED_QUESTION_HEADERS}
    if request.htmx:
        return render(request, "batches/columns.html#chooser", context)
    return render(request, "batches/columns.html", context, status=status)


def _create_from_columns(request: HttpRequest, form: ColumnsForm) -> Batch | None:
    if not form.is_valid():
        return None
    try:
        return services.create_batch_from_draft(
            draft=form.upload_draft,
            columns=form.column_choice(),
            uploader=request.user,
            **form.run_settings(),
        )
    except UploadError as error:
        form.add_error(
            "question" if error.code in ("empty_question", "unknown_column") else None,
            error.message,
        )
    except ProviderNotConfigured as error:
        form.add_provider_error(error)
    return None


def _create_from_form(request: HttpRequest, form: BatchUploadForm) -> Batch | None:
    if not form.is_valid():
        return None
    try:
        return services.create_batch_run(
            uploader=request.user,
            rows=form.parsed.rows,
            source_filename=form.cleaned_data["file"].name,
            **form.run_settings(),
        )
    except UploadError as error:
        form.add_error("file", error.message)
    except ProviderNotConfigured as error:
        form.add_provider_error(error)
    return None


@login_required
@require_GET
def batch_rows(request: HttpRequest) -> HttpResponse:
    """The list's rows, polled every 2 s while a batch on the page is active."""
    if not request.htmx:
        return redirect("batches:list")
    context = _list_context(request)
    # When nothing is active the final state is swapped in (and announced), and htmx
    # stops polling.
    context["announce"] = not context["any_active"]
    response = render(request, "batches/list.html#rows", context)
    if context["announce"]:
        response.status_code = HTMX_STOP_POLLING
    return response


def _guard_filters(batch: Batch, params: dict) -> list[tuple[str, str, int, str]]:
    """The guard outcomes (blocked, redacted) with their labels, row counts (one query)
    and the rows table's link to them."""
    counts = guard_counts(batch)
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
    question_keys = {"question", "redactedquestion", "problemdetails", "prompt"}
    return [
        str(column)
        for column in batch.input_columns
        if str(column).lower().replace(" ", "").replace("_", "").replace("-", "")
        not in question_keys
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


def _rows_context(request: HttpRequest, batch: Batch, query: QueryDict) -> dict:
    """The rows section: status tabs with counts, the page of rows, the pager.
    A fixed number of queries: counts (1), the page (1), plus the count of a search."""
    params = _row_params(query, batch)
    counts = item_status_counts(batch)
    status = params["status"]
    items = batch_items(
        batch,
        status=status or None,
        guard=params["guard"] or None,
        grade=params["grade"] or None,
        query=params["q"],
        sort=params["sort"],
    )
    paginator = Paginator(items, DETAIL_PAGE_SIZE)
    if not (params["q"] or params["guard"] or params["grade"]):
        # The paginator's COUNT is known from the status counts: no extra query.
        all_rows = sum(counts[value] for value in BatchItem.Status.values)
        paginator.count = counts[status] if status else all_rows
    page = paginator.get_page(params["page"])
    filters = [("", _("All"), sum(counts[value] for value in BatchItem.Status.values))]
    filters += [(value, label, counts[value]) for value, label in BatchItem.Status.choices]
    filters.append((NOT_FOUND, _("Not found"), counts[NOT_FOUND]))
    page_links = [
        (number, _href(batch, params, page=number) if number else "")
        for number in _page_numbers(page.number, paginator.num_pages)
    ]
    sorts = {"position": "position", "status": "status"}
    sorts |= {"latency_desc": "-latency", "latency_asc": "latency"}
    sort_links = {name: _href(batch, params, sort=key, page=None) for name, key in sorts.items()}
    prev_href = next_href = ""
    if page.has_previous():
        prev_href = _href(batch, params, page=page.previous_page_number())
    if page.has_next():
        next_href = _href(batch, params, page=page.next_page_number())
    return {
        "batch": batch,
        "page": page,
        "items": list(page.object_list),
        "params": params,
        "status": status,
        "filters": [
            (value, label, count, _href(batch, params, status=value, page=None))
            for value, label, count in filters
        ],
        "page_links": page_links,
        "sort_links": sort_links,
        "guard": params["guard"],
        "guard_filters": _guard_filters(batch, params),
        "grade": params["grade"],
        "grade_links": [
            (value, label, _href(batch, params, grade=value or None, page=None))
            for value, label in _grade_filter_labels()
        ],
        "guard_all_href": _href(batch, params, guard=None, page=None),
        "rows_query": _query_string(params),
        "prev_href": prev_href,
        "next_href": next_href,
        "retryable_count": counts[BatchItem.Status.FAILED] + counts[BatchItem.Status.CANCELLED],
        "context_columns": _context_columns(batch),
        "counts_words": counts_words(batch.ai_provider),
        "can_retry_rows": not batch.is_active,
        "next_url": _href(batch, params),
    }


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


def _progress_context(batch: Batch) -> dict:
    return {
        "batch": batch,
        "stats": batch_stats(batch),
        **_runner_context(),
        "next_url": batch.get_absolute_url(),
    }


@login_required
@require_GET
def batch_detail(request: HttpRequest, pk: int) -> HttpResponse:
    batch = _get_batch_for_user(request, pk)
    context = _progress_context(batch) | _rows_context(request, batch, request.GET)
    context |= _evaluation_context(request, batch, grade=context["params"]["grade"])
    context["uses_prompt"] = uses_prompt(batch.ai_provider)
    context["next_url"] = request.get_full_path()
    return render(request, "batches/detail.html", context)


@login_required
@require_GET
def batch_item_rows(request: HttpRequest, pk: int) -> HttpResponse:
    """The detail page's rows section (tabs, table, pager), polled every 2 s while the
    batch is active; the final state once it is not, with 286 so polling stops."""
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
    """The detail page's progress header, polled every 2 s while the batch is active."""
    batch = _get_batch_for_user(request, pk)
    if not request.htmx:
        return redirect(batch)
    # The final state is announced in the page's live region, and the flash messages of
    # the run ("… started.") are cleared: they no longer describe the batch.
    context = _progress_context(batch) | {"announce": not batch.is_active}
    response = render(request, "batches/detail.html#progress", context)
    if not batch.is_active:
        response.status_code = HTMX_STOP_POLLING
        _append_evaluation_oob(request, response, batch)
    return response


@login_required
@require_POST
def batch_retry_items(request: HttpRequest, pk: int) -> HttpResponse:
    """Retry one row (`item`) or the ticked rows (`items`) of a batch; back to `next`."""
    batch = _get_batch_for_user(request, pk)
    single = request.POST.get("item")
    raw_ids = [single] if single else request.POST.getlist("items")
    item_ids = [int(value) for value in raw_ids if value.isdigit()]
    if not item_ids:
        messages.error(request, _("Choose at least one row to retry."))
    else:
        try:
            count = services.retry_items(batch=batch, item_ids=item_ids)
        except services.BatchStateError as error:
            messages.error(request, str(error))
        else:
            messages.success(
                request,
                ngettext(
                    "%(count)s row of “%(name)s” is queued again.",
                    "%(count)s rows of “%(name)s” are queued again.",
                    count,
                )
                % {"count": count, "name": batch.name},
            )
    return redirect(_next_url(request, batch.get_absolute_url()))


def _driver_oob(request: HttpRequest, batch: Batch, next_url: str) -> str:
    """The batch's inline driver, replacing the page's one out of band (started or stopped)."""
    context = {"batch": batch, **_runner_context(), "next_url": next_url, "oob": True}
    return render_to_string("batches/_driver.html", context, request=request)


def _action_response(request: HttpRequest, batch: Batch | None) -> HttpResponse:
    """After an action: the fragment the action came from (htmx) or a redirect."""
    if request.htmx:
        if batch is not None:
            batch.refresh_from_db()
        if batch is not None and request.htmx.target == "batch-progress":
            next_url = batch.get_absolute_url()
            response = render(request, "batches/detail.html#progress", _progress_context(batch))
            # The rows section follows the new state (starts or stops polling), with the
            # table state of the page the action came from.
            current = urlsplit(request.htmx.current_url or "").query
            rows = _rows_context(request, batch, QueryDict(current)) | {"oob": True}
            response.write(render_to_string("batches/detail.html#rows", rows, request=request))
        else:
            response = _render_list(request)
            next_url = reverse("batches:list")
        if batch is not None:
            response.write(_driver_oob(request, batch, next_url))
        return _with_messages(request, response)
    default = batch.get_absolute_url() if batch else reverse("batches:list")
    return redirect(_next_url(request, default))


def _run_action(request: HttpRequest, pk: int, action, done: str) -> HttpResponse:
    batch = _get_batch_for_user(request, pk, act=True)
    try:
        batch = action(batch=batch)
    except services.BatchStateError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, done % {"name": batch.name})
    return _action_response(request, batch)


@login_required
@require_POST
def batch_start(request: HttpRequest, pk: int) -> HttpResponse:
    return _run_action(request, pk, services.start_batch, _("Batch “%(name)s” started."))


@login_required
@require_POST
def batch_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    return _run_action(request, pk, services.cancel_batch, _("Batch “%(name)s” was cancelled."))


@login_required
@require_POST
def batch_retry(request: HttpRequest, pk: int) -> HttpResponse:
    return _run_action(
        request, pk, services.retry_failed, _("Failed rows of “%(name)s” are queued again.")
    )


@login_required
@require_http_methods(["GET", "POST"])
def batch_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: a confirmation page (no JavaScript); POST: delete (htmx asks with hx-confirm)."""
    batch = _get_batch_for_user(request, pk, act=True)
    if request.method == "GET":
        return render(request, "batches/delete.html", {"batch": batch})
    services.delete_batch(batch=batch)
    messages.success(request, _("Batch “%(name)s” was deleted.") % {"name": batch.name})
    if request.htmx and request.htmx.target != "batch-list-body":
        # Deleted from its own detail page: that page is gone, go to the list (204: there
        # is nothing to swap).
        return HttpResponseClientRedirect(reverse("batches:list"), status=204)
    response = _action_response(request, None)
    if request.htmx:
        # Stop the deleted batch's driver, if it had one.
        context = {"batch": batch, "oob": True}
        response.write(
            render_to_string("batches/_driver.html#placeholder", context, request=request)
        )
    return response


@login_required
@require_POST
def batch_process(request: HttpRequest, pk: int) -> HttpResponseBase:
    """Inline runner: run one short slice, then answer the driver that asks for the next.

    The page keeps calling this while the batch is active and has rows left; reopening the
    page resumes where it stopped. While a `run_worker` is alive the page runs nothing and
    only checks back now and then (it takes over if the worker dies). With Celery the
    workers process and pages only poll.
    """
    batch = _get_batch_for_user(request, pk, act=True)
    result = None
    runner = _runner_context()
    # Also when no row is left: a runner that died after recording the last row left the
    # batch active, and this slice completes it.
    refused = None
    if runner["inline"] and not runner["worker_alive"] and batch.is_active:
        try:
            with slice_admission(user=request.user, batch_id=batch.pk):
                result = run_slice(batch_id=batch.pk, seconds=_slice_seconds(), runner="page")
        except services.BatchStateError as error:
            messages.error(request, str(error))
        except SliceRefused as error:
            # Another tab of this user drives the batch, or the server is busy: this
            # driver runs nothing and asks again after its idle pause.
            refused = error
        batch.refresh_from_db()
    if not request.htmx:
        if refused is not None:
            messages.info(request, refused.message)
        if result is not None:
            messages.info(
                request,
                _("Processed %(done)s rows (%(failed)s failed); %(remaining)s remain.")
                % {"done": result.done, "failed": result.failed, "remaining": result.remaining},
            )
        return redirect(_next_url(request, batch.get_absolute_url()))
    context = {
        "batch": batch,
        **runner,
        "next_url": _next_url(request, batch.get_absolute_url()),
        # A slice that finished nothing (another tab holds the rows' leases) waits a
        # little before asking again instead of spinning.
        "idle": refused is not None or (result is not None and result.done + result.failed == 0),
    }
    return _with_messages(request, render(request, "batches/_driver.html", context))


@login_required
@require_GET
def batch_download(request: HttpRequest, pk: int, fmt: str) -> HttpResponseBase:
    if fmt not in EXPORT_FORMATS:
        raise Http404
    batch = _get_batch_for_user(request, pk)
    return export_response(batch, fmt)


# --- Evaluation: grades, regrade, run again, compare ----------------------------------------

COMPARE_PAGE_SIZE = 50
COMPARE_CHOICES = 50  # batches offered in the detail page's "compare with" list


def _attach_grades(batches: list[Batch]) -> None:
    """`batch.grades` (a GradeSummary) on each batch, in one query."""
    summaries = grade_summaries(batch.pk for batch in batches)
    for batch in batches:
        batch.grades = summaries[batch.pk]


def _grade_filter_labels() -> list[tuple[str, str]]:
    return [
        ("", _("All rows")),
        ("failing_first", _("Failing first")),
        ("failing", _("Failing")),
        ("passing", _("Passing")),
        ("ungraded", _("Not graded")),
    ]


def _evaluation_context(request: HttpRequest, batch: Batch, *, grade: str) -> dict:
    """The detail page's evaluation block: summary, grade filters, compare choices (two
    queries)."""
    _attach_grades([batch])
    others = list(
        batches_for(request.user)
        .exclude(pk=batch.pk)
        .only("pk", "name", "created_at", "run_from_id", "uploader")[:COMPARE_CHOICES]
    )
    default_other = batch.run_from_id or next(
        (other.pk for other in others if other.run_from_id == batch.pk), None
    )
    return {
        "grade": grade,
        "grade_filters": _grade_filter_labels(),
        "compare_choices": others,
        "compare_default": default_other,
        "regrade_form": RegradeForm(initial={"judge_enabled": batch.judge_enabled}),
    }


def _append_evaluation_oob(request: HttpRequest, response: HttpResponse, batch: Batch) -> None:
    """A batch that just finished has its grades: swap the evaluation block in too."""
    context = {
        "batch": batch,
        "next_url": batch.get_absolute_url(),
        "oob": True,
        **_evaluation_context(request, batch, grade=""),
    }
    response.write(render_to_string("batches/_evaluation.html", context, request=request))


@login_required
@require_POST
def batch_regrade(request: HttpRequest, pk: int) -> HttpResponse:
    """Grade the answered rows again (new expectations, judge on or off), answering nothing."""
    batch = _get_batch_for_user(request, pk)
    form = RegradeForm(request.POST)
    judge = form.cleaned_data["judge_enabled"] if form.is_valid() else None
    count = regrade_batch(batch=batch, judge_enabled=judge)
    messages.success(
        request,
        ngettext(
            "%(count)s answered row of “%(name)s” was graded again.",
            "%(count)s answered rows of “%(name)s” were graded again.",
            count,
        )
        % {"count": count, "name": batch.name},
    )
    return redirect(_next_url(request, batch.get_absolute_url()))


@login_required
@require_http_methods(["GET", "POST"])
def batch_run_again(request: HttpRequest, pk: int) -> HttpResponse:
    """ "Run again with…": the same rows with other settings, as a new batch."""
    batch = _get_batch_for_user(request, pk)
    form = RunAgainForm(request.POST or None, batch=batch)
    if request.method == "POST" and form.is_valid():
        try:
            new = services.run_again(batch=batch, uploader=request.user, **form.run_settings())
        except ProviderNotConfigured as error:
            form.add_provider_error(error)
        else:
            messages.success(
                request,
                _(
                    "Batch “%(name)s” was created from the rows of “%(source)s”. Start it when ready."
                )
                % {"name": new.name, "source": batch.name},
            )
            return redirect(new)
    status = 400 if request.method == "POST" else 200
    return render(request, "batches/run_again.html", {"batch": batch, "form": form}, status=status)


@login_required
@require_GET
def batch_compare_pick(request: HttpRequest, pk: int) -> HttpResponse:
    """The detail page's "Compare with" form (GET ?other=ID) -> the compare page."""
    batch = _get_batch_for_user(request, pk)
    try:
        other = int(request.GET.get("other", ""))
    except ValueError:
        messages.error(request, _("Choose a batch to compare with."))
        return redirect(batch)
    return redirect("batches:compare", pk=batch.pk, other=other)


def _comparison(request: HttpRequest, pk: int, other: int):
    a = _get_batch_for_user(request, pk)
    b = _get_batch_for_user(request, other)
    return compare_batches(a=a, b=b)


@login_required
@require_GET
def batch_compare(request: HttpRequest, pk: int, other: int) -> HttpResponse:
    """Two batches row by row: change classes, both answers side by side with a word diff."""
    comparison = _comparison(request, pk, other)
    change = request.GET.get("change") or ""
    if change not in CHANGES:
        change = ""
    rows = [row for row in comparison.rows if not change or row.change == change]
    page = Paginator(rows, COMPARE_PAGE_SIZE).get_page(request.GET.get("page"))
    labels = change_labels()
    filters = [("", _("All"), len(comparison.rows))] + [
        (value, labels[value], comparison.summary[value]) for value in CHANGES
    ]
    context = {
        "comparison": comparison,
        "a": comparison.a,
        "b": comparison.b,
        "page": page,
        "rows": list(page.object_list),
        "change": change,
        "filters": filters,
        "labels": labels,
    }
    return render(request, "batches/compare.html", context)


@login_required
@require_GET
def batch_compare_download(request: HttpRequest, pk: int, other: int, fmt: str):
    if fmt not in COMPARE_FORMATS:
        raise Http404
    return compare_response(_comparison(request, pk, other), fmt)


def change_labels() -> dict[str, str]:
    return {
        "same": _("Same"),
        "changed": _("Changed"),
        "improved": _("Improved"),
        "regressed": _("Regressed"),
        "only_in_a": _("Only in A"),
        "only_in_b": _("Only in B"),
    }
