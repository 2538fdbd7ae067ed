"""Evaluation pages: the detail page's evaluation block (grades, regrade, compare with),
"Run again with…", and the compare page with its downloads."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from batches import services
from batches.errors import UploadError
from batches.forms import RegradeForm, RunAgainForm
from batches.models import Batch
from batches.selectors import compare_choices, may_act_on
from batches.views.common import (
    _attach_grades,
    _get_batch_for_user,
    _grade_filter_labels,
    _next_url,
    _shared_while_active,
)
from chats.services import ProviderNotConfigured
from evaluation import regrade, sharing
from evaluation.agreement import agreement_rows, review_summaries
from evaluation.compare import (
    CHANGES,
    COMPARE_FORMATS,
    compare_batches,
    compare_response,
)
from evaluation.models import Run
from evaluation.sets import split_run

COMPARE_PAGE_SIZE = 50
COMPARE_CHOICES = 50  # batches offered in the detail page's "compare with" list


def _evaluation_context(request: HttpRequest, batch: Batch, *, grade: str) -> dict:
    """The detail page's evaluation block: summary, grade filters, compare choices (two
    queries)."""
    _attach_grades([batch])
    related, others = compare_choices(user=request.user, batch=batch, limit=COMPARE_CHOICES)
    default_other = batch.run_from_id or next(
        (other.pk for other in related if other.run_from_id == batch.pk), None
    )
    return {
        "grade": grade,
        "grade_filters": _grade_filter_labels(),
        "compare_choices": related + others,
        "compare_related": related,
        "compare_others": others,
        "compare_default": default_other,
        "regrade_form": RegradeForm(initial={"judge_enabled": batch.judge_enabled}),
        **_set_context(batch),
        "regrade_job": regrade.active_job(batch),
        **_review_context(request, batch),
    }


def _review_context(request: HttpRequest, batch: Batch) -> dict:
    """The expert review block (evaluation/_review_panel.html): one query for the summary
    (shared for a few seconds while the batch runs), one for who may review, one for the
    reviewers (the owner only)."""
    summary = _shared_while_active(batch, "reviews", lambda: review_summaries([batch.pk])[batch.pk])
    owner = may_act_on(request.user, batch)
    return {
        "review_summary": summary,
        "review_agreements": agreement_rows(summary),
        "may_review": owner or sharing.is_reviewer(request.user, batch),
        "review_only": sharing.review_only(request.user, batch),
        "shares": sharing.shares_of(batch=batch) if owner else None,
    }


def _set_context(batch: Batch) -> dict:
    """The batch's question set (one query): its name, version, number of runs, and the
    offer to make a set of its own when an identical upload joined an existing set."""
    run = (
        Run.objects.filter(batch=batch)
        .select_related("question_set")
        .annotate(set_runs=Count("question_set__runs"))
        .first()
    )
    if run is None:
        return {"set_run": None}
    joined = not batch.run_from_id and run.set_runs > 1
    return {"set_run": run, "set_offer_split": joined}


@login_required
@require_POST
def batch_own_set(request: HttpRequest, pk: int) -> HttpResponse:
    """The offer of an identical upload: this run gets a question set of its own."""
    batch = _get_batch_for_user(request, pk, act=True)
    run = get_object_or_404(Run, batch=batch)
    split_run(run=run)
    messages.success(
        request, _("“%(name)s” is now the first run of a set of its own.") % {"name": batch.name}
    )
    return redirect(_next_url(request, batch.get_absolute_url()))


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
    batch = _get_batch_for_user(request, pk, act=True)
    form = RegradeForm(request.POST)
    judge = form.cleaned_data["judge_enabled"] if form.is_valid() else None
    job = regrade.start_regrade(batch=batch, judge_enabled=judge)
    if job.active:  # the AI judge: background work of the batch, progress on its page
        messages.info(
            request,
            ngettext(
                "Grading %(count)s row of “%(name)s” again with the AI judge: progress "
                "shows on the batch page.",
                "Grading %(count)s rows of “%(name)s” again with the AI judge: progress "
                "shows on the batch page.",
                job.total,
            )
            % {"count": job.total, "name": batch.name},
        )
        return redirect(_next_url(request, batch.get_absolute_url()))
    count = job.done
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
@require_POST
def batch_regrade_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    """Stop the batch's "Grade again" after its current chunk."""
    batch = _get_batch_for_user(request, pk, act=True)
    if regrade.cancel_regrade(batch=batch):
        messages.success(
            request, _("Grading again was cancelled; rows graded so far keep their new grades.")
        )
    return redirect(_next_url(request, batch.get_absolute_url()))


