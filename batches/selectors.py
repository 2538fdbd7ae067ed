"""Reads shared by the API, the pages and the admin; a fixed number of queries each."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Value,
    When,
)
from django.utils import timezone
from django.utils.translation import gettext_noop

from batches import hooks
from batches.models import Batch, BatchItem, Verdict, WorkerHeartbeat
from chats.models import GuardStatus
from chats.services import counts_words, not_found_q, price_for

# Guard outcomes shown (counted and filtered) on the batch page and in the API.
GUARD_FILTERS = (GuardStatus.BLOCKED, GuardStatus.REDACTED)
# Done rows the guard answered with its fixed message (no search, no AI call).
BLOCKED = Q(status=BatchItem.Status.DONE, interaction__guard_status=GuardStatus.BLOCKED)
# Rows a grader says are wrong.
FAILING = Q(verdict=Verdict.FAIL)
# The rows table's grade filters: "failing_first" keeps every row, failing ones first
# (then the least similar answers); the others keep only the rows they name.
GRADE_FILTERS = ("failing_first", "failing", "passing", "ungraded")


def live_workers() -> QuerySet[WorkerHeartbeat]:
    """`run_worker` processes whose heartbeat is younger than WORKER_HEARTBEAT_TIMEOUT."""
    cutoff = timezone.now() - timedelta(seconds=settings.WORKER_HEARTBEAT_TIMEOUT)
    return WorkerHeartbeat.objects.filter(last_seen__gte=cutoff)


def worker_alive() -> bool:
    """Whether a `run_worker` is alive: then the pages leave the batches to it."""
    return live_workers().exists()


def with_activity(queryset: QuerySet[Batch]) -> QuerySet[Batch]:
    """Annotate what `Batch.activity` needs, inside the same query (no query per batch)."""
    live_lease = BatchItem.objects.live_leases().filter(batch_id=OuterRef("pk"))
    return queryset.annotate(worker_alive=Exists(live_workers()), has_live_lease=Exists(live_lease))


def batches_for(user, *, shared: bool = True) -> QuerySet[Batch]:
    """The batches `user` may see: their own, and (with `shared`) those shared with them
    as reviewer (batches.hooks.shared_with); staff see all (see may_act_on for actions),
    with their activity. `shared=False` is for what a reviewer may not do although it
    does not change the batch (run it again as one's own)."""
    return with_activity(_visible_to(user, shared=shared).select_related("uploader"))


def batch_for(user, pk, *, shared: bool = True) -> Batch | None:
    """Batch `pk`, as `batches_for(user, shared=shared)` would give it, or None when the
    user may not see it. Read by its primary key alone; the sharing rules are asked (one
    EXISTS query more) only of a batch that is neither the user's own nor read by staff.
    The rules OR'ed into the one query cost about 3 ms of CPU to build at every request
    and poll of a batch page, and their planning about 2 ms more."""
    batch = with_activity(Batch.objects.select_related("uploader")).filter(pk=pk).first()
    if batch is None or user.is_staff or batch.uploader_id == user.pk:
        return batch
    others = hooks.shared_with(user) if shared else None
    if others is not None and Batch.objects.filter(pk=batch.pk).filter(others).exists():
        return batch
    return None


def _visible_to(user, *, shared: bool = True) -> QuerySet[Batch]:
    """`batches_for` without the activity (lists that do not show it)."""
    if user.is_staff:
        return Batch.objects.all()
    condition = Q(uploader=user)
    if shared:
        others = hooks.shared_with(user)
        if others is not None:
            condition |= others
    return Batch.objects.filter(condition)


# How far up "Run again" chains are followed to find a common source.
MAX_LINEAGE = 50


def run_from_chain(batch: Batch) -> list[int]:
    """The batch id and the ids it was run from, nearest first (one query per step)."""
    ids = [batch.pk]
    parent = batch.run_from_id
    while parent is not None and parent not in ids and len(ids) < MAX_LINEAGE:
        ids.append(parent)
        parent = Batch.objects.filter(pk=parent).values_list("run_from_id", flat=True).first()
    return ids


def compare_choices(*, user, batch: Batch, limit: int) -> tuple[list[Batch], list[Batch]]:
    """The batches `user` may compare `batch` with, at most `limit`: runs of the same
    questions first (up `batch`'s "Run again" chain, and those run again from any of
    them), then the others. One query, plus one per step up the chain (the visibility
    rules are costly to build: built once, not for two queries)."""
    lineage = run_from_chain(batch)
    # 0 for a run of the same questions; a NULL run_from_id matches no When (so 1).
    rank = Case(
        When(Q(pk__in=lineage) | Q(run_from_id__in=lineage), then=Value(0)),
        default=Value(1),
        output_field=IntegerField(),
    )
    candidates = (
        _visible_to(user)
        .exclude(pk=batch.pk)
        .only("pk", "name", "created_at", "run_from_id", "uploader")
        .annotate(unrelated=rank)
        .order_by("unrelated", *Batch._meta.ordering)
    )
    chosen = list(candidates[:limit])
    related = [other for other in chosen if not other.unrelated]
    return related, [other for other in chosen if other.unrelated]


# What a reader who may not act (see may_act_on) is told: the pages translate it, the API
# answers in English like its other messages.
STAFF_READ_ONLY = gettext_noop(
    "Staff may read every batch, but only its owner (or a superuser) may start, process, "
    "cancel, retry or delete it."
)


def may_act_on(user, batch: Batch) -> bool:
    """The one rule for actions (start, resume, process, cancel, retry, delete), used by the
    pages, the API and the templates: the batch's owner, or a superuser. Other staff may
    read every batch (support, audits) but change none that is not theirs, as in the
    admin, where they hold no change permission."""
    if user.is_superuser:
        return True
    return batch.uploader_id is not None and batch.uploader_id == user.pk


# Sorts of the rows table: key -> ordering. "status" puts what needs attention first.
ROW_SORTS = ("position", "latency", "-latency", "status")
_STATUS_RANK = Case(
    When(status=BatchItem.Status.FAILED, then=Value(0)),
    When(status=BatchItem.Status.CANCELLED, then=Value(1)),
    When(status=BatchItem.Status.RUNNING, then=Value(2)),
    When(status=BatchItem.Status.PENDING, then=Value(3)),
    default=Value(4),
)
NOT_FOUND = "not_found"  # the rows filter of done rows whose answer found nothing


def batch_items(
    batch: Batch,
    *,
    status: str | None = None,
    guard: str | None = None,
    grade: str | None = None,
    query: str = "",
    sort: str = "position",
) -> QuerySet[BatchItem]:
    """A batch's rows with their chat and answer: optionally of one status (or NOT_FOUND)
    and/or one guard outcome (`blocked`, `redacted`) and/or one of GRADE_FILTERS,
    containing `query` in the question, answer or error, in one of ROW_SORTS (the grade
    filters "failing_first" and "failing" order failing rows first instead)."""
    queryset = batch.items.select_related("chat", "interaction", "interaction__reviewed_by")
    if status == NOT_FOUND:
        queryset = queryset.filter(not_found_items(batch))
    elif status:
        queryset = queryset.filter(status=status)
    if guard:
        queryset = queryset.filter(interaction__guard_status=guard)
    if grade == "failing":
        queryset = queryset.filter(FAILING)
    elif grade == "passing":
        queryset = queryset.filter(verdict=Verdict.PASS)
    elif grade == "ungraded":
        queryset = queryset.exclude(verdict__in=(Verdict.PASS, Verdict.FAIL))
    query = query.strip()
    if query:
        queryset = queryset.filter(
            Q(question__icontains=query)
            | Q(interaction__answer__icontains=query)
            | Q(error__icontains=query)
        )
    if grade in ("failing_first", "failing"):
        return queryset.annotate(
            failing=Case(
                When(FAILING, then=Value(0)), default=Value(1), output_field=IntegerField()
            )
        ).order_by("failing", F("answer_similarity").asc(nulls_last=True), "position")
    if sort == "latency":
        return queryset.order_by(F("interaction__latency_ms").asc(nulls_last=True), "position")
    if sort == "-latency":
        return queryset.order_by(F("interaction__latency_ms").desc(nulls_last=True), "position")
    if sort == "status":
        return queryset.order_by(_STATUS_RANK, "position")
    return queryset.order_by("position")


def guard_counts_for(batch_ids: list[int]) -> dict[int, dict[str, int]]:
    """Rows per guard outcome (blocked, redacted) of each batch, in one query; every
    batch and outcome present (0 when none)."""
    counts = {batch_id: dict.fromkeys(GUARD_FILTERS, 0) for batch_id in batch_ids}
    if not batch_ids:
        return counts
    rows = (
        BatchItem.objects.filter(
            batch_id__in=batch_ids, interaction__guard_status__in=GUARD_FILTERS
        )
        .order_by()
        .values_list("batch_id", "interaction__guard_status")
        .annotate(n=Count("id"))
    )
    for batch_id, outcome, n in rows:
        counts[batch_id][outcome] = n
    return counts


def guard_counts(batch: Batch) -> dict[str, int]:
    """Rows of `batch` per guard outcome (blocked, redacted), in one query."""
    return guard_counts_for([batch.pk])[batch.pk]


def item_status_counts(batch: Batch) -> dict[str, int]:
    """Rows of `batch` per status, every status present (0 when none), plus NOT_FOUND
    (done rows whose answer found nothing: the batch's counter), in one query over the
    (batch, status) index."""
    rows = batch.items.order_by().values_list("status").annotate(n=Count("id"))
    counts = dict.fromkeys(BatchItem.Status.values, 0) | dict(rows)
    counts[NOT_FOUND] = batch.not_found_items
    return counts


def not_found_items(batch: Batch) -> Q:
    """The filter of `batch`'s done rows whose answer says nothing was found."""
    return Q(status=BatchItem.Status.DONE) & not_found_q("interaction__answer", batch.page_language)


# Rows per second are measured over the last minute: fast enough to follow a change of
# pace, long enough not to jump with every slice.
RATE_WINDOW_SECONDS = 60


@dataclass(frozen=True)
class BatchStats:
    """Derived figures of one batch, from stored fields (see `batch_stats`)."""

    input_tokens: int
    output_tokens: int
    counts_words: bool  # the provider's "tokens" are word counts (extractive)
    not_found: int
    elapsed_seconds: int | None  # since the start, while running
    duration_seconds: int | None  # start to end, once finished
    rows_per_second: float | None
    remaining_seconds: int | None
    estimated_cost: float | None
    currency: str
    paused: bool = False  # the provider does not answer: no time remaining is given


def _price_for(batch: Batch) -> tuple[float, float] | None:
    """(input, output) per million tokens (chats.providers.prices: the admin's, AI_PRICES,
    the shipped table), at the batch API's price for an economy batch; None when the
    model has no price."""
    price = price_for(batch.ai_provider, batch.model)
    if price is None:
        return None
    paid = 1 - price.batch_discount if batch.is_economy else 1
    return price.input * paid, price.output * paid


def batch_stats(batch: Batch, *, now=None) -> BatchStats:
    """Tokens, not-found answers, pace and time of a batch: from its counters, and the
    pace in one query (over the (batch, finished_at) index) while it is active.

    Elapsed time runs from `started_at` (the first start; a resumed batch counts its
    pause too); the duration is `finished_at - started_at`. Rows per second are the rows
    finished in the last RATE_WINDOW_SECONDS (or since the start, when shorter), and the
    time remaining is the rows left at that pace (none while an outage pauses the batch). The
    estimated cost uses the batch's price (chats.providers.prices), when known.
    Also sets `batch.not_found_items`.
    """
    now = now or timezone.now()
    input_tokens, output_tokens = batch.input_tokens, batch.output_tokens
    elapsed = duration = rate = remaining = None
    if batch.started_at and batch.is_active:
        elapsed = max(int((now - batch.started_at).total_seconds()), 0)
        span = min(max((now - batch.started_at).total_seconds(), 1.0), RATE_WINDOW_SECONDS)
        window_start = now - timedelta(seconds=RATE_WINDOW_SECONDS)
        recent = batch.items.filter(finished_at__gte=window_start).count()
        if recent:
            rate = recent / span
            remaining = int(round(batch.remaining / rate))
        if batch.outage is not None:
            rate = remaining = None  # paused by an outage: the pace says nothing
    elif batch.started_at and batch.finished_at:
        duration = max(int((batch.finished_at - batch.started_at).total_seconds()), 0)
    words = counts_words(batch.ai_provider)
    cost = None
    price = None if words else _price_for(batch)
    if price is not None:
        cost = (input_tokens * price[0] + output_tokens * price[1]) / 1_000_000
    return BatchStats(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        counts_words=words,
        not_found=batch.not_found_items,
        elapsed_seconds=elapsed,
        duration_seconds=duration,
        rows_per_second=rate,
        remaining_seconds=remaining,
        estimated_cost=cost,
        currency=settings.AI_PRICE_CURRENCY,
        paused=batch.outage is not None,
    )
