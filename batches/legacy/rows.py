"""One legacy row (an era-1 entry, an era-2 interaction) -> LegacyRow: what it becomes,
with the one status rule of both eras (`row_status`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from batches.legacy.mongoexport import document_id, ref_id
from batches.legacy.values import (
    LegacyDocumentError,
    answer_text,
    first,
    fit_id,
    language,
    parse_search_results,
    plain_json,
    text,
    to_datetime,
    to_int,
)
from chats.models import URL_MAX_LENGTH

# Old entry / interaction status -> BatchItem status. `None` means: not a status we know;
# the row is imported as pending (asked again) and the summary says so.
ENTRY_STATUS = {
    "completed": "done",
    "complete": "done",
    "done": "done",
    "processed": "done",
    "success": "done",
    "failed": "failed",
    "error": "failed",
    "pending": "pending",
    "queued": "pending",
    "processing": "pending",
    "running": "pending",
    "": "pending",
    "cancelled": "cancelled",
    "canceled": "cancelled",
}


QUESTION_KEYS = ("question", "redactedQuestion", "problemDetails", "prompt")


URL_KEYS = ("url", "referringUrl", "referring_url")


# Fields of an answered entry that become the Interaction rather than input columns.
_ANSWER_KEYS = {
    "status",
    "error",
    "answer",
    "answer_citation_url",
    "answer_citation_head",
    "answer_citation_confidence",
    "answer_model",
    "answer_input_tokens",
    "answer_output_tokens",
    "context_model",
    "context_input_tokens",
    "context_output_tokens",
    "department",
    "searchQuery",
    "search_query",
    "searchResults",
    "responseTime",
    "response_time",
}


@dataclass
class LegacyRow:
    """What one legacy row becomes: a BatchItem, and an Interaction if it was answered."""

    question: str
    referring_url: str
    status: str
    error: str
    row: dict
    interaction: dict | None = None
    # Era 2: rows of one legacy chat share one Chat (found again by this id on re-import),
    # at their turn within it.
    chat_key: str = ""
    chat_position: int = 0
    chat_fields: dict = field(default_factory=dict)
    chat_created_at: datetime | None = None
    created_at: datetime | None = None
    note: str = ""


def item_status(raw: Any) -> tuple[str, bool]:
    """(BatchItem status, whether the old status was one we know)."""
    key = text(raw).strip().lower()
    status = ENTRY_STATUS.get(key)
    return (status, True) if status else ("pending", False)


def row_status(
    raw: Any, *, answer: str, error: str, era: int, answer_gap: str = ""
) -> tuple[str, str, str]:
    """(BatchItem status, error, note) of one legacy row: the one status rule of both eras.

    1. A status we know maps through ENTRY_STATUS. An unknown one becomes `done` when the
       row has an answer (the best evidence of what happened), else `pending` (asked
       again), with a note.
    2. `done` without an answer is where the eras differ, because they kept answers
       differently. Era 1 stored the answer inside the entry: an entry marked completed
       without one never had an answer stored, and that is a fact about the row, so it
       is `failed`, saying so (retry asks it again). Era 2 stored answers in their own
       collection: a missing or empty one (`answer_gap` says which) is a gap in the
       export, not in the row, so the row is `pending` (answered on start), with a note.
    3. `failed` without a reason gets one.
    """
    status, known = item_status(raw)
    note = ""
    if not known:
        status = "done" if answer else "pending"
        note = f"unknown status '{raw}', imported as {status}"
    if status == "done" and not answer:
        if era == 1:
            status, error = "failed", error or "The old application stored no answer for this row."
        else:
            status, note = "pending", f"{answer_gap}; row left pending"
    if status == "failed" and not error:
        error = "Failed in the old application (no reason recorded)."
    return status, error, note


def convert_entry(entry: Any) -> LegacyRow:
    """An era-1 inline entry: its input columns, status, and answer if it has one."""
    entry = plain_json(entry) if isinstance(entry, dict) else {}
    question = first(entry, QUESTION_KEYS)
    referring_url = first(entry, URL_KEYS)
    answer = answer_text(entry.get("answer"))
    status, error, note = row_status(
        entry.get("status"), answer=answer, error=text(entry.get("error")).strip(), era=1
    )
    if not question:
        # Kept as a failed row, so every entry stays one row at its own position.
        status = "failed"
        error = "The old data has no question for this row; there is nothing to ask."
    row = {k: v for k, v in entry.items() if k not in _ANSWER_KEYS}
    interaction = None
    if status == "done":
        interaction = {
            "question": question,
            "referring_url": referring_url[:URL_MAX_LENGTH],
            "answer": answer,
            "citation_url": text(entry.get("answer_citation_url"))[:URL_MAX_LENGTH],
            "citation_title": text(entry.get("answer_citation_head"))[:500],
            "search_query": text(entry.get("searchQuery") or entry.get("search_query")),
            "search_results": parse_search_results(entry.get("searchResults")),
            "model": text(entry.get("answer_model") or entry.get("model"))[:128],
            "input_tokens": to_int(entry.get("answer_input_tokens")),
            "output_tokens": to_int(entry.get("answer_output_tokens")),
            "latency_ms": to_int(entry.get("responseTime") or entry.get("response_time")),
        }
    return LegacyRow(
        question=question,
        referring_url=referring_url[:URL_MAX_LENGTH],
        status=status,
        error=error,
        row=row,
        interaction=interaction,
        note=note,
    )


def _era2_row(
    legacy_id: str,
    index: int,
    interaction: dict,
    chat_turn: tuple[dict, int] | None,
    c: dict[str, dict[str, dict]],
    notes: list[str],
) -> LegacyRow:
    iid = document_id(interaction)
    question_doc = c["questions"].get(ref_id(interaction.get("question")))
    if question_doc is None:
        raise LegacyDocumentError(
            f"interaction {iid}: question {ref_id(interaction.get('question')) or '(none)'} "
            "not found in questions.json"
        )
    question = first(question_doc, ("redactedQuestion", "question", "englishQuestion"))
    if not question:
        raise LegacyDocumentError(f"interaction {iid}: its question has no text")
    referring_url = first(interaction, URL_KEYS)[:URL_MAX_LENGTH]
    row = {
        "interactionId": text(plain_json(interaction.get("interactionId"))) or iid,
        "question": question,
        "url": referring_url,
    }
    answer_ref = ref_id(interaction.get("answer"))
    answer_doc = c["answers"].get(answer_ref) if answer_ref else None
    answer = ""
    if answer_doc is not None:
        answer = (
            answer_text(first(answer_doc, ("content", "englishAnswer")))
            or " ".join(text(s) for s in answer_doc.get("sentences") or []).strip()
        )
    why = "not found in answers.json" if answer_doc is None else "has no text"
    status, error, note = row_status(
        interaction.get("status") or ("completed" if answer_ref else "pending"),
        answer=answer,
        error=text(interaction.get("error")).strip(),
        era=2,
        answer_gap=f"answer {answer_ref} {why}",
    )
    if note:
        notes.append(f"batch {legacy_id} row {index}: {note}")
    chat_fields: dict = {}
    chat_key, chat_position, chat_created = "", 0, None
    if chat_turn is not None:
        chat, chat_position = chat_turn
        chat_key = fit_id(text(plain_json(chat.get("chatId"))).strip() or document_id(chat))
        chat_created = to_datetime(chat.get("createdAt"))
        for key, name in (("aiProvider", "ai_provider"), ("searchProvider", "search_provider")):
            if text(chat.get(key)).strip():
                chat_fields[name] = text(chat.get(key)).strip().lower()[:32]
        if chat.get("pageLanguage"):
            chat_fields["page_language"] = language(chat.get("pageLanguage"))
    else:
        notes.append(
            f"batch {legacy_id} row {index}: no chat lists interaction {iid}; given its own chat"
        )
    turn = None
    if status == "done":
        citation = c["citations"].get(ref_id(answer_doc.get("citation"))) or {}
        context = c["contexts"].get(ref_id(interaction.get("context"))) or {}
        for kind, ref, found in (
            ("citation", ref_id(answer_doc.get("citation")), citation),
            ("context", ref_id(interaction.get("context")), context),
        ):
            if ref and not found:
                notes.append(
                    f"batch {legacy_id} row {index}: {kind} {ref} not found in {kind}s.json; "
                    f"imported without it"
                )
        turn = {
            "question": question,
            "referring_url": referring_url,
            "answer": answer,
            "citation_url": first(citation, ("providedCitationUrl", "aiCitationUrl"))[
                :URL_MAX_LENGTH
            ],
            "citation_title": first(citation, ("citationHead", "title"))[:500],
            "search_query": text(context.get("searchQuery")),
            "search_results": parse_search_results(context.get("searchResults")),
            "model": text(answer_doc.get("model"))[:128],
            "input_tokens": to_int(answer_doc.get("inputTokens")),
            "output_tokens": to_int(answer_doc.get("outputTokens")),
            "latency_ms": to_int(interaction.get("responseTime")),
        }
    return LegacyRow(
        question=question,
        referring_url=referring_url,
        status=status,
        error=error,
        row=row,
        interaction=turn,
        chat_key=chat_key,
        chat_position=chat_position,
        chat_fields=chat_fields,
        chat_created_at=chat_created,
        created_at=to_datetime(interaction.get("createdAt")),
    )
