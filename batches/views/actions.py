"""The actions of the list and detail pages: start, cancel, retry (failed or chosen rows),
delete, download, and the page-driven processing (`batch_process`, the inline runner).

Each answers an htmx request with the fragment it came from (the list, or the detail
page's progress and rows) plus the driver and the flash messages out of band, and any
other request with a redirect.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, QueryDict
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from batches import services
from batches.admission import slice_admission
from batches.costs import MAX_BUDGET, set_budget
from batches.errors import SliceRefused
from batches.events import run_slice
from batches.export import EXPORT_FORMATS, export_response
from batches.models import Batch
from batches.views.common import (
    _get_batch_for_user,
    _next_url,
    _runner_context,
    _with_messages,
)
from batches.views.detail import _progress_context, _rows_context
from batches.views.list import _render_list

# A page-driven slice is kept short so that the request finishes well inside any proxy
# timeout and the progress bar moves between slices.
PAGE_SLICE_SECONDS = 5.0


def _slice_seconds() -> float:
    return min(PAGE_SLICE_SECONDS, settings.BATCH_SLICE_SECONDS)


@login_required
@require_POST
def batch_retry_items(request: HttpRequest, pk: int) -> HttpResponse:
    """Retry one row (`item`) or the ticked rows (`items`) of a batch; back to `next`."""
    batch = _get_batch_for_user(request, pk, act=True)
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
            # The rows section follows the new state, with the table state of the page the
            # action came from (which the progress section's poll then carries).
            current = urlsplit(request.htmx.current_url or "").query
            rows = _rows_context(request, batch, QueryDict(current)) | {"oob": True}
            context = _progress_context(batch, rows)
            response = render(request, "batches/detail.html#progress", context)
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
def batch_budget(request: HttpRequest, pk: int) -> HttpResponse:
    """Set the budget (empty: none); raising it resumes a batch paused by it."""
    batch = _get_batch_for_user(request, pk, act=True)
    raw = (request.POST.get("budget") or "").strip().replace(",", ".")
    try:
        budget = Decimal(raw) if raw else None
        if budget is not None and not (0 <= budget < MAX_BUDGET):
            raise InvalidOperation
        batch = set_budget(batch=batch, budget=budget)
    except (InvalidOperation, ValueError):
        messages.error(request, _("Write the budget as a number, e.g. 12.50."))
    except services.BatchStateError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, _("Budget of “%(name)s” saved.") % {"name": batch.name})
    return _action_response(request, batch)


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
        # The list came back: the address bar says so, unless it is the list already (its
        # filters and page stay).
        list_url = reverse("batches:list")
        if urlsplit(request.htmx.current_url or "").path != list_url:
            response["HX-Push-Url"] = list_url
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
