"""The batch engine: creating batch runs and processing them in resumable slices."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import islice

from django.conf import settings
from django.db import transaction

from batches.ingest import ParsedRow, UploadError
from batches.models import Batch, BatchItem
from chats.models import Chat
from chats.services import check_chat_settings

CREATE_CHUNK = 1000


def _chunks(rows: Iterable, size: int):
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


def create_batch_run(
    *,
    uploader,
    name: str,
    rows: Sequence[ParsedRow],
    ai_provider: str,
    model: str = "",
    search_provider: str,
    page_language: str = "en",
    apply_overrides: bool = False,
    source_filename: str = "",
) -> Batch:
    """Create a batch with a Chat and a BatchItem per row, all or nothing.

    1. validate: at least one row, at most MAX_BATCH_ITEMS, providers configured;
    2. in one transaction, create the Batch, then Chats and BatchItems with bulk_create
       in chunks (rows sharing a `chat_key` share one Chat, in row order).
    Raises UploadError or ProviderNotConfigured; nothing is created then.
    """
    if not rows:
        raise UploadError("The batch has no questions.", code="empty")
    limit = settings.MAX_BATCH_ITEMS
    if len(rows) > limit:
        raise UploadError(
            f"The batch has {len(rows):,} questions; the limit is {limit:,}.", code="too_many_rows"
        )
    model = check_chat_settings(
        ai_provider=ai_provider, model=model, search_provider=search_provider
    )
    name = (name or "").strip() or source_filename or "Untitled batch"
    chat_fields = {
        "ai_provider": ai_provider,
        "model": model,
        "search_provider": search_provider,
        "page_language": page_language,
        "apply_overrides": apply_overrides,
        "uploader": uploader,
    }
    with transaction.atomic():
        batch = Batch.objects.create(
            name=name[:200],
            total_items=len(rows),
            source_filename=source_filename[:255],
            **chat_fields,
        )
        chat_for_key: dict[str, Chat] = {}
        for offset, chunk in enumerate(_chunks(rows, CREATE_CHUNK)):
            new_chats: list[Chat] = []
            row_chats: list[Chat] = []
            for row in chunk:
                chat = chat_for_key.get(row.chat_key) if row.chat_key else None
                if chat is None:
                    chat = Chat(**chat_fields)
                    new_chats.append(chat)
                    if row.chat_key:
                        chat_for_key[row.chat_key] = chat
                row_chats.append(chat)
            Chat.objects.bulk_create(new_chats)
            start = offset * CREATE_CHUNK
            BatchItem.objects.bulk_create(
                BatchItem(
                    batch=batch,
                    chat=chat,
                    position=start + index,
                    question=row.question,
                    referring_url=row.referring_url,
                    row=row.columns,
                )
                for index, (row, chat) in enumerate(zip(chunk, row_chats, strict=True))
            )
    return batch


# --- Engine ----------------------------------------------------------------------------
# Signatures are the contract for the API and the pages; bodies land with issue 4.


class BatchStateError(Exception):
    """The batch is in a state that does not allow this action (HTTP 409)."""


@dataclass(frozen=True)
class SliceResult:
    """What one call of process_for_duration did, and where the batch stands after it."""

    batch_id: int
    status: str
    done: int  # rows that finished done during this slice
    failed: int  # rows that finished failed during this slice
    remaining: int  # rows of the batch not finished (pending, running, cancelled)


def runner_mode() -> str:
    """'celery' when a broker is configured, else 'inline' (the caller drives slices)."""
    return "celery" if settings.CELERY_BROKER_URL else "inline"


def start_batch(*, batch: Batch) -> Batch:
    """Queue the batch (uploaded or cancelled -> queued); with Celery, enqueue slices."""
    raise NotImplementedError


def process_for_duration(
    *, batch_id: int, seconds: float, concurrency: int | None = None
) -> SliceResult:
    """Process rows for about `seconds`; safe to call from many places at once."""
    raise NotImplementedError


def cancel_batch(*, batch: Batch) -> Batch:
    """Pending rows become cancelled; rows in flight finish and are recorded."""
    raise NotImplementedError


def retry_failed(*, batch: Batch) -> Batch:
    """Failed and cancelled rows back to pending; the batch back to queued."""
    raise NotImplementedError


def delete_batch(*, batch: Batch) -> None:
    """Delete the batch, its items and the chats that belong only to it."""
    raise NotImplementedError
