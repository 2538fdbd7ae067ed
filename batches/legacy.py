"""Conversion of the old application's batches into Batch / BatchItem / Chat / Interaction.

Two ways in, one set of rules:
- the 0003 data migration converts batches that hold their rows inline (`entries`), with
  the historical models of that state (`convert_inline_batches(apps)`);
- `manage.py migrate_batches --from DIR` imports the old application's `mongoexport` files
  (era 1: batches with inline `entries`; era 2: batches referencing `interactions`, with
  `chats`, `questions`, `answers`, `citations`, `contexts` beside them) with the real
  models (`import_exports`); without `--from` it converts a database restored from a dump
  of the old schema (`convert_legacy_database`).

The writing functions take the model classes they write instead of importing them, so the
migration can pass historical models.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
FINISHED = ("done", "failed")
CHUNK = 500
MAX_COUNT = 2_147_483_647  # PositiveIntegerField
# MongoDB stores no document over 16 MB (its BSON limit), so a longer line of an export is
# not a document of the old application: it is reported and skipped, unread.
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
# A --jsonArray export is one JSON value, read whole; past this, export JSON Lines.
MAX_ARRAY_FILE_BYTES = 256 * 1024 * 1024

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


class LegacyDocumentError(Exception):
    """A legacy document that cannot be converted; the message says why."""


# --- Values ----------------------------------------------------------------------------


def to_int(value: Any, *, maximum: int | None = MAX_COUNT) -> int | None:
    """A non-negative int from a number, a numeric string or {"$numberLong": ...}."""
    if isinstance(value, dict):
        value = value.get("$numberLong", value.get("$numberInt", value.get("$numberDouble")))
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = int(float(value))
    except (TypeError, ValueError, OverflowError):
        return None
    # Counters are 32-bit integer columns: 1e300 tokens is a corrupt value, not a count.
    return number if number >= 0 and (maximum is None or number <= maximum) else None


def to_datetime(value: Any) -> datetime | None:
    """A timezone-aware datetime from a datetime, ISO text, epoch ms or {"$date": ...}."""
    if isinstance(value, dict) and "$date" in value:
        value = value["$date"]
        if isinstance(value, dict):
            value = to_int(value, maximum=None)  # epoch milliseconds
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and value.strip():
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def text(value: Any) -> str:
    if value is None:
        return ""
    return storable(value if isinstance(value, str) else str(value))


# NUL and unpaired surrogates: no database stores them (uploads refuse them; an import
# drops NUL and shows a surrogate as U+FFFD, since the export cannot be fixed at the source).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value: str) -> str:
    if _UNSTORABLE.search(value) is None:
        return value
    return _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", value)


ID_CHARS = 64  # Batch.legacy_id and Chat.chat_id


def fit_id(value: str) -> str:
    """An id that fits in ID_CHARS: as it is when it does, else its start and a hash of
    the whole, so two long ids that share their first 64 characters stay two ids (and the
    same id gives the same result on every run)."""
    if len(value) <= ID_CHARS:
        return value
    digest = hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:16]
    return f"{value[: ID_CHARS - 17]}~{digest}"


def first(mapping: dict, keys: tuple[str, ...]) -> str:
    for key in keys:
        value = mapping.get(key)
        if value not in (None, ""):
            return text(value).strip()
    return ""


_SENTENCE_TAG = re.compile(r"</?s-\d+>")


def answer_text(value: Any) -> str:
    """The old app wrapped answer sentences in <s-1>...</s-1>; keep the sentences only."""
    return re.sub(r"\s{2,}", " ", _SENTENCE_TAG.sub(" ", text(value))).strip()


def language(value: Any) -> str:
    """`en` / `fr` from the old app's `en`, `fr`, `eng`, `fra`, `fre`, `English`..."""
    return "fr" if text(value).strip().lower()[:2] == "fr" else "en"


def plain_json(value: Any) -> Any:
    """Extended JSON ($oid, $date, $numberLong) and BSON types as plain JSON values."""
    if isinstance(value, dict):
        if len(value) == 1:
            key, inner = next(iter(value.items()))
            if key == "$oid":
                return str(inner)
            if key == "$date":
                parsed = to_datetime(value)
                return parsed.isoformat() if parsed else plain_json(inner)
            if key in ("$numberLong", "$numberInt", "$numberDouble"):
                return plain_json(inner)
        return {storable(str(k)): plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(v) for v in value]
    if isinstance(value, datetime):
        return to_datetime(value).isoformat()
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # JSON has no NaN or infinity
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)  # bson Int64 -> int
    return storable(str(value))  # ObjectId, Decimal128, ...