@login_required
@require_POST
def batch_rejudge(request: HttpRequest, pk: int) -> HttpResponse:
    """Ask the AI judge again about the rows it gave no verdict, in the background."""
    batch = _get_batch_for_user(request, pk, act=True)
    job = regrade.rejudge_no_verdict(batch=batch)
    messages.info(
        request,
        ngettext(
            "Judging %(count)s row with no verdict again: progress shows on the batch page.",
            "Judging %(count)s rows with no verdict again: progress shows on the batch page.",
            job.total,
        )
        % {"count": job.total},
    )
    return redirect(_next_url(request, batch.get_absolute_url()))


@login_required
@require_POST
def batch_regrade_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The running "Grade again"'s progress, polled by the batch page. Without a Celery
    broker the poll is the job's runner (the page runner): it grades one chunk first."""
    batch = _get_batch_for_user(request, pk)
    regrade.page_turn(batch)
    context = {"batch": batch, "next_url": batch.get_absolute_url()}
    context.update(_evaluation_context(request, batch, grade=""))
    return render(request, "batches/_evaluation.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def batch_run_again(request: HttpRequest, pk: int) -> HttpResponse:
    """ "Run again with…": the same rows with other settings, as a new batch."""
    batch = _get_batch_for_user(request, pk, shared=False)
    start = request.method == "POST" and "start" in request.POST
    if request.method == "POST" and "same_settings" in request.POST:
        # "Run again and start" on the detail page: one click, the batch's own settings.
        try:
            new = services.run_again(batch=batch, uploader=request.user, start=start)
        except (ProviderNotConfigured, UploadError) as error:
            messages.error(request, getattr(error, "message", None) or str(error))
            return redirect(batch)
        return _ran_again(request, batch, new, start=start)
    form = RunAgainForm(request.POST or None, batch=batch)
    if request.method == "POST" and form.is_valid():
        try:
            new = services.run_again(
                batch=batch, uploader=request.user, start=start, **form.run_settings()
            )
        except ProviderNotConfigured as error:
            form.add_provider_error(error)
        except UploadError as error:
            form.add_error("repeats", error.message)
        else:
            return _ran_again(request, batch, new, start=start)
    status = 400 if request.method == "POST" else 200
    return render(request, "batches/run_again.html", {"batch": batch, "form": form}, status=status)


def _ran_again(request: HttpRequest, batch, new, *, start: bool) -> HttpResponse:
    """After run again (started at once when asked): the new batch's page."""
    if start:
        messages.success(
            request,
            _("Batch “%(name)s” was created from the rows of “%(source)s” and started.")
            % {"name": new.name, "source": batch.name},
        )
    else:
        messages.success(
            request,
            _("Batch “%(name)s” was created from the rows of “%(source)s”. Start it when ready.")
            % {"name": new.name, "source": batch.name},
        )
    return redirect(new)


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
    return redirect("evaluation:compare", pk=batch.pk, other=other)


def _comparison(request: HttpRequest, pk: int, other: int):
    a = _get_batch_for_user(request, pk)
    b = _get_batch_for_user(request, other)
    return compare_batches(a=a, b=b)


@login_required
@require_GET
def batch_compare(request: HttpRequest, pk: int, other: int) -> HttpResponse:
    """Two batches row by row, new vs baseline (whatever order the ids come in): both
    runs' rates with the difference, change classes, both answers with a word diff."""
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
        "baseline": comparison.baseline,
        "new": comparison.new,
        "rates": [(rate_labels()[rate.name], rate) for rate in comparison.rates],
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
        "only_in_baseline": _("Only in the baseline"),
        "only_in_new": _("Only in the new run"),
    }


def rate_labels() -> dict[str, str]:
    """The compare page's names of the GradeSummary rates (evaluation.compare.RATES)."""
    return {
        "pass_rate": _("Pass rate"),
        "outcome_accuracy": _("Outcome accuracy"),
        "citation_match_rate": _("Citation match rate"),
        "mean_similarity": _("Mean similarity"),
        "answer_found_rate": _("Gave an answer"),
        "judge_pass_rate": _("Judge pass rate"),
        "guard_precision": _("Guard precision"),
        "guard_recall": _("Guard recall"),
    }
