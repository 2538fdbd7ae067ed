"""The BatchPage (`/batches/`): BatchUpload (the form, then the column chooser when asked
for or needed) above BatchList (paged, its rows polled while a batch is active)."""

from __future__ import annotations

import zlib

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Page, Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import HTMX_STOP_POLLING

from batches import hooks, services
from batches.errors import UploadError
from batches.forms import BatchUploadForm, ColumnsForm
from batches.models import Batch
from batches.selectors import batches_for
from batches.uploads import ACCEPTED_QUESTION_HEADERS
from batches.views.common import _attach_grades, _poll_token, _runner_context, _with_messages
from chats.services import ProviderNotConfigured

LIST_PAGE_SIZE = 20


def _set_param(request: HttpRequest) -> int | None:
    """`?set=<id>`: only the runs of that question set."""
    try:
        return int(request.GET.get("set", ""))
    except ValueError:
        return None


def _list_page(request: HttpRequest) -> tuple[Page, list[Batch]]:
    """The page of the user's batches the request asks for (two queries), only the runs
    of one question set with `?set=<id>`."""
    batches_qs = batches_for(request.user)
    run_sets = hooks.run_sets()
    set_id = _set_param(request) if run_sets else None
    if set_id is not None:
        batches_qs = batches_qs.filter(pk__in=run_sets.batch_ids(set_id))
    paginator = Paginator(batches_qs, LIST_PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    return page, list(page.object_list)


def _list_token(page: Page, batches: list[Batch]) -> str:
    """What the list's rows show, in eight characters: which batches, each one's poll
    token. Its poll answers 204 while this stays the same."""
    state = [page.number, page.paginator.count, [_poll_token(batch) for batch in batches]]
    return f"{zlib.crc32(repr(state).encode()):08x}"


def _list_context(request: HttpRequest, listed: tuple[Page, list[Batch]] | None = None) -> dict:
    page, batches = listed or _list_page(request)
    _attach_grades(batches)
    run_sets = hooks.run_sets()
    set_id = _set_param(request) if run_sets else None
    # Each batch's question set, with a link to its grid (one query).
    labels = run_sets.labels(batch.pk for batch in batches) if run_sets else {}
    for batch in batches:
        batch.set_label = labels.get(batch.pk)
    set_query = f"set={set_id}&" if set_id is not None else ""
    next_url = reverse("batches:list")
    query = set_query + (f"page={page.number}" if page.number > 1 else "")
    if query.strip("&"):
        next_url += "?" + query.strip("&")
    return {
        "next_url": next_url,
        "page": page,
        "batches": batches,
        "set_id": set_id,
        "set_query": set_query,
        "set_label": next(iter(labels.values()), None) if set_id is not None else None,
        "any_active": any(batch.is_active for batch in batches),
        "list_token": _list_token(page, batches),
        # Every listed batch's activity annotation says whether a worker is alive.
        **_runner_context(batches[0] if batches else None),
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
        owner=request.user,
        filename=upload.name or "",
        data=form.file_bytes,
        parsed_preview=form.parsed,
    )
    initial = {
        key: request.POST.get(key, "")
        for key in ("name", "ai_model", "search_provider", "page_language")
    }
    initial["apply_overrides"] = form.cleaned_data["apply_overrides"]
    initial["repeats"] = form.cleaned_data.get("repeats") or 1
    initial["judge_enabled"] = form.cleaned_data["judge_enabled"]
    initial["mode"] = form.cleaned_data.get("mode") or Batch.Mode.REALTIME
    initial["economy_retry"] = form.cleaned_data.get("economy_retry") or Batch.EconomyRetry.BATCH
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
        field = "question" if error.code in ("empty_question", "unknown_column") else None
        form.add_error("repeats" if error.column == "repeats" else field, error.message)
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
        form.add_error("repeats" if error.column == "repeats" else "file", error.message)
    except ProviderNotConfigured as error:
        form.add_provider_error(error)
    return None


@login_required
@require_GET
def batch_rows(request: HttpRequest) -> HttpResponse:
    """The list's rows, polled while a batch on the page is active (static/js/app.js):
    204 while nothing on the page changed (`v`, the list token it was drawn with)."""
    if not request.htmx:
        return redirect("batches:list")
    listed = _list_page(request)
    active = any(batch.is_active for batch in listed[1])
    if active and request.GET.get("v") == _list_token(*listed):
        return HttpResponse(status=204)
    context = _list_context(request, listed)
    # When nothing is active the final state is swapped in (and announced), and htmx
    # stops polling.
    context["announce"] = not context["any_active"]
    response = render(request, "batches/list.html#rows", context)
    if context["announce"]:
        response.status_code = HTMX_STOP_POLLING
    return response
