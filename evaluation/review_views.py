"""Review pages (issue 24): review mode on a batch (one row at a time, or a list), saving a
review with htmx, promoting an answer to the expected answer, the reviewed spreadsheet's
upload (preview, then apply), and sharing with reviewers.

Access: reading is `_get_batch_for_user` (owner, reviewer, staff); reviewing is the
owner's, a superuser's or a reviewer's (other staff 403, as for actions); promoting and
sharing are the owner's (or a superuser's): a reviewer gets 404 there, as a stranger.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST

from batches import services as batch_services
from batches.models import Batch, BatchItem, UploadDraft
from batches.selectors import STAFF_READ_ONLY, may_act_on
from batches.views.common import _get_batch_for_user, _next_url
from chats.models import ReviewVerdict
from evaluation import sharing
from evaluation.models import Question, Run
from evaluation.review import REVIEW_FILTERS, ReviewError, review_items, save_review
from evaluation.review_files import (
    CellProblem,
    ReviewFileError,
    apply_reviews,
    preview_reviews,
)
from evaluation.sets import update_expectations

LIST_PAGE_SIZE = 20
# What the upload keeps between its preview and its apply (an UploadDraft, never a path
# from the client); a batch upload refuses it with this message.
DRAFT_MARK = {"error": "A reviewed results file, not a batch upload.", "kind": "reviews"}


def review_filter_labels() -> list[tuple[str, str]]:
    return [
        ("", _("All answered rows")),
        ("not_reviewed", _("Not reviewed")),
        ("reviewed", _("Reviewed")),
        ("disagrees_verdict", _("Review disagrees with the automatic verdict")),
        ("judge_disagrees", _("Judge disagrees with the reviewer")),
    ]


def _reviewable(request: HttpRequest, pk: int) -> Batch:
    batch = _get_batch_for_user(request, pk)
    if not sharing.may_review(request.user, batch):
        raise PermissionDenied(_(STAFF_READ_ONLY))
    return batch


def _question_of(batch: Batch, item: BatchItem) -> Question | None:
    run = Run.objects.filter(batch=batch).only("question_set_id").first()
    if run is None:
        return None
    return Question.objects.filter(
        question_set_id=run.question_set_id, position=item.question_index
    ).first()


def _review_url(batch: Batch, *, review_filter: str, row: int | None = None, view="") -> str:
    params = [
        (key, value)
        for key, value in (("filter", review_filter), ("row", row), ("view", view))
        if value
    ]
    url = reverse("review:mode", args=[batch.pk])
    return url + (f"?{urlencode(params)}" if params else "")


def _card_context(request: HttpRequest, batch: Batch, item: BatchItem, **extra) -> dict:
    return {
        "batch": batch,
        "item": item,
        "verdicts": ReviewVerdict.choices,
        "may_promote": may_act_on(request.user, batch),
        **extra,
    }


@login_required
@require_GET
def review_mode(request: HttpRequest, pk: int) -> HttpResponse:
    """One row at a time (`row`, 1-based row number; default: the first of the filter) or a
    list (`view=list`, paged), kept by one of REVIEW_FILTERS (`filter`)."""
    batch = _reviewable(request, pk)
    review_filter = request.GET.get("filter") or ""
    if review_filter not in REVIEW_FILTERS:
        review_filter = ""
    items = review_items(batch, review_filter=review_filter)
    context = {
        "batch": batch,
        "review_filter": review_filter,
        "filters": [
            (value, label, _review_url(batch, review_filter=value))
            for value, label in review_filter_labels()
        ],
        "verdicts": ReviewVerdict.choices,
        "list_url": _review_url(batch, review_filter=review_filter, view="list"),
        "one_url": _review_url(batch, review_filter=review_filter),
        "may_promote": may_act_on(request.user, batch),
    }
    if request.GET.get("view") == "list":
        page = Paginator(items, LIST_PAGE_SIZE).get_page(request.GET.get("page"))
        context |= {"view": "list", "page": page, "cards": list(page.object_list)}
        return render(request, "evaluation/review.html", context)
    positions = list(items.values_list("position", flat=True))
    try:
        wanted = int(request.GET.get("row") or 0) - 1
    except ValueError:
        wanted = -1
    index = positions.index(wanted) if wanted in positions else 0
    item = items.filter(position=positions[index]).first() if positions else None
    context |= {
        "view": "one",
        "item": item,
        "index": index + 1,
        "count": len(positions),
        "prev_url": _review_url(batch, review_filter=review_filter, row=positions[index - 1] + 1)
        if index > 0
        else "",
        "next_url": _review_url(batch, review_filter=review_filter, row=positions[index + 1] + 1)
        if index + 1 < len(positions)
        else "",
    }
    return render(request, "evaluation/review.html", context)


def _item_of(batch: Batch, item_id: int) -> BatchItem:
    return get_object_or_404(
        batch.items.select_related("chat", "interaction", "interaction__reviewed_by"), pk=item_id
    )


@login_required
@require_POST
def review_save(request: HttpRequest, pk: int, item_id: int) -> HttpResponse:
    """Save a row's verdict (`verdict`) and notes (`notes`); htmx gets the row's card."""
    batch = _reviewable(request, pk)
    item = _item_of(batch, item_id)
    interaction = item.interaction
    verdict = request.POST.get("verdict")
    if verdict is None:  # the notes' own button keeps the verdict
        verdict = interaction.review_verdict if interaction else ""
    notes = request.POST.get("notes")
    if notes is None:
        notes = interaction.review_notes if interaction else ""
    error = ""
    try:
        save_review(item=item, verdict=verdict, notes=notes, user=request.user)
    except ReviewError as problem:
        error = str(problem)
    if request.htmx:
        context = _card_context(request, batch, item, saved=not error, error=error, current=True)
        response = render(request, "evaluation/_review_card.html", context)
        if error:
            response.status_code = 422
        return response
    if error:
        messages.error(request, error)
    else:
        messages.success(request, _("Review saved."))
    return redirect(_next_url(request, _review_url(batch, review_filter="", row=item.position + 1)))


@login_required
@require_POST
def review_promote(request: HttpRequest, pk: int, item_id: int) -> HttpResponse:
    """The row's answer (or the edited text, `expected_answer`) becomes the expected
    answer of its question in the set: a new version of the set (the owner's)."""
    batch = _get_batch_for_user(request, pk, act=True)
    item = _item_of(batch, item_id)
    text = (request.POST.get("expected_answer") or "").strip()
    if not text and item.interaction is not None:
        text = item.interaction.answer.strip()
    question = _question_of(batch, item)
    if question is None or not text:
        messages.error(request, _("This row has no question in a set to update."))
    elif update_expectations(question=question, expected_answer=text):
        question.question_set.refresh_from_db(fields=["version"])
        messages.success(
            request,
            _("The expected answer is updated: the set is now at version %(version)s.")
            % {"version": question.question_set.version},
        )
    else:
        messages.info(request, _("The expected answer was already this text."))
    back = _review_url(batch, review_filter="", row=item.position + 1)
    return redirect(_next_url(request, back))


@login_required
@require_POST
def reviews_upload(request: HttpRequest, pk: int) -> HttpResponse:
    """The reviewed file: read and checked, kept as a draft, and its preview shown (new,
    changed, unchanged, conflicts) with the button that applies it."""
    batch = _reviewable(request, pk)
    upload = request.FILES.get("file")
    if upload is None:
        messages.error(request, _("Choose the reviewed XLSX or CSV file."))
        return redirect(_review_url(batch, review_filter=""))
    context = {"batch": batch, "filename": upload.name}
    if upload.size > settings.MAX_UPLOAD_BYTES:
        problem = CellProblem(1, "A1", f"The file is over {settings.MAX_UPLOAD_BYTES} bytes.")
        context["problems"] = [problem]
        return render(request, "evaluation/review_upload.html", context, status=413)
    data = upload.read()
    try:
        preview = preview_reviews(batch=batch, data=data, filename=upload.name or "")
    except ReviewFileError as error:
        context["problems"] = error.problems
        return render(request, "evaluation/review_upload.html", context, status=422)
    batch_services.delete_expired_drafts()
    draft = UploadDraft.objects.create(
        owner=request.user, filename=(upload.name or "")[:255], data=data, preview=DRAFT_MARK
    )
    context |= {"preview": preview, "counts": preview.counts(), "draft": draft}
    return render(request, "evaluation/review_upload.html", context)


@login_required
@require_POST
def reviews_apply(request: HttpRequest, pk: int) -> HttpResponse:
    batch = _reviewable(request, pk)
    draft = (
        UploadDraft.objects.live()
        .filter(owner=request.user, pk=request.POST.get("draft") or 0, preview=DRAFT_MARK)
        .first()
    )
    if draft is None:
        messages.error(request, _("That upload has expired: upload the file again."))
        return redirect(_review_url(batch, review_filter=""))
    try:
        result = apply_reviews(
            batch=batch,
            data=bytes(draft.data),
            filename=draft.filename,
            user=request.user,
            overwrite=request.POST.get("overwrite") == "1",
        )
    except ReviewFileError as error:
        context = {"batch": batch, "filename": draft.filename, "problems": error.problems}
        return render(request, "evaluation/review_upload.html", context, status=422)
    draft.delete()
    messages.success(
        request,
        ngettext("%(count)s review applied.", "%(count)s reviews applied.", result.applied)
        % {"count": result.applied},
    )
    return redirect(batch)


@login_required
@require_POST
def batch_share(request: HttpRequest, pk: int) -> HttpResponse:
    batch = _get_batch_for_user(request, pk, act=True)
    username = request.POST.get("username") or ""
    if request.POST.get("unshare"):
        if sharing.unshare(username=username, batch=batch):
            messages.success(request, _("%(name)s no longer reviews it.") % {"name": username})
        return redirect(_next_url(request, batch.get_absolute_url()))
    try:
        sharing.share_with(username=username, shared_by=request.user, batch=batch)
    except sharing.ShareError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, _("Shared with %(name)s as reviewer.") % {"name": username})
    return redirect(_next_url(request, batch.get_absolute_url()))


@login_required
@require_POST
def set_share(request: HttpRequest, pk: int) -> HttpResponse:
    """Share (or, with `unshare`, stop sharing) a whole question set with a reviewer."""
    question_set = sharing.sets_for(request.user).filter(pk=pk).first()
    if question_set is None:
        raise Http404
    if not sharing.may_share_set(request.user, question_set):
        if request.user.is_staff:
            raise PermissionDenied(_(STAFF_READ_ONLY))
        raise Http404
    username = request.POST.get("username") or ""
    try:
        default = question_set.get_absolute_url()
    except NoReverseMatch:  # the set pages are not installed
        default = reverse("batches:list")
    back = _next_url(request, default)
    if request.POST.get("unshare"):
        sharing.unshare(username=username, question_set=question_set)
        messages.success(request, _("%(name)s no longer reviews it.") % {"name": username})
        return redirect(back)
    try:
        sharing.share_with(username=username, shared_by=request.user, question_set=question_set)
    except sharing.ShareError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, _("Shared with %(name)s as reviewer.") % {"name": username})
    return redirect(back)