def parse_search_results(value: Any) -> list[dict]:
    """The old app kept search results as "Title: ...\\nLink: ...\\nSummary: ..." text."""
    if isinstance(value, list):
        return [plain_json(r) for r in value if isinstance(r, dict)]
    if not isinstance(value, str) or not value.strip():
        return []
    results: list[dict] = []
    current: dict[str, str] | None = None
    for line in value.splitlines():
        label, _, rest = line.partition(":")
        label = label.strip().lower()
        if label == "title":
            if current:
                results.append(current)
            current = {"title": rest.strip(), "url": "", "snippet": ""}
        elif label in ("link", "url"):
            current = current or {"title": "", "url": "", "snippet": ""}
            current["url"] = rest.strip()
        elif label in ("summary", "snippet"):
            current = current or {"title": "", "url": "", "snippet": ""}
            current["snippet"] = rest.strip()
        elif current and line.strip():
            # A summary that runs over several lines.
            current["snippet"] = f"{current['snippet']} {line.strip()}".strip()
    if current:
        results.append(current)
    return results


# --- One row ---------------------------------------------------------------------------


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


def convert_entry(entry: Any) -> LegacyRow:
    """An era-1 inline entry: its input columns, status, and answer if it has one."""
    entry = plain_json(entry) if isinstance(entry, dict) else {}
    question = first(entry, QUESTION_KEYS)
    referring_url = first(entry, URL_KEYS)
    status, known = item_status(entry.get("status"))
    error = text(entry.get("error")).strip()
    answer = answer_text(entry.get("answer"))
    note = ""
    if not known:
        # An answer is the best evidence of what happened to the row.
        status = "done" if answer else "pending"
        note = f"unknown status '{entry.get('status')}', imported as {status}"
    if status == "done" and not answer:
        status, error = "failed", error or "The old application stored no answer for this row."
    if status == "failed" and not error:
        error = "Failed in the old application (no reason recorded)."
    if not question:
        # Kept as a failed row, so every entry stays one row at its own position.
        status = "failed"
        error = "The old data has no question for this row; there is nothing to ask."
    row = {k: v for k, v in entry.items() if k not in _ANSWER_KEYS}
    interaction = None
    if status == "done":
        interaction = {
            "question": question,
            "referring_url": referring_url[:2048],
            "answer": answer,
            "citation_url": text(entry.get("answer_citation_url"))[:2048],
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
        referring_url=referring_url[:2048],
        status=status,
        error=error,
        row=row,
        interaction=interaction,
        note=note,
    )


# --- Writing rows ----------------------------------------------------------------------


@dataclass
class WriteResult:
    items: int = 0
    interactions: int = 0
    chats_created: int = 0
    chats_reused: int = 0
    notes: list[str] = field(default_factory=list)


