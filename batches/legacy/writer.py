"""Writing LegacyRows: Chats (within the batch's owner), Interactions and BatchItems, then
the batch's counters and status. Takes the model classes it writes, so the 0003
migration can pass historical models."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from batches.legacy.rows import LegacyRow
from batches.legacy.values import text

FINISHED = ("done", "failed")


CHUNK = 500


@dataclass
class WriteResult:
    items: int = 0
    interactions: int = 0
    chats_created: int = 0
    chats_reused: int = 0
    notes: list[str] = field(default_factory=list)


def _create_keeping_dates(model: type, objects: list) -> None:
    """Bulk-create `objects` with the `created_at` each was given (the old application's
    dates): auto_now_add overwrites it on insert, so it is written back after."""
    wanted = [obj.created_at for obj in objects]
    for chunk in _chunks(objects):
        model.objects.bulk_create(chunk)
    for obj, when in zip(objects, wanted, strict=True):
        obj.created_at = when
    for chunk in _chunks(objects):
        model.objects.bulk_update(chunk, ["created_at"])


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
    _create_keeping_dates(Chat, new_chats)
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
    _create_keeping_dates(Interaction, new_turns)
    result.interactions = len(new_turns)

    # 3. items
    finished_at = getattr(batch, "updated_at", None) or batch.created_at
    # A legacy row answers its own question (no repeats). The schema migrations that
    # convert era 1 run this writer on models from before question_index existed.
    has_index = any(f.name == "question_index" for f in BatchItem._meta.get_fields())
    items = [
        BatchItem(
            batch=batch,
            chat=chat,
            position=positions[index] if positions is not None else number,
            **(
                {"question_index": positions[index] if positions is not None else number}
                if has_index
                else {}
            ),
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
