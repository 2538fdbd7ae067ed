"""Conversion of the old application's batches into Batch / BatchItem / Chat / Interaction.

Used by the 0003 data migration (with historical models from `apps`) and by
`manage.py migrate_batches` (with the real models), so the rules live in one place.
Functions take the model classes they write, never import them, for that reason.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

# Old entry status -> BatchItem status. Anything else is treated as not yet processed.
ENTRY_STATUS = {
    "completed": "done",
    "complete": "done",
    "done": "done",
    "processed": "done",
    "failed": "failed",
    "error": "failed",
    "pending": "pending",
    "cancelled": "cancelled",
    "canceled": "cancelled",
}
QUESTION_KEYS = ("question", "redactedQuestion", "problemDetails", "prompt")
URL_KEYS = ("url", "referringUrl", "referring_url")


def to_int(value: Any) -> int | None:
    """An int from a plain number, a numeric string or Extended JSON {"$numberLong": ...}."""
    if isinstance(value, dict):
        value = value.get("$numberLong", value.get("$numberInt", value.get("$numberDouble")))
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def first(mapping: dict, keys: tuple[str, ...]) -> str:
    for key in keys:
        value = mapping.get(key)
        if value not in (None, ""):
            return str(value)
    return ""


def plain_json(value: Any) -> Any:
    """Extended JSON wrappers ($oid, $date, $numberLong, ...) flattened to plain values."""
    if isinstance(value, dict):
        if len(value) == 1:
            key, inner = next(iter(value.items()))
            if key == "$oid":
                return str(inner)
            if key in ("$date", "$numberLong", "$numberInt", "$numberDouble"):
                return plain_json(inner)
        return {k: plain_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_json(v) for v in value]
    return value


def parse_search_results(text: Any) -> list[dict]:
    """The old app kept search results as "Title: ...\\nLink: ...\\nSummary: ..." text."""
    if isinstance(text, list):
        return [r for r in text if isinstance(r, dict)]
    if not isinstance(text, str) or not text.strip():
        return []
    results: list[dict] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        label, _, value = line.partition(":")
        label = label.strip().lower()
        if label == "title":
            if current:
                results.append(current)
            current = {"title": value.strip(), "url": "", "snippet": ""}
        elif label in ("link", "url") and current is not None:
            current.setdefault("title", "")
            current["url"] = value.strip()
        elif label in ("summary", "snippet"):
            current.setdefault("title", "")
            current["snippet"] = value.strip()
    if current:
        results.append(current)
    return results


@dataclass
class EntryConversion:
    """What one inline entry becomes: the item's fields and, if answered, an interaction."""

    question: str
    referring_url: str
    status: str
    error: str
    row: dict
    interaction: dict | None


def convert_entry(entry: dict) -> EntryConversion:
    entry = plain_json(entry) if isinstance(entry, dict) else {}
    question = first(entry, QUESTION_KEYS)
    referring_url = first(entry, URL_KEYS)
    raw_status = str(entry.get("status") or "pending").strip().lower()
    status = ENTRY_STATUS.get(raw_status, "pending")
    error = str(entry.get("error") or "")
    answer = entry.get("answer")
    if status == "done" and not answer:
        # Marked completed but no answer was stored: keep the row, say why.
        status, error = "failed", error or "The old application stored no answer for this row."
    if status == "failed" and not error:
        error = "Failed in the old application (no reason recorded)."
    row = {k: v for k, v in entry.items() if k not in _ANSWER_KEYS}
    interaction = None
    if status == "done":
        input_tokens = to_int(entry.get("answer_input_tokens"))
        output_tokens = to_int(entry.get("answer_output_tokens"))
        interaction = {
            "question": question,
            "referring_url": referring_url,
            "answer": str(answer),
            "citation_url": str(entry.get("answer_citation_url") or ""),
            "citation_title": str(entry.get("answer_citation_head") or ""),
            "search_query": str(entry.get("searchQuery") or entry.get("search_query") or ""),
            "search_results": parse_search_results(entry.get("searchResults")),
            "model": str(entry.get("answer_model") or entry.get("model") or ""),
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "latency_ms": to_int(entry.get("responseTime") or entry.get("response_time")),
        }
    return EntryConversion(question, referring_url, status, error, row, interaction)


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
    "searchResults",
}