def _chunks(values: list, size: int = CHUNK) -> Iterator[list]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def write_rows(
    batch,
    rows: list[LegacyRow],
    *,
    positions: list[int] | None = None,
    Chat,
    Interaction,
    BatchItem,
) -> WriteResult:
    """Create the Chats, Interactions and BatchItems of `rows` for `batch`.

    1. chats: a row with a `chat_key` reuses the batch owner's Chat whose `chat_id` is that
       legacy id (from an earlier import or an earlier row), else one is created with that
       id (or, when another owner's chat has it, with an id derived for this owner: see
       _owned_chats); a row without one gets a new Chat with the batch's settings;
    2. interactions: an answered row reuses the turn already stored at its position in a
       reused chat when it asks the same question and no other row links it; a turn that
       belongs to another row (or asks something else) drops the row, with a note;
    3. items at `positions` (era 1: the entry's index, so re-runs can skip it) or 0..n-1;
    4. dates: `created_at` is auto_now_add, so the old dates are written afterwards.
    """
    result = WriteResult()
    label = batch.legacy_id or batch.pk
    chat_settings = {
        "ai_provider": batch.ai_provider,
        "model": getattr(batch, "model", "") or "",
        "search_provider": batch.search_provider,
        "page_language": batch.page_language,
        "apply_overrides": batch.apply_overrides,
        "uploader_id": batch.uploader_id,
    }
    chats, chat_ids = _owned_chats(
        sorted({r.chat_key for r in rows if r.chat_key}), batch.uploader_id, Chat, result, label
    )
    reused_chats = set(chats)
    result.chats_reused = len(reused_chats)
    turns: dict[tuple[int, int], Any] = {}
    linked: set[int] = set()
    if reused_chats:
        chat_pks = [chats[k].pk for k in reused_chats]
        for chunk in _chunks(chat_pks):
            for turn in Interaction.objects.filter(chat_id__in=chunk):
                turns[(turn.chat_id, turn.position)] = turn
            linked.update(
                BatchItem.objects.filter(interaction__chat_id__in=chunk).values_list(
                    "interaction_id", flat=True
                )
            )

    # 1. chats
    new_chats: list = []
    row_chats: list = []
    for row in rows:
        chat = chats.get(row.chat_key) if row.chat_key else None
        if chat is None:
            chat = Chat(
                chat_id=chat_ids.get(row.chat_key) or secrets.token_urlsafe(9),
                **{**chat_settings, **row.chat_fields},
            )
            chat.created_at = row.chat_created_at or batch.created_at
            new_chats.append(chat)
            if row.chat_key:
                chats[row.chat_key] = chat
        row_chats.append(chat)
    wanted_dates = [c.created_at for c in new_chats]
    for chunk in _chunks(new_chats):
        Chat.objects.bulk_create(chunk)
    for chat, when in zip(new_chats, wanted_dates, strict=True):
        chat.created_at = when
    for chunk in _chunks(new_chats):
        Chat.objects.bulk_update(chunk, ["created_at"])
    result.chats_created = len(new_chats)

    # 2. interactions
    kept: list[tuple[int, LegacyRow, Any, Any]] = []
    new_turns: list = []
    for index, (row, chat) in enumerate(zip(rows, row_chats, strict=True)):
        turn = None
        if row.interaction is not None:
            existing = turns.get((chat.pk, row.chat_position))
            if existing is not None:
                if existing.pk in linked or existing.question != row.interaction["question"]:
                    result.notes.append(
                        f"batch {label}: row {index} skipped: turn {row.chat_position} of chat "
                        f"{chat.chat_id} is already imported for another row or asks "
                        "something else"
                    )
                    continue
                turn = existing
                linked.add(existing.pk)
            else:
                turn = Interaction(chat=chat, position=row.chat_position, **row.interaction)
                turn.created_at = row.created_at or batch.created_at
                new_turns.append(turn)
                turns[(chat.pk, row.chat_position)] = turn
        kept.append((index, row, chat, turn))
    wanted_dates = [t.created_at for t in new_turns]
    for chunk in _chunks(new_turns):
        Interaction.objects.bulk_create(chunk)
    for turn, when in zip(new_turns, wanted_dates, strict=True):
        turn.created_at = when
    for chunk in _chunks(new_turns):
        Interaction.objects.bulk_update(chunk, ["created_at"])
    result.interactions = len(new_turns)

    # 3. items
    finished_at = getattr(batch, "updated_at", None) or batch.created_at
    items = [
        BatchItem(
            batch=batch,
            chat=chat,
            position=positions[index] if positions is not None else number,
            question=row.question,
            referring_url=row.referring_url,
            row=row.row,
            status=row.status,
            error=row.error,
            interaction=turn,
            finished_at=finished_at if row.status in FINISHED else None,
        )
        for number, (index, row, chat, turn) in enumerate(kept)
    ]
    for chunk in _chunks(items):
        BatchItem.objects.bulk_create(chunk)
    result.items = len(items)
    result.notes.extend(
        f"batch {label} row {index}: {row.note}" for index, row, *_ in kept if row.note
    )
    return result


def owner_chat_id(key: str, owner_id) -> str:
    """The chat id a legacy chat gets when another owner's chat here already has its id:
    derived from both, so a later import for the same owner finds it again."""
    digest = hashlib.sha256(f"{owner_id}:{key}".encode("utf-8", "replace")).hexdigest()[:16]
    return f"{key[:40]}~u{digest}"


def _owned_chats(keys: list[str], owner_id, Chat, result: WriteResult, label):
    """1. the Chats of `owner_id` for these legacy chat ids (by the id itself, or by the id
    derived for this owner after a collision); 2. for each key without one, the chat id
    its new Chat gets: the legacy id, or, when another owner's chat already has it, the
    derived id (reported: a row never joins someone else's conversation)."""
    chats: dict[str, Any] = {}
    derived = {owner_chat_id(key, owner_id): key for key in keys}
    for chunk in _chunks([*keys, *derived]):
        for chat in Chat.objects.filter(chat_id__in=chunk, uploader_id=owner_id):
            key = derived.get(chat.chat_id, chat.chat_id)
            if key not in chats or chat.chat_id == key:
                chats[key] = chat
    missing = [key for key in keys if key not in chats]
    taken: set[str] = set()
    for chunk in _chunks(missing):
        taken.update(Chat.objects.filter(chat_id__in=chunk).values_list("chat_id", flat=True))
    chat_ids = {key: key for key in missing}
    for key in sorted(taken):
        chat_ids[key] = owner_chat_id(key, owner_id)
        result.notes.append(
            f"batch {label}: legacy chat {key} already exists here for another owner; its "
            f"rows get their own chat {chat_ids[key]}"
        )
    return chats, chat_ids


def counters_for(statuses: list[str]) -> dict[str, int]:
    """Counters as the engine keeps them, derived from the item statuses in row order."""
    leading = 0
    for status in statuses:
        if status not in FINISHED:
            break
        leading += 1
    return {
        "total_items": len(statuses),
        "processed_items": statuses.count("done"),
        "failed_items": statuses.count("failed"),
        "last_processed_index": leading,
    }


def batch_status_for(old_status: str, counters: dict[str, int]) -> str:
    """All rows finished: completed. Rows left: `uploaded` (Start answers them now), or
    `cancelled` when the old batch was cancelled (Start or Retry resumes it)."""
    finished = counters["processed_items"] + counters["failed_items"]
    if finished >= counters["total_items"]:
        return "completed"
    if text(old_status).strip().lower() in ("cancelled", "canceled"):
        return "cancelled"
    return "uploaded"


