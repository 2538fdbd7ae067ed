"""Batch services: creating batch runs, their lifecycle (start, cancel, retry, delete) and
scheduling their slices. The slices themselves are run by batches.engine."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, Max, OuterRef
from django.db.models.functions import Length
from django.utils import timezone
from django.utils.translation import gettext

from batches import economy, runners, signals
from batches.bulk import insert_rows
from batches.engine import outlast_status_reads
from batches.errors import BatchStateError, UploadError
from batches.models import Batch, BatchItem, UploadDraft
from batches.upload_guard import upload_counts
from batches.uploads import (
    PREVIEW_ROWS,
    ColumnChoice,
    ParsedRow,
    ParsedUpload,
    format_size,
    parse_upload,
    too_many_rows,
)
from chats.models import Chat, new_chat_id
from chats.services import ProviderNotConfigured, choose_chat_settings, lock_chats

__all__ = [
    "BatchStateError",
    "cancel_batch",
    "create_batch_run",
    "delete_batch",
    "recover_stalled_batches",
    "retry_failed",
    "stalled_batch_ids",
    "start_batch",
]


def check_mode(*, mode: str, ai_provider: str) -> None:
    """Raise ProviderNotConfigured (field "mode") for an unknown mode, or economy mode
    with a provider that has no batch API."""
    if mode not in Batch.Mode.values:
        raise ProviderNotConfigured(
            gettext("Unknown mode '%(mode)s': choose realtime or economy.") % {"mode": mode},
            field="mode",
        )
    if mode == Batch.Mode.ECONOMY and not economy.supports_batch_api(ai_provider):
        raise ProviderNotConfigured(
            gettext(
                "Economy mode needs a provider with a batch API (OpenAI, Azure OpenAI or "
                "Anthropic); '%(provider)s' has none."
            )
            % {"provider": ai_provider},
            field="mode",
        )


def check_economy_retry(economy_retry: str) -> None:
    """Raise ProviderNotConfigured (field "economy_retry") for an unknown choice."""
    if economy_retry not in Batch.EconomyRetry.values:
        raise ProviderNotConfigured(
            gettext("Unknown retry '%(value)s': choose batch or realtime.")
            % {"value": economy_retry},
            field="economy_retry",
        )


def create_batch_run(
    *,
    uploader,
    name: str,
    rows: Sequence[ParsedRow],
    ai_provider: str | None = "",
    model: str | None = "",
    search_provider: str | None = "",
    page_language: str = "en",
    apply_overrides: bool = False,
    source_filename: str = "",
    judge_enabled: bool = False,
    run_from: Batch | None = None,
    input_columns: list[str] | None = None,
    repeats: int = 1,
    mode: str = Batch.Mode.REALTIME,
    economy_retry: str = Batch.EconomyRetry.BATCH,
) -> Batch:
    """Create a batch with a Chat and a BatchItem per row and repeat, all or nothing.

    `mode` "economy" sends the answer calls to the provider's batch API
    (batches.economy); a provider without one is refused (ProviderNotConfigured on the
    `mode` field). `economy_retry` (economy mode): where a row whose request expired or
    errored is retried, "batch" (a new provider batch) or "realtime".

    1. validate: the providers and model through chats.services.choose_chat_settings
       (one not given is the server's default), `repeats` (1..MAX_REPEATS), at least one
       row, at most MAX_BATCH_ITEMS rows once repeated (questions × repeats);
    2. in one transaction, create the Batch, then the Chats and the BatchItems with
       batches.bulk.insert_rows (COPY on PostgreSQL, executemany on SQLite: no model
       instance per row), reading the new chats' keys back with one query.

    Layout (question-major): each question's `repeats` rows are adjacent (position is a
    running counter; `question_index` is the question's index in `rows`, `repeat` 1..k),
    so the k answers of a question sit together in the pages and the exports. Rows sharing
    a `chat_key` share one Chat per repeat: a conversation answered k times is k separate
    conversations, each with the turns in row order.
    Raises UploadError or ProviderNotConfigured (its `field` names the choice refused);
    nothing is created then.
    """
    chosen = choose_chat_settings(
        ai_provider=ai_provider, model=model, search_provider=search_provider
    )
    check_repeats(repeats)
    check_mode(mode=mode, ai_provider=chosen.ai_provider)
    check_economy_retry(economy_retry)
    if not rows:
        raise UploadError(gettext("The batch has no questions."), code="empty")
    if len(rows) > settings.MAX_BATCH_ITEMS:
        raise too_many_rows(what=gettext("The batch"))
    if len(rows) * repeats > settings.MAX_BATCH_ITEMS:
        raise too_many_repeated_rows(questions=len(rows), repeats=repeats)
    # The file's stem: "questions.csv" makes a batch named "questions".
    name = (name or "").strip() or Path(source_filename).stem.strip() or gettext("Untitled batch")
    chat_fields = {
        "ai_provider": chosen.ai_provider,
        "model": chosen.model,
        "search_provider": chosen.search_provider,
        "page_language": page_language,
        "apply_overrides": apply_overrides,
        "uploader": uploader,
    }
    if input_columns is None:
        input_columns = list(dict.fromkeys(key for row in rows for key in row.columns))
    check_stored_bytes(rows, input_columns, repeats=repeats)
    # The public chat id of every row and repeat; rows sharing a chat_key share one
    # per repeat.
    public_for_key: dict[tuple[str, int], str] = {}
    new_chats: list[str] = []
    row_chats: list[str] = []
    for row in rows:
        for repeat in range(repeats):
            key = (row.chat_key, repeat) if row.chat_key else None
            public = public_for_key.get(key) if key else None
            if public is None:
                public = new_chat_id()
                new_chats.append(public)
                if key:
                    public_for_key[key] = public
            row_chats.append(public)
    guard = upload_counts(rows, language=page_language)
    with transaction.atomic():
        batch = Batch.objects.create(
            name=name[:200],
            total_items=len(rows) * repeats,
            source_filename=source_filename[:255],
            input_columns=input_columns,
            judge_enabled=judge_enabled,
            run_from=run_from,
            repeats=repeats,
            # Rows of the batch: each question's count k times.
            upload_guard={kind: count * repeats for kind, count in guard.items()},
            mode=mode,
            economy_retry=economy_retry,
            **chat_fields,
        )
        # Every chat inserted now gets a key above this one (SQLite: one writer at a
        # time; PostgreSQL: sequence values are never handed out twice).
        before = Chat.objects.aggregate(last=Max("pk"))["last"] or 0
        insert_rows(
            Chat,
            varying=("chat_id",),
            rows=((public,) for public in new_chats),
            constants=chat_fields,
        )
        chat_pk = dict(Chat.objects.filter(pk__gt=before).values_list("chat_id", "pk").iterator())
        insert_rows(
            BatchItem,
            varying=(
                "chat",
                "position",
                "question_index",
                "repeat",
                "question",
                "referring_url",
                "row",
                "expected_answer",
                "expected_citation_url",
                "expected_outcome",
            ),
            rows=_item_rows(rows, row_chats, chat_pk, input_columns, repeats),
            constants={"batch": batch},
        )
        signals.batch_created.send(sender=Batch, batch=batch)
    return batch


def _item_rows(
    rows: Sequence[ParsedRow],
    row_chats: list[str],
    chat_pk: dict[str, int],
    input_columns: list[str],
    repeats: int,
) -> Iterable[tuple]:
    """The BatchItem tuples of create_batch_run, question-major: (chat, position,
    question_index, repeat, question, referring_url, row, expected answer, citation,
    outcome). The stored row is built once per question, not once per repeat."""
    chats = iter(row_chats)
    position = 0
    for index, row in enumerate(rows):
        stored = BatchItem.stored_row(row.columns, input_columns)
        for repeat in range(1, repeats + 1):
            yield (
                chat_pk[next(chats)],
                position,
                index,
                repeat,
                row.question,
                row.referring_url,
                stored,
                row.expected_answer,
                row.expected_citation_url,
                row.expected_outcome,
            )
            position += 1


MAX_REPEATS = 10


def check_repeats(repeats: object) -> int:
    """`repeats` when it is a whole number from 1 to MAX_REPEATS, else UploadError naming
    the field and the range (code "bad_repeats", column "repeats")."""
    if (
        isinstance(repeats, bool)
        or not isinstance(repeats, int)
        or not (1 <= repeats <= MAX_REPEATS)
    ):
        raise UploadError(
            gettext("Repeats must be a whole number from 1 to %(max)s (got %(value)s).")
            % {"max": MAX_REPEATS, "value": repeats},
            code="bad_repeats",
            column="repeats",
        )
    return repeats


def too_many_repeated_rows(*, questions: int, repeats: int) -> UploadError:
    limit = settings.MAX_BATCH_ITEMS
    return UploadError(
        gettext(
            "%(questions)s questions answered %(repeats)s times make %(rows)s rows; the "
            "limit is %(limit)s rows per batch (MAX_BATCH_ITEMS). Ask for fewer repeats or "
            "split the file."
        )
        % {
            "questions": f"{questions:,}",
            "repeats": repeats,
            "rows": f"{questions * repeats:,}",
            "limit": f"{limit:,}",
        },
        code="too_many_rows",
        column="repeats",
    )


def check_stored_bytes(rows: Sequence[ParsedRow], headers: list[str], *, repeats: int = 1) -> None:
    """Refuse rows whose cells and headers would store more than MAX_BATCH_STORED_BYTES
    (UTF-8), naming the limit. Headers count once: rows hold values by position; each
    question's cells are stored once per repeat."""
    limit = settings.MAX_BATCH_STORED_BYTES
    total = sum(len(header.encode()) for header in headers)
    for row in rows:
        for value in row.columns.values():
            size = len(value.encode()) if isinstance(value, str) else len(str(value))
            total += size * repeats
        if total > limit:
            raise UploadError(
                gettext(
                    "The batch's cells and headers would take more than %(limit)s to store; "
                    "the limit is %(limit)s per batch (MAX_BATCH_STORED_BYTES). Split the "
                    "file or drop columns you do not need."
                )
                % {"limit": format_size(limit)},
                code="too_much_data",
            )


def run_again(
    *,
    batch: Batch,
    uploader,
    ai_provider: str | None = None,
    model: str | None = None,
    search_provider: str | None = None,
    page_language: str | None = None,
    apply_overrides: bool | None = None,
    judge_enabled: bool | None = None,
    repeats: int | None = None,
    mode: str | None = None,
    economy_retry: str | None = None,
    name: str = "",
    start: bool = False,
) -> Batch:
    """A new batch with the same rows as `batch` (questions, URLs, conversations, every
    uploaded column and the expected answer, citation and outcome) and other settings; it
    remembers `run_from=batch`, so compare aligns the two by row number. Started at once
    when `start` ("Run again and start").

    A setting left None is the batch's own (repeats too), except the model of another AI
    provider: that provider's default. Rows that shared a chat share one again. The
    questions are the source's first repeats (one row per question, whatever its
    repeats). Raises ProviderNotConfigured or UploadError like create_batch_run; nothing
    is created then.
    """
    if model is None:
        model = batch.model if ai_provider in (None, batch.ai_provider) else ""
    headers = batch.input_columns
    rows = [
        ParsedRow(
            question=item.question,
            referring_url=item.referring_url,
            # Every row gets its source chat as key: conversations stay together, in order.
            chat_key=str(item.chat_id),
            columns=item.columns(headers),
            expected_answer=item.expected_answer,
            expected_citation_url=item.expected_citation_url,
            expected_outcome=item.expected_outcome,
        )
        for item in (batch.items.filter(repeat=1) if batch.repeats > 1 else batch.items)
        .order_by("position")
        .only(
            "question",
            "referring_url",
            "chat_id",
            "row",
            "expected_answer",
            "expected_citation_url",
            "expected_outcome",
        )
    ]
    with transaction.atomic():
        new = create_batch_run(
            uploader=uploader,
            name=(name or "").strip() or f"{batch.name} (again)"[:200],
            rows=rows,
            ai_provider=ai_provider or batch.ai_provider,
            model=model,
            search_provider=search_provider or batch.search_provider,
            page_language=page_language or batch.page_language,
            apply_overrides=batch.apply_overrides if apply_overrides is None else apply_overrides,
            source_filename=batch.source_filename,
            judge_enabled=batch.judge_enabled if judge_enabled is None else judge_enabled,
            run_from=batch,
            input_columns=list(headers) or None,
            repeats=batch.repeats if repeats is None else repeats,
            mode=mode or batch.mode,
            economy_retry=economy_retry or batch.economy_retry,
        )
    if start:
        start_batch(batch=new)
    return new


def save_upload_draft(
    *, owner, filename: str, data: bytes, parsed_preview: ParsedUpload | None = None
) -> UploadDraft:
    """Keep an uploaded file for the column chooser (step 2 of the upload). Expired
    drafts, anyone's, are deleted on the way, and so are this user's oldest drafts past
    the quota (UPLOAD_DRAFTS_PER_USER drafts, UPLOAD_DRAFT_BYTES_PER_USER bytes, the new
    one included): what one user keeps on the server stays bounded."""
    delete_expired_drafts()
    preview = draft_preview(data=data, filename=filename, parsed=parsed_preview)
    with transaction.atomic():
        draft = UploadDraft.objects.create(
            owner=owner, filename=filename[:255], data=data, preview=preview
        )
        byte_total = 0
        newest_first = (
            UploadDraft.objects.filter(owner=owner)
            .annotate(size=Length("data"))
            .order_by("-created_at", "-pk")
            .values_list("pk", "size")
        )
        over = []
        for kept, (pk, size) in enumerate(newest_first, start=1):
            byte_total += size or 0
            if pk != draft.pk and (
                kept > settings.UPLOAD_DRAFTS_PER_USER
                or byte_total > settings.UPLOAD_DRAFT_BYTES_PER_USER
            ):
                over.append(pk)
        if over:
            UploadDraft.objects.filter(pk__in=over).delete()
    return draft


PREVIEW_CELL_CHARS = 80  # a preview cell is cut to this: the chooser page stays small


def draft_preview(*, data: bytes, filename: str, parsed: ParsedUpload | None = None) -> dict:
    """The column chooser's preview of a file, parsed once and kept on its draft: the
    headers, roles and format, and the first rows' cells cut to PREVIEW_CELL_CHARS; or
    {"error": message} when the file is refused. `parsed`: the preview already read."""
    if parsed is None:
        try:
            parsed = parse_upload(data=data, filename=filename, preview=PREVIEW_ROWS)
        except UploadError as error:
            return {"error": error.message}
    return {
        "columns": parsed.columns,
        "roles": parsed.roles,
        "format": parsed.format,
        "rows": [[cell[:PREVIEW_CELL_CHARS] for cell in cells] for cells in parsed.preview_rows],
    }


def upload_draft_preview(*, draft: UploadDraft) -> dict:
    """The draft's kept preview (parsed now and kept for drafts saved without one)."""
    if not draft.preview:
        draft.preview = draft_preview(data=bytes(draft.data), filename=draft.filename)
        UploadDraft.objects.filter(pk=draft.pk).update(preview=draft.preview)
    return draft.preview


def delete_expired_drafts() -> int:
    """Delete every draft older than DRAFT_MAX_AGE (the worker and Celery beat call this,
    as does each new draft); returns how many went."""
    deleted, _by_model = UploadDraft.objects.expired().delete()
    return deleted


def create_batch_from_draft(*, draft: UploadDraft, columns: ColumnChoice, **fields) -> Batch:
    """Parse the kept file with the chosen columns, create the batch (create_batch_run's
    keyword arguments in `fields`), delete the draft. Raises UploadError or
    ProviderNotConfigured; the draft is kept then, for another try."""
    parsed = parse_upload(data=bytes(draft.data), filename=draft.filename, columns=columns)
    with transaction.atomic():
        batch = create_batch_run(rows=parsed.rows, source_filename=draft.filename, **fields)
        draft.delete()
    return batch


# --- Lifecycle ---------------------------------------------------------------------------
#
# The engine (claims, leases, slices, grouped writes) is in batches.engine; these services
# move a batch between states and hand it to the configured runner (batches.runners).

logger = logging.getLogger(__name__)


def start_batch(*, batch: Batch) -> Batch:
    """Queue the batch: uploaded, cancelled (resume) or failed (after a fix) -> queued.

    Cancelled rows go back to pending. The configured runner is told (batches.runners:
    with Celery, slice tasks are enqueued on commit; inline, a worker or the page drives
    process_for_duration). Starting an active batch enqueues again only when nobody holds
    a lease on it (its tasks were lost), so repeated clicks do not pile up slice chains.
    """
    with transaction.atomic():
        batch = Batch.objects.select_for_update().get(pk=batch.pk)
        if batch.budget_reached:
            raise BatchStateError(
                gettext("This batch is paused: budget reached. Raise its budget to resume it.")
            )
        if not batch.can_start:
            raise BatchStateError(
                gettext("This batch is completed; retry its failed rows instead.")
            )
        if not batch.is_active:
            batch.items.resume_cancelled()
            batch.mark_queued()
            runners.schedule(batch.pk)
        elif batch.pk in stalled_batch_ids(idle_seconds=0):
            runners.schedule(batch.pk)
    return batch


def cancel_batch(*, batch: Batch) -> Batch:
    """Pending rows become cancelled; rows in flight finish and are recorded.

    Workers start a provider call only on a recent status read (see batches.engine), and
    this returns once every such read started after the commit: from then on no new call
    starts.
    """
    with transaction.atomic():
        transaction.on_commit(outlast_status_reads)
        batch = Batch.objects.select_for_update().get(pk=batch.pk)
        if batch.status not in (*Batch.ACTIVE_STATUSES, Batch.Status.UPLOADED, Batch.Status.PAUSED):
            raise BatchStateError(
                gettext("A batch that is %(status)s cannot be cancelled.")
                % {"status": batch.get_status_display().lower()}
            )
        batch.items.cancel_pending()
        # Economy mode: the provider batches are cancelled by the poller, which keeps
        # what came back (batches.economy).
        economy.request_cancel(batch)
        batch.mark_cancelled()
        batch.recount()
    return batch


def retry_failed(*, batch: Batch) -> Batch:
    """Failed and cancelled rows back to pending; the batch back to queued."""
    with transaction.atomic():
        batch = Batch.objects.select_for_update().get(pk=batch.pk)
        retried = batch.items.retry()
        if not retried and batch.status != Batch.Status.FAILED:
            raise BatchStateError(gettext("This batch has no failed or cancelled rows to retry."))
        batch.mark_queued()
        batch.recount()
        runners.schedule(batch.pk)
    return batch


def retry_items(*, batch: Batch, item_ids: Iterable[int]) -> int:
    """Chosen failed or cancelled rows back to pending; a finished batch back to queued.

    1. the rows must belong to `batch` and be failed or cancelled (others are ignored:
       a done row keeps its answer; a pending or running one is already on its way);
    2. a multi-turn chat is retried whole: every failed or cancelled turn of the chosen
       rows' chats comes back too, so the turns run again in order with their history;
    3. a finished batch (completed, cancelled, failed) is queued again and, with Celery,
       its slices enqueued; an active batch simply picks the rows up.
    Returns how many rows were queued; raises BatchStateError when none could be.
    """
    wanted = {int(pk) for pk in item_ids}
    with transaction.atomic():
        batch = Batch.objects.select_for_update().get(pk=batch.pk)
        chat_ids = batch.items.retryable().filter(pk__in=wanted).values("chat_id")
        retried = batch.items.filter(chat_id__in=chat_ids).retry()
        if not retried:
            raise BatchStateError(gettext("None of the chosen rows failed or was cancelled."))
        if not batch.is_active:
            batch.mark_queued()
            runners.schedule(batch.pk)
        batch.recount()
    return retried


def delete_batch(*, batch: Batch) -> None:
    """Delete the batch, its items and its chats (a batch's chats belong to it alone).

    Rows may be finishing while this runs. Their writers lock the chats, then the rows,
    then the batch (see batches.engine.writer.Writer.write_group); locking in
    the same order here means such a row either commits first (and is deleted with the
    rest) or finds its row gone and drops its result: no deadlock, no orphan.
    """
    with transaction.atomic():
        chat_ids = set(batch.items.values_list("chat_id", flat=True))
        shared = set(
            BatchItem.objects.filter(chat_id__in=chat_ids)
            .exclude(batch_id=batch.pk)
            .values_list("chat_id", flat=True)
        )
        own_chats = Chat.objects.filter(pk__in=chat_ids - shared)
        lock_chats(chat_ids - shared)
        list(batch.items.select_for_update().order_by("pk").values_list("pk", flat=True))
        list(Batch.objects.select_for_update().filter(pk=batch.pk).values_list("pk", flat=True))
        own_chats.delete()
        Batch.objects.filter(pk=batch.pk).delete()


def stalled_batch_ids(*, idle_seconds: float) -> list[int]:
    """Active batches that nobody holds a live lease on and that have not moved for
    `idle_seconds`: all workers restarted, their tasks were lost, or a runner died between
    recording the last row and completing the batch (a slice completes it)."""
    now = timezone.now()
    live_lease = BatchItem.objects.live_leases(now).filter(batch_id=OuterRef("pk"))
    return list(
        Batch.objects.active()
        .filter(updated_at__lte=now - timedelta(seconds=idle_seconds))
        .exclude(Exists(live_lease))
        .values_list("pk", flat=True)
    )


def recover_stalled_batches(*, idle_seconds: float) -> list[int]:
    """Re-enqueue slices for stalled batches (the Celery beat task calls this)."""
    batch_ids = stalled_batch_ids(idle_seconds=idle_seconds)
    for batch_id in batch_ids:
        Batch.objects.filter(pk=batch_id).update(updated_at=timezone.now())
        runners.schedule(batch_id)
    return batch_ids
