"""Chat pages: the transcript with its follow-up box, and the prompt overrides page."""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Iterator

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import connections
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseForbidden,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from chats.access import chats_for
from chats.documents import indexed_document
from chats.errors import ChatPipelineError
from chats.forms import FollowUpForm, PromptOverrideForm
from chats.models import Chat, PromptOverride
from chats.prompts import AnswerStreamFilter, counts_words, uses_prompt
from chats.services import process_message, screen_offline

logger = logging.getLogger(__name__)

# Ends the text of a streamed answer; a JSON status follows it (see `_stream_answer`).
STREAM_END = "\x1e"
# Header the page's script sends to get the streamed answer instead of a redirect.
STREAM_HEADER = "HTTP_X_BATCHCHAT_STREAM"


def _get_chat_for_user(request: HttpRequest, chat_id: str) -> Chat:
    """The chat when the user uploaded it, reviews it or is staff; 404 otherwise."""
    return get_object_or_404(chats_for(request.user), chat_id=chat_id)


def _can_ask(request: HttpRequest, chat: Chat, rows: list | None = None) -> bool:
    # Staff may read every chat, but only its uploader continues it: a follow-up becomes
    # part of the uploader's results. A chat with a batch row not answered yet (pending,
    # failed, cancelled) is not continued: the follow-up would take that row's turn; the
    # page offers retrying the row instead.
    if chat.uploader_id != request.user.pk:
        return False
    if rows is None:
        return not chat.batch_items.filter(interaction__isnull=True).exists()
    return all(row.interaction_id is not None for row in rows)


def _batch_rows(chat: Chat) -> list:
    """The batch rows this chat answers, with their batch, in order (one query; a reverse
    relation: chats does not import batches)."""
    return list(chat.batch_items.select_related("batch").order_by("batch_id", "position"))


def _chat_title(chat: Chat, rows: list) -> str:
    """ "<batch name> · row N" (rows N-M for a multi-turn chat); the id for other chats."""
    if not rows:
        return _("Chat %(id)s") % {"id": chat.chat_id}
    first, last = rows[0], rows[-1]
    if first.position == last.position or first.batch_id != last.batch_id:
        where = _("row %(row)s") % {"row": first.position + 1}
    else:
        where = _("rows %(first)s–%(last)s") % {
            "first": first.position + 1,
            "last": last.position + 1,
        }
    return f"{first.batch.name} · {where}"


def _transcript_context(request: HttpRequest, chat: Chat) -> dict:
    return {
        "chat": chat,
        "interactions": list(chat.interactions.select_related("reviewed_by").order_by("position")),
        "counts_words": counts_words(chat.ai_provider),
    }


@login_required
@require_GET
def chat_detail(request: HttpRequest, chat_id: str) -> HttpResponse:
    chat = _get_chat_for_user(request, chat_id)
    rows = _batch_rows(chat)
    context = _transcript_context(request, chat) | _rows_context(request, chat, rows)
    context["form"] = FollowUpForm()
    return render(request, "chats/detail.html", context)


def _screened(rows: list, chat: Chat) -> list:
    """Unanswered rows with `shown_question`: the text the guard will send."""
    for row in rows:
        row.shown_question = screen_offline(
            row.question, row.referring_url, language=chat.page_language
        ).question
    return rows


def _rows_context(request: HttpRequest, chat: Chat, rows: list) -> dict:
    return {
        "rows": rows,
        # The batches this chat answers rows of, for the way back.
        "batches": list({row.batch_id: row.batch for row in rows}.values()),
        # Rows without an answer: their question, status and error, with a retry.
        # shown as the guard will send them (the offline step: no raw personal value).
        "unanswered": _screened([row for row in rows if row.interaction_id is None], chat),
        "title": _chat_title(chat, rows),
        "can_ask": _can_ask(request, chat, rows),
        "is_owner": chat.uploader_id == request.user.pk,
        "uses_prompt": uses_prompt(chat.ai_provider),
        "counts_words": counts_words(chat.ai_provider),
    }


@login_required
@require_GET
def chat_transcript(request: HttpRequest, chat_id: str) -> HttpResponse:
    """The transcript fragment, swapped in once a streamed answer has been stored."""
    chat = _get_chat_for_user(request, chat_id)
    if not request.htmx and "fragment" not in request.GET:
        return redirect(chat)
    return render(request, "chats/detail.html#transcript", _transcript_context(request, chat))