def finish_batch(batch, *, BatchItem, old_status: str = "") -> dict[str, int]:
    """Recount the batch's items and set its counters, status and finished time."""
    statuses = list(
        BatchItem.objects.filter(batch=batch).order_by("position").values_list("status", flat=True)
    )
    counters = counters_for(statuses)
    for name, value in counters.items():
        setattr(batch, name, value)
    batch.status = batch_status_for(old_status or batch.status, counters)
    update = [*counters, "status"]
    if hasattr(batch, "finished_at"):
        done = batch.status == "completed"
        batch.finished_at = (batch.finished_at or batch.updated_at) if done else None
        update.append("finished_at")
    batch.save(update_fields=update)
    return counters


# --- The 0003 data migration (and migrate_batches without --from) ----------------------


@dataclass
class ConversionResult:
    batches: int = 0
    items: int = 0
    interactions: int = 0
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def convert_inline_batch(batch, entries: list, *, Chat, Interaction, BatchItem) -> ConversionResult:
    """Turn one batch's inline entries into items; positions that have an item are skipped.

    Every entry becomes exactly one item at position = its index (an entry without a
    question becomes a failed row saying so), so running this again creates nothing.
    """
    result = ConversionResult(batches=1)
    if not batch.search_provider:
        # The old app left it empty when it searched nothing; "" is not a provider here.
        batch.search_provider = "none"
        batch.save(update_fields=["search_provider"])
    existing = set(BatchItem.objects.filter(batch=batch).values_list("position", flat=True))
    todo = [(p, convert_entry(e)) for p, e in enumerate(entries or []) if p not in existing]
    written = write_rows(
        batch,
        [row for _, row in todo],
        positions=[p for p, _ in todo],
        Chat=Chat,
        Interaction=Interaction,
        BatchItem=BatchItem,
    )
    result.items = written.items
    result.interactions = written.interactions
    result.notes = written.notes
    finish_batch(batch, BatchItem=BatchItem)
    return result


def convert_inline_batches(
    apps,
    *,
    batch_size: int = 100,
    progress: Callable[[ConversionResult], None] | None = None,
) -> ConversionResult:
    """Every batch that still holds inline entries, one transaction each.

    Batches are read by primary-key ranges rather than one open cursor, because SQLite
    gives no isolation between a cursor and writes on the same connection.
    """
    from django.db import transaction

    Batch = apps.get_model("batches", "Batch")
    models = {
        "Chat": apps.get_model("chats", "Chat"),
        "Interaction": apps.get_model("chats", "Interaction"),
        "BatchItem": apps.get_model("batches", "BatchItem"),
    }
    total = ConversionResult()
    last_pk = 0
    while True:
        chunk = list(Batch.objects.filter(pk__gt=last_pk).order_by("pk")[:batch_size])
        if not chunk:
            break
        last_pk = chunk[-1].pk
        for batch in chunk:
            label = batch.legacy_id or batch.pk
            with transaction.atomic():
                if batch.entries:
                    result = convert_inline_batch(batch, batch.entries, **models)
                elif batch.interactions:
                    total.skipped.append(
                        f"batch {label}: {len(batch.interactions)} interaction references "
                        "and no inline entries; import them with "
                        "`manage.py migrate_batches --from DIR`"
                    )
                    continue
                else:
                    # No rows at all: counters become an honest recount (zero).
                    finish_batch(batch, BatchItem=models["BatchItem"])
                    result = ConversionResult(batches=1)
            total.batches += result.batches
            total.items += result.items
            total.interactions += result.interactions
            total.notes += result.notes
        if progress is not None:
            progress(total)
    return total