@dataclass
class ConversionResult:
    batches: int = 0
    items: int = 0
    interactions: int = 0
    skipped: list[str] = field(default_factory=list)


def counters_for(statuses: list[str]) -> dict[str, int]:
    """Counters as the engine keeps them, derived from the item statuses in row order."""
    leading = 0
    for status in statuses:
        if status not in ("done", "failed"):
            break
        leading += 1
    return {
        "total_items": len(statuses),
        "processed_items": statuses.count("done"),
        "failed_items": statuses.count("failed"),
        "last_processed_index": leading,
    }


def batch_status_for(old_status: str, counters: dict[str, int]) -> str:
    finished = counters["processed_items"] + counters["failed_items"]
    old = (old_status or "").lower()
    if counters["total_items"] and finished >= counters["total_items"]:
        return "completed"
    if old in ("cancelled", "canceled"):
        return "cancelled"
    # Unfinished rows of an old batch wait for someone to resume them here.
    return "uploaded" if finished == 0 else "cancelled"


def convert_inline_batch(batch, entries: list, *, Chat, Interaction, BatchItem) -> ConversionResult:
    """Turn one batch's inline entries into items; positions that exist are left alone.

    1. skip entries whose position already has an item (idempotent re-runs);
    2. one Chat per entry (the old app had one chat per row), settings from the batch;
    3. an Interaction for answered entries, linked from the item;
    4. counters and status recomputed from all items of the batch.
    """
    result = ConversionResult(batches=1)
    existing = set(BatchItem.objects.filter(batch=batch).values_list("position", flat=True))
    for position, entry in enumerate(entries or []):
        if position in existing:
            continue
        converted = convert_entry(entry)
        if not converted.question:
            result.skipped.append(
                f"batch {batch.legacy_id or batch.pk} row {position}: no question"
            )
            continue
        chat = Chat.objects.create(
            chat_id=secrets.token_urlsafe(9),
            ai_provider=batch.ai_provider,
            model=getattr(batch, "model", "") or "",
            search_provider=batch.search_provider,
            page_language=batch.page_language,
            apply_overrides=batch.apply_overrides,
            uploader_id=batch.uploader_id,
        )
        interaction = None
        if converted.interaction is not None:
            interaction = Interaction.objects.create(chat=chat, position=0, **converted.interaction)
            result.interactions += 1
        BatchItem.objects.create(
            batch=batch,
            chat=chat,
            position=position,
            question=converted.question,
            referring_url=converted.referring_url,
            row=converted.row,
            status=converted.status,
            error=converted.error,
            interaction=interaction,
            finished_at=batch.updated_at if converted.status in ("done", "failed") else None,
        )
        result.items += 1
    statuses = list(
        BatchItem.objects.filter(batch=batch).order_by("position").values_list("status", flat=True)
    )
    counters = counters_for(statuses)
    for name, value in counters.items():
        setattr(batch, name, value)
    batch.status = batch_status_for(batch.status, counters)
    batch.save(update_fields=[*counters, "status"])
    return result


def convert_inline_batches(apps, *, batch_size: int = 100) -> ConversionResult:
    """The 0003 data migration: every batch with inline entries, one transaction each."""
    from django.db import transaction

    Batch = apps.get_model("batches", "Batch")
    models = {
        "Chat": apps.get_model("chats", "Chat"),
        "Interaction": apps.get_model("chats", "Interaction"),
        "BatchItem": apps.get_model("batches", "BatchItem"),
    }
    total = ConversionResult()
    for batch in Batch.objects.order_by("pk").iterator(chunk_size=batch_size):
        if not batch.entries:
            continue
        with transaction.atomic():
            result = convert_inline_batch(batch, batch.entries, **models)
        total.batches += 1
        total.items += result.items
        total.interactions += result.interactions
        total.skipped += result.skipped
    return total