@login_required
@require_POST
def chat_ask(request: HttpRequest, chat_id: str) -> HttpResponseBase:
    """A follow-up question.

    With the page's script (header X-BatchChat-Stream): a streamed text/plain answer,
    then STREAM_END and a JSON status. Without JavaScript: wait for the whole answer,
    then redirect back to the chat (POST-redirect-GET).
    """
    chat = _get_chat_for_user(request, chat_id)
    if chat.uploader_id != request.user.pk and not request.user.is_staff:
        raise Http404  # a reviewer reads the chat; for anything else, as for a stranger
    if chat.uploader_id != request.user.pk:
        return HttpResponseForbidden(_("Only the person who uploaded this chat can continue it."))
    if not _can_ask(request, chat):
        return HttpResponse(
            _("This chat has a batch row that is not answered yet: retry it first."),
            status=409,
            content_type="text/plain; charset=utf-8",
        )
    form = FollowUpForm(request.POST)
    streaming = request.META.get(STREAM_HEADER) == "1"
    if not form.is_valid():
        if streaming:
            message = " ".join(form.errors.get("question", [])) or _("Write a question.")
            body = STREAM_END + json.dumps({"ok": False, "error": message})
            return HttpResponse(body, status=400, content_type="text/plain; charset=utf-8")
        rows = _batch_rows(chat)
        context = _transcript_context(request, chat) | _rows_context(request, chat, rows)
        context["form"] = form
        return render(request, "chats/detail.html", context, status=400)
    question = form.cleaned_data["question"]
    if streaming:
        response = StreamingHttpResponse(
            _stream_answer(chat=chat, question=question), content_type="text/plain; charset=utf-8"
        )
        # Proxies (nginx) must pass chunks on as they come, not buffer the answer.
        response["X-Accel-Buffering"] = "no"
        response["Cache-Control"] = "no-store"
        return response
    try:
        interaction = process_message(chat=chat, question=question)
    except ChatPipelineError as error:
        messages.error(
            request, _("The question could not be answered: %(error)s") % {"error": error}
        )
        return redirect(chat)
    return redirect(f"{chat.get_absolute_url()}#turn-{interaction.position}")


def _stream_answer(*, chat: Chat, question: str) -> Iterator[str]:
    """Run the pipeline in a worker thread; yield the answer's text as it arrives.

    The worker feeds a queue (tokens, then a final status) so that the response streams
    while the provider is still generating. The end is STREAM_END + JSON: {"ok": true,
    "position": n} once the turn is stored, or {"ok": false, "error": "..."}.
    """
    pieces: queue.Queue[tuple[str, str | dict]] = queue.Queue()
    # The model's raw text carries the citation tags; the reader sees the answer only.
    visible = AnswerStreamFilter()

    def on_token(text: str) -> None:
        if new := visible.feed(text):
            pieces.put(("token", new))

    def work() -> None:
        try:
            interaction = process_message(chat=chat, question=question, on_token=on_token)
        except ChatPipelineError as error:
            pieces.put(("end", {"ok": False, "error": str(error)}))
        except Exception:
            logger.exception("follow-up in chat %s failed", chat.chat_id)
            pieces.put(
                ("end", {"ok": False, "error": _("An unexpected error stopped the answer.")})
            )
        else:
            pieces.put(("end", {"ok": True, "position": interaction.position}))
        finally:
            # This thread opened its own database connection: close it.
            connections.close_all()

    worker = threading.Thread(target=work, name=f"ask-{chat.chat_id}", daemon=True)
    worker.start()
    while True:
        kind, value = pieces.get()
        if kind == "token":
            yield value
        else:
            yield STREAM_END + json.dumps(value)
            break
    worker.join(timeout=5)


@login_required
@require_http_methods(["GET", "POST"])
def prompt_overrides(request: HttpRequest) -> HttpResponse:
    override = PromptOverride.objects.filter(
        owner=request.user, key=PromptOverride.Key.SYSTEM
    ).first()
    if request.method == "POST":
        form = PromptOverrideForm(request.POST, instance=override)
        if form.is_valid():
            saved = form.save(commit=False)
            saved.owner = request.user
            saved.key = PromptOverride.Key.SYSTEM
            saved.save()
            messages.success(request, _("Your prompt override was saved."))
            return redirect("chats:overrides")
    else:
        form = PromptOverrideForm(instance=override)
    return render(request, "chats/overrides.html", {"form": form, "override": override})


@login_required
@require_GET
def document(request: HttpRequest, path: str = "") -> HttpResponse:
    """An indexed document of the local search, where its citations point (see
    chats.documents)."""
    found = indexed_document(path)
    if found is None:
        raise Http404
    return render(request, "chats/document.html", {"document": found})