def convert_legacy_database(
    *,
    dry_run: bool = False,
    batch_size: int = 100,
    database: str = "default",
    progress: Callable[[str], None] = lambda message: None,
) -> ConversionResult | None:
    """Convert a database restored from a dump of the old schema (batches at 0001).

    1. read the migration state; if batches stands at 0003 or later there is nothing
       inline to convert and None is returned;
    2. at 0001: migrate batches to 0002 (adds BatchItem beside the inline entries);
       a dry run only counts, with the 0001 models, and migrates nothing;
    3. convert in chunks of `batch_size` batches with the historical models of 0002;
    4. migrate everything to the latest state (0003 then finds nothing left; 0004 drops
       the inline fields).
    """
    from django.core.management import call_command
    from django.db import connections
    from django.db.migrations.executor import MigrationExecutor

    connection = connections[database]
    executor = MigrationExecutor(connection)
    applied = executor.loader.applied_migrations
    if ("batches", "0001_initial") not in applied:
        raise LegacyDocumentError(
            "The batches tables do not exist in this database yet: run `manage.py migrate` "
            "(or restore the old dump first)."
        )
    if ("batches", "0003_inline_entries_to_items") in applied:
        return None
    at_0002 = ("batches", "0002_chat_relation") in applied
    if dry_run:
        node = ("batches", "0002_chat_relation" if at_0002 else "0001_initial")
        Batch = executor.loader.project_state(node).apps.get_model("batches", "Batch")
        result = ConversionResult()
        for entries in Batch.objects.using(database).values_list("entries", flat=True):
            if entries:
                result.batches += 1
                for entry in entries:
                    result.items += 1
                    result.interactions += convert_entry(entry).interaction is not None
        return result
    if not at_0002:
        progress("Migrating batches to 0002_chat_relation (adds rows beside the inline data)")
        call_command("migrate", "batches", "0002_chat_relation", database=database, verbosity=0)
        executor = MigrationExecutor(connection)
    state = executor.loader.project_state(
        [("batches", "0002_chat_relation"), ("chats", "0001_initial")]
    )

    def report(total: ConversionResult) -> None:
        progress(
            f"  {total.batches} batches, {total.items} rows, "
            f"{total.interactions} interactions converted so far"
        )

    result = convert_inline_batches(state.apps, batch_size=batch_size, progress=report)
    progress("Migrating to the latest schema (drops the inline fields)")
    call_command("migrate", database=database, verbosity=0)
    return result


# --- Reading mongoexport files ---------------------------------------------------------

ERA2_FILES = ("interactions", "chats", "questions", "answers", "citations", "contexts")


def read_export(path: Path) -> tuple[list[dict], list[str]]:
    """Documents of a mongoexport file (JSON Lines or one JSON array) and read errors.

    JSON Lines are read line by line: a line over MAX_DOCUMENT_BYTES is skipped without
    being held in memory, and a line that is not valid (Extended) JSON is reported with
    its number and reason (a bad `$oid`, `$numberDecimal` or `$date`, nesting deeper
    than Python parses, ...) while the others still load. A JSON array is one value: it
    is read whole, up to MAX_ARRAY_FILE_BYTES.
    """
    name = f"{path.parent.name}/{path.name}"
    with path.open("rb") as handle:
        start = handle.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
        handle.seek(0)
        if start.startswith(b"["):
            return _read_array(path, name, handle)
        return _read_lines(name, handle)


def _json_options():
    from bson.json_util import JSONOptions

    return JSONOptions(tz_aware=True, tzinfo=UTC)


def _loads(raw: str) -> Any:
    from bson import json_util

    return json_util.loads(raw, json_options=_json_options())


def _why(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    message = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _read_lines(name: str, handle) -> tuple[list[dict], list[str]]:
    documents: list[dict] = []
    errors: list[str] = []
    limit = MAX_DOCUMENT_BYTES
    for number, line in enumerate(iter(lambda: handle.readline(limit + 1), b""), start=1):
        if len(line) > limit and not line.endswith(b"\n"):
            while (rest := handle.readline(1024 * 1024)) and not rest.endswith(b"\n"):
                pass  # the rest of an over-long line, read and dropped piece by piece
            errors.append(
                f"{name} line {number}: a document of more than {limit // (1024 * 1024)} MB, "
                "larger than MongoDB stores; skipped"
            )
            continue
        if number == 1:
            line = line.removeprefix(b"\xef\xbb\xbf")
        if not line.strip():
            continue
        try:
            document = _loads(line.decode("utf-8"))
        except UnicodeDecodeError as exc:
            errors.append(f"{name} line {number}: not UTF-8 text ({exc.reason}); skipped")
            continue
        except Exception as exc:  # bson raises its own types, RecursionError, ArithmeticError
            errors.append(f"{name} line {number}: not valid JSON ({_why(exc)}); skipped")
            continue
        if not isinstance(document, dict):
            errors.append(f"{name} line {number}: not a JSON object; skipped")
            continue
        documents.append(document)
    return documents, errors


def _read_array(path: Path, name: str, handle) -> tuple[list[dict], list[str]]:
    size = path.stat().st_size
    if size > MAX_ARRAY_FILE_BYTES:
        return [], [
            f"{path}: a JSON array of {size // (1024 * 1024)} MB; arrays are read whole, up to "
            f"{MAX_ARRAY_FILE_BYTES // (1024 * 1024)} MB. Export it as JSON Lines "
            "(mongoexport without --jsonArray); nothing read from this file"
        ]
    try:
        content = handle.read().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [], [f"{path}: not UTF-8 text ({exc.reason}); export it again with mongoexport"]
    try:
        loaded = _loads(content)
    except Exception as exc:  # as in _read_lines
        return [], [f"{path}: not valid JSON ({_why(exc)}); nothing read from this file"]
    documents: list[dict] = []
    errors: list[str] = []
    for number, document in enumerate(loaded if isinstance(loaded, list) else [loaded], 1):
        if not isinstance(document, dict):
            errors.append(f"{name} item {number}: not a JSON object; skipped")
            continue
        documents.append(document)
    return documents, errors


def document_id(document: dict) -> str:
    return text(plain_json(document.get("_id"))).strip()


def ref_id(value: Any) -> str:
    """A reference as the old app stored it: {"$oid"}, an ObjectId, a string or a doc."""
    if isinstance(value, dict) and "_id" in value:
        value = value["_id"]
    return text(plain_json(value)).strip()


@dataclass
class ExportFolder:
    """One folder of mongoexport files: its batches and, for era 2, the other collections."""

    path: Path
    batches: list[dict]
    collections: dict[str, dict[str, dict]]
    missing: list[str]
    errors: list[str]
    notes: list[str]


def load_folder(path: Path) -> ExportFolder:
    """batches.json and, when present, the era-2 collections of one folder, by `_id`."""
    batches, errors = read_export(path / "batches.json")
    collections: dict[str, dict[str, dict]] = {}
    missing: list[str] = []
    notes: list[str] = []
    for name in ERA2_FILES:
        file = path / f"{name}.json"
        if not file.exists():
            missing.append(file.name)
            continue
        documents, file_errors = read_export(file)
        errors.extend(file_errors)
        by_id: dict[str, dict] = {}
        duplicates = 0
        for document in documents:
            try:
                key = document_id(document)
            except Exception as exc:  # an _id shaped like nothing the old app wrote
                errors.append(f"{path.name}/{file.name}: a document's _id: {_why(exc)}; skipped")
                continue
            if not key:
                errors.append(f"{path.name}/{file.name}: a document without _id; skipped")
            elif key in by_id:
                duplicates += 1
            else:
                by_id[key] = document
        if duplicates:
            notes.append(
                f"{path.name}/{file.name}: {duplicates} repeated documents ignored (same _id)"
            )
        collections[name] = by_id
    return ExportFolder(path, batches, collections, missing, errors, notes)


def find_export_folders(source: Path) -> list[Path]:
    """`source` and its direct subfolders that hold a batches.json, in name order."""
    folders = [source] if (source / "batches.json").is_file() else []
    folders += sorted(p for p in source.iterdir() if p.is_dir() and (p / "batches.json").is_file())
    return folders


# --- Legacy documents -> LegacyBatch ---------------------------------------------------


@dataclass
class LegacyBatch:
    legacy_id: str
    fields: dict
    old_status: str
    rows: list[LegacyRow]
    notes: list[str] = field(default_factory=list)


def _batch_fields(document: dict) -> dict:
    name = first(document, ("name", "batchName")) or f"Legacy batch {legacy_batch_id(document)}"
    created = to_datetime(document.get("createdAt"))
    return {
        "name": name[:200],
        "type": (text(document.get("type")).strip() or "question")[:32],
        "ai_provider": (text(document.get("aiProvider")).strip().lower() or "openai")[:32],
        "model": text(document.get("model")).strip()[:128],
        "search_provider": text(document.get("searchProvider")).strip().lower()[:32],
        "page_language": language(document.get("pageLanguage") or document.get("language")),
        "apply_overrides": bool(document.get("applyOverrides")),
        "created_at": created,
        "updated_at": to_datetime(document.get("updatedAt")) or created,
    }


def legacy_batch_id(document: dict) -> str:
    return fit_id(text(plain_json(document.get("batchId"))).strip() or document_id(document))


def batch_from_era1(document: dict) -> LegacyBatch:
    entries = document.get("entries")
    if not isinstance(entries, list):
        raise LegacyDocumentError("`entries` is not a list")
    fields = _batch_fields(document)
    rows = [convert_entry(entry) for entry in entries]
    legacy = LegacyBatch(legacy_batch_id(document), fields, text(document.get("status")), rows)
    stats = {
        "total_items": to_int(document.get("totalItems")),
        "processed_items": to_int(document.get("processedItems")),
        "failed_items": to_int(document.get("failedItems")),
    }
    recount = counters_for([row.status for row in rows])
    differs = {k: v for k, v in stats.items() if v is not None and v != recount[k]}
    if differs:
        said = ", ".join(f"{k}={v}" for k, v in differs.items())
        legacy.notes.append(f"batch {legacy.legacy_id}: old stats said {said}; recounted")
    return legacy


def batch_from_era2(document: dict, folder: ExportFolder) -> LegacyBatch:
    """One era-2 batch: a row per referenced interaction, in the batch's order.

    A missing collection file, or an interaction / question that cannot be found, makes
    the whole batch unconvertible (so a fixed export imports it whole); a missing answer
    leaves the row pending (asked again), a missing citation or context only loses those.
    """
    legacy_id = legacy_batch_id(document)
    if folder.missing:
        raise LegacyDocumentError(
            f"{', '.join(folder.missing)} not found in {folder.path}; "
            "export every collection next to batches.json"
        )
    refs = [ref_id(value) for value in document.get("interactions") or []]
    if any(not ref for ref in refs):
        raise LegacyDocumentError("an interaction reference is empty")
    c = folder.collections
    missing = [ref for ref in refs if ref not in c["interactions"]]
    if missing:
        raise LegacyDocumentError(
            f"interactions not found in interactions.json: {', '.join(missing)}"
        )
    fields = _batch_fields(document)
    legacy = LegacyBatch(legacy_id, fields, text(document.get("status")), [])

    # Which legacy chat holds each interaction, and at which turn (first chat wins).
    chat_of: dict[str, tuple[dict, int]] = {}
    for chat in c["chats"].values():
        for turn, value in enumerate(chat.get("interactions") or []):
            chat_of.setdefault(ref_id(value), (chat, turn))
    seen: set[str] = set()
    for index, ref in enumerate(refs):
        if ref in seen:
            legacy.notes.append(f"batch {legacy_id}: interaction {ref} listed twice; kept once")
            continue
        seen.add(ref)
        legacy.rows.append(
            _era2_row(legacy_id, index, c["interactions"][ref], chat_of.get(ref), c, legacy.notes)
        )
    if not fields["search_provider"]:
        providers = Counter(r.chat_fields.get("search_provider") for r in legacy.rows)
        providers.pop(None, None)
        fields["search_provider"] = providers.most_common(1)[0][0] if providers else ""
    return legacy


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
    referring_url = first(interaction, URL_KEYS)[:2048]
    row = {
        "interactionId": text(plain_json(interaction.get("interactionId"))) or iid,
        "question": question,
        "url": referring_url,
    }
    answer_ref = ref_id(interaction.get("answer"))
    answer_doc = c["answers"].get(answer_ref) if answer_ref else None
    status, known = item_status(
        interaction.get("status") or ("completed" if answer_ref else "pending")
    )
    error = text(interaction.get("error")).strip()
    answer = ""
    if answer_doc is not None:
        answer = (
            answer_text(first(answer_doc, ("content", "englishAnswer")))
            or " ".join(text(s) for s in answer_doc.get("sentences") or []).strip()
        )
    if not known:
        # An answer is the best evidence of what happened to the row.
        status = "done" if answer else "pending"
        notes.append(
            f"batch {legacy_id} row {index}: unknown status "
            f"'{interaction.get('status')}', imported as {status}"
        )
    if status == "done" and not answer:
        why = "not found in answers.json" if answer_doc is None else "has no text"
        notes.append(f"batch {legacy_id} row {index}: answer {answer_ref} {why}; row left pending")
        status = "pending"
    if status == "failed" and not error:
        error = "Failed in the old application (no reason recorded)."
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
            "citation_url": first(citation, ("providedCitationUrl", "aiCitationUrl"))[:2048],
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


def check_upload_limits(legacy: LegacyBatch) -> None:
    """The rules an upload follows (batches.ingest), for an imported batch: at most
    MAX_BATCH_ITEMS rows, MAX_COLUMNS columns per row and in all, MAX_CELL_CHARS per cell,
    so that it can be run, shown and exported like any other. Raises LegacyDocumentError
    naming the first rule broken; `migrate_batches --ignore-upload-limits` skips this."""
    from django.conf import settings

    from batches.ingest import MAX_CELL_CHARS, MAX_COLUMNS

    hint = " (or import with --ignore-upload-limits)"
    limit = settings.MAX_BATCH_ITEMS
    if len(legacy.rows) > limit:
        raise LegacyDocumentError(
            f"{len(legacy.rows):,} rows; the limit is {limit:,} per batch (MAX_BATCH_ITEMS): "
            f"split it, raise the limit{hint}"
        )
    columns: set[str] = set()
    for index, row in enumerate(legacy.rows):
        if len(row.question) > MAX_CELL_CHARS:
            raise LegacyDocumentError(
                f"row {index}: the question has {len(row.question):,} characters; the limit "
                f"is {MAX_CELL_CHARS:,}{hint}"
            )
        columns.update(row.row)
        if len(row.row) > MAX_COLUMNS or len(columns) > MAX_COLUMNS:
            raise LegacyDocumentError(f"row {index}: more than {MAX_COLUMNS:,} columns{hint}")
        for key, value in row.row.items():
            size = len(value) if isinstance(value, str) else len(json.dumps(value, default=str))
            if size > MAX_CELL_CHARS:
                raise LegacyDocumentError(
                    f'row {index}, column "{key}": {size:,} characters; the limit is '
                    f"{MAX_CELL_CHARS:,}{hint}"
                )


# --- migrate_batches --from ------------------------------------------------------------


@dataclass
class ImportSummary:
    batches: int = 0
    items: int = 0
    interactions: int = 0
    chats_created: int = 0
    chats_reused: int = 0
    already_imported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # documents that could not be converted
    errors: list[str] = field(default_factory=list)  # unreadable files / lines
    notes: list[str] = field(default_factory=list)  # converted, with something worth knowing
    without_owner: int = 0

    @property
    def failed(self) -> bool:
        return bool(self.skipped or self.errors)


class _DryRunRollback(Exception):
    pass


def import_exports(
    *,
    source: Path,
    owner=None,
    dry_run: bool = False,
    progress: Callable[[str], None] = lambda message: None,
    progress_every: int = 100,
    upload_limits: bool = True,
) -> ImportSummary:
    """Import every batch of the mongoexport files in `source` (and its subfolders).

    1. read each folder's batches.json (and era-2 collections); unreadable lines are
       reported and skipped;
    2. per batch, in its own transaction: skip it when its legacy id is already imported
       (or repeated in the export), convert it, hold it to the upload limits (unless
       `upload_limits` is False: see check_upload_limits), create the Batch, its rows,
       chats and interactions, recount; a batch that cannot be converted, for whatever
       reason, is reported with that reason and skipped, and the others are imported;
    3. a dry run does all of it inside one transaction that is rolled back.
    """
    from django.db import transaction

    from batches.models import Batch, BatchItem
    from chats.models import Chat, Interaction

    folders = find_export_folders(source)
    if not folders:
        raise LegacyDocumentError(
            f"No batches.json in {source} or its subfolders; point --from at the folder "
            "holding the mongoexport files."
        )
    summary = ImportSummary()
    models = {"Chat": Chat, "Interaction": Interaction, "BatchItem": BatchItem}
    seen: set[str] = set()
    try:
        with transaction.atomic():
            for folder_path in folders:
                folder = load_folder(folder_path)
                summary.errors += folder.errors
                summary.notes += folder.notes
                progress(f"{folder_path}: {len(folder.batches)} batches")
                for number, document in enumerate(folder.batches, start=1):
                    _import_one(
                        document,
                        folder,
                        owner,
                        seen,
                        summary,
                        models,
                        Batch,
                        upload_limits=upload_limits,
                    )
                    if number % progress_every == 0 or number == len(folder.batches):
                        progress(
                            f"  {number}/{len(folder.batches)} read: {summary.batches} imported, "
                            f"{summary.items} rows, {summary.interactions} interactions"
                        )
            if dry_run:
                raise _DryRunRollback
    except _DryRunRollback:
        pass
    return summary


def _import_one(document, folder, owner, seen, summary, models, Batch, *, upload_limits) -> None:
    from django.db import transaction

    try:
        legacy_id = legacy_batch_id(document)
    except Exception as exc:  # a batchId or _id shaped like nothing the old app wrote
        summary.skipped.append(f"a batch in {folder.path.name}/batches.json: {_why(exc)}")
        return
    label = f"batch {legacy_id or '(no batchId or _id)'} in {folder.path.name}/batches.json"
    if not legacy_id:
        summary.skipped.append(f"{label}: no batchId and no _id")
        return
    if legacy_id in seen:
        summary.notes.append(f"{label}: repeated in the export; imported once")
        return
    seen.add(legacy_id)
    if Batch.objects.filter(legacy_id=legacy_id).exists():
        summary.already_imported.append(legacy_id)
        return
    entries, refs = document.get("entries"), document.get("interactions")
    if (
        entries in (None, [])
        and refs in (None, [])
        and ("entries" in document or "interactions" in document)
    ):
        summary.notes.append(f"{label}: no entries and no interactions; nothing to import")
        return
    try:
        if entries not in (None, []):
            legacy = batch_from_era1(document)
        elif refs is not None:
            if not isinstance(refs, list):
                raise LegacyDocumentError("`interactions` is not a list")
            legacy = batch_from_era2(document, folder)
        else:
            raise LegacyDocumentError("neither `entries` nor `interactions`: not a batch")
        if upload_limits:
            check_upload_limits(legacy)
        with transaction.atomic():
            fields = dict(legacy.fields)
            created_at = fields.pop("created_at")
            updated_at = fields.pop("updated_at")
            fields["search_provider"] = fields["search_provider"] or "none"
            batch = Batch(legacy_id=legacy_id, uploader=owner, **fields)
            if created_at:
                batch.created_at = created_at
            batch.save()
            # updated_at is auto_now; the old value dates finished rows and the batch.
            batch.updated_at = updated_at or batch.created_at
            written = write_rows(batch, legacy.rows, **models)
            finish_batch(batch, BatchItem=models["BatchItem"], old_status=legacy.old_status)
            if batch.status == "completed":
                batch.started_at = batch.created_at
                batch.save(update_fields=["started_at"])
    except LegacyDocumentError as exc:
        summary.skipped.append(f"{label}: {exc}")
        return
    except Exception as exc:
        # Shapes the rules above did not foresee (a value out of range for its column,
        # nesting deeper than Python recurses, ...): this batch's transaction is rolled
        # back and reported; the others are imported.
        summary.skipped.append(f"{label}: cannot be converted ({_why(exc)})")
        return
    summary.batches += 1
    summary.items += written.items
    summary.interactions += written.interactions
    summary.chats_created += written.chats_created
    summary.chats_reused += written.chats_reused
    summary.notes += legacy.notes + written.notes
    summary.without_owner += owner is None
