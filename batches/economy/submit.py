"""Economy mode, sending: rows claimed, prepared locally (guard, search, prompt) and
submitted to the provider's batch API, each submission recorded before the provider call.

1. a ProviderBatch is created (status preparing, a fresh local id) and the next eligible
   rows are claimed for it with the engine's own claim (for a multi-turn chat only its
   earliest unfinished turn: later turns go in later waves), with the usual short lease;
2. each row goes through the pipeline's `prepare_answer` on the provider loop: a blocked
   row is answered at once, a row whose search failed fails (or rests), as in real time;
3. in one transaction: the requests (custom_id = row and attempt, the body, the fields
   known before the call) are stored, the rows' lease made long (ECONOMY_LEASE_SECONDS),
   and the ProviderBatch moves to submitting; rows past the provider's byte limit go back;
4. the provider is called (`submit`) with the local id; its id is saved (submitted).
   A worker that dies between 3 and 4 leaves a submitting ProviderBatch: `recover` asks
   the provider for a batch carrying its local id before sending it again.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from batches import hooks
from batches.costs import answer_cost, batch_price
from batches.economy.store import fail_provider_batch, store_results, write_outcomes
from batches.engine.claims import Claimed, Claims
from batches.engine.writer import Outcome
from batches.models import BatchItem, ProviderBatch, ProviderRequest
from chats.services import (
    BatchAPI,
    Prepared,
    ProviderError,
    ProviderNotConfigured,
    TransientProviderError,
    complete_answer,
    prepare_answer,
    run_on_provider_loop,
)

logger = logging.getLogger("batches.economy")

PREPARE_CONCURRENCY = 16  # rows prepared at once (search calls in flight)


def submit_next(*, batch, api: BatchAPI, multi_turn: bool) -> tuple[int, int, int]:
    """Claim, prepare and submit one provider batch of the batch's eligible rows.
    Returns (requests submitted, rows done, rows failed); (0, 0, 0) when no row was
    eligible. Raises ProviderNotConfigured (a batch-level fault)."""
    pb = ProviderBatch(
        batch=batch, provider=batch.ai_provider, model=batch.model, local_id=uuid.uuid4().hex
    )
    claims = Claims(
        batch_id=batch.pk,
        owner=pb.lease_owner,
        db=None,  # claim() runs here, in this thread
        multi_turn=multi_turn,
        concurrency=1,
        on_fault=lambda: None,
        realtime_retry=False,  # rows retried in real time never go in a provider batch
    )
    claims.size = api.request_limit()
    if not claims.candidate_ids(timezone.now(), 1):
        return 0, 0, 0  # nothing eligible: no record made
    pb.save()  # recorded before any row is claimed for it (recover finds it)
    claimed = claims.claim(whole=True)
    if not claimed:
        pb.delete()
        return 0, 0, 0
    prepared = run_on_provider_loop(_prepare_all(claimed, owner=pb.lease_owner))
    outcomes: list[Outcome] = []
    to_send: list[tuple[Claimed, Prepared]] = []
    fatal = None
    for one, result in zip(claimed, prepared, strict=True):
        outcome = _outcome_before_call(one.item, result)
        if isinstance(result, ProviderNotConfigured):
            fatal = result
        if outcome is not None:
            outcomes.append(outcome)
        else:
            to_send.append((one, result))
    done, failed = write_outcomes(batch_id=batch.pk, owner=pb.lease_owner, outcomes=outcomes)
    if fatal is not None:
        _give_back(pb, [one for one, _p in to_send])
        pb.delete()
        raise fatal
    sent = _record(pb, api, to_send) if to_send else 0
    if not sent:
        pb.delete()
        return 0, done, failed
    send(pb, api)
    return sent, done, failed


async def _prepare_all(claimed: list[Claimed], *, owner: str) -> list[Prepared | Exception]:
    """Every claimed row through `prepare_answer`, many at once (the search calls are
    I/O); the rows' short lease is renewed meanwhile, so that a long preparation (a web
    search for thousands of rows) does not let another runner take them over."""
    slots = asyncio.Semaphore(max(PREPARE_CONCURRENCY, int(settings.BATCH_CONCURRENCY)))

    async def one(turn) -> Prepared | Exception:
        async with slots:
            try:
                return await prepare_answer(turn)
            except Exception as exc:  # each row's own outcome, never the submission's
                return exc

    heartbeat = asyncio.create_task(_keep_leases(owner))
    try:
        return list(await asyncio.gather(*(one(c.turn) for c in claimed)))
    finally:
        heartbeat.cancel()


async def _keep_leases(owner: str) -> None:
    lease = float(settings.BATCH_LEASE_SECONDS)
    while True:
        await asyncio.sleep(max(lease / 3, 0.5))
        # The provider loop must not block on the database: a thread of its own.
        await asyncio.to_thread(_renew, owner, lease)


def _renew(owner: str, seconds: float) -> None:
    try:
        BatchItem.objects.renew_leases(
            owner=owner, until=timezone.now() + timedelta(seconds=seconds)
        )
    finally:
        connection.close()


def _outcome_before_call(item: BatchItem, result: Prepared | Exception) -> Outcome | None:
    """What becomes of a row before any provider batch: None when it is to be sent."""
    if isinstance(result, Prepared):
        if result.answer is not None:  # blocked: answered with no AI call
            return Outcome(item, BatchItem.Status.DONE, answer=result.answer)
        return None
    if isinstance(result, ProviderNotConfigured):
        return Outcome(item, BatchItem.Status.PENDING, given_back=True)
    if isinstance(result, TransientProviderError):
        if item.attempts < settings.BATCH_ROW_MAX_ATTEMPTS:
            wait = result.retry_after or settings.PROVIDER_BACKOFF_BASE * 2**item.attempts
            rest = timezone.now() + timedelta(seconds=min(wait, settings.PROVIDER_BACKOFF_MAX))
            return Outcome(item, BatchItem.Status.PENDING, error=str(result), rest_until=rest)
        return Outcome(item, BatchItem.Status.FAILED, error=str(result))
    if isinstance(result, ProviderError):
        return Outcome(item, BatchItem.Status.FAILED, error=str(result))
    logger.error("Unexpected error preparing batch item %s: %r", item.pk, result)
    return Outcome(
        item,
        BatchItem.Status.FAILED,
        error=f"Unexpected error: {type(result).__name__}: {result}",
    )


def _give_back(pb: ProviderBatch, claimed: list[Claimed]) -> None:
    ids = [one.item.pk for one in claimed]
    BatchItem.objects.filter(
        pk__in=ids, lease_owner=pb.lease_owner, status=BatchItem.Status.RUNNING
    ).release()


def _record(pb: ProviderBatch, api: BatchAPI, to_send: list[tuple[Claimed, Prepared]]) -> int:
    """Store the requests and make the rows' lease long, in one transaction; rows past the
    provider's byte limit, or whose lease we lost meanwhile, are left out (given back).
    Returns the number of requests recorded."""
    budget = api.max_bytes
    kept: list[ProviderRequest] = []
    over: list[Claimed] = []
    for one, prepared in to_send:
        item = one.item
        custom_id = api.custom_id(pb.local_id, item.pk, item.attempts)
        body = api.body(prepared.request)
        size = api.size(custom_id, body)
        if size > budget:
            over.append(one)
            continue
        budget -= size
        kept.append(
            ProviderRequest(
                provider_batch=pb, item=item, custom_id=custom_id, body=body, fields=prepared.fields
            )
        )
    with transaction.atomic():
        ours = set(
            BatchItem.objects.select_for_update()
            .filter(
                pk__in=[r.item_id for r in kept],
                lease_owner=pb.lease_owner,
                status=BatchItem.Status.RUNNING,
            )
            .values_list("pk", flat=True)
        )
        kept = [r for r in kept if r.item_id in ours]
        if over:
            _give_back(pb, over)
        if not kept:
            return 0
        ProviderRequest.objects.bulk_create(kept, batch_size=500)
        BatchItem.objects.renew_leases(
            owner=pb.lease_owner,
            until=timezone.now() + timedelta(seconds=settings.ECONOMY_LEASE_SECONDS),
        )
        pb.status = ProviderBatch.Status.SUBMITTING
        pb.request_count = len(kept)
        pb.save(update_fields=["status", "request_count"])
    return len(kept)


def submit_judges(*, batch, api: BatchAPI) -> tuple[int, int, int]:
    """The AI judge's wave: answers that came back and wait for their verdict
    ("judging", batches.economy.store) are judged in a judge provider batch, recorded and
    sent as answers are (a worker that dies in between is recovered the same way).

    1. a ProviderBatch of kind judge is created (preparing);
    2. each waiting answer's judge request is built by the graders (`judge_request`: the
       real-time judge's own prompt), custom_id = row, attempt and "-j";
    3. in one transaction: the requests are stored, each row's lease moves from its
       answer's provider batch to this one (rows whose lease is no longer there are
       left out), and it moves to submitting; then it is sent (`send`).
    Returns (requests submitted, rows done, rows failed); (0, 0, 0) when none waits."""
    graders = hooks.graders()
    limit = api.request_limit()
    waiting = list(
        ProviderRequest.objects.filter(provider_batch__batch=batch, outcome="judging")
        .exclude(judge_requests__isnull=False)
        .select_related("item__chat", "provider_batch")
        .order_by("pk")[:limit]
    )
    if not waiting:
        return 0, 0, 0
    pb = ProviderBatch.objects.create(
        batch=batch,
        provider=batch.ai_provider,
        model=batch.model,
        local_id=uuid.uuid4().hex,
        kind=ProviderBatch.Kind.JUDGE,
    )
    budget = api.max_bytes
    kept: list[ProviderRequest] = []
    unjudged: dict[str, list[Outcome]] = {}
    for source in waiting:
        item = source.item
        answer = complete_answer(source.fields, **source.result)
        try:
            request = graders.judge_request(item=item, answer=answer.fields["answer"])
        except (ProviderError, ProviderNotConfigured) as exc:
            # The provider cannot judge: the judge's failure, as in real time.
            outcome = Outcome(
                item,
                BatchItem.Status.DONE,
                answer=answer,
                verdict=graders.judge_reply(text=None, error=str(exc)),
                cost=answer_cost(batch_price(batch), answer.fields, economy=True),
            )
            unjudged.setdefault(source.provider_batch.lease_owner, []).append(outcome)
            source.outcome = "answered"
            continue
        custom_id = api.custom_id(pb.local_id, item.pk, item.attempts, judge=True)
        body = api.body(request)
        size = api.size(custom_id, body)
        if size > budget:
            continue  # the next judge provider batch takes it
        budget -= size
        kept.append(
            ProviderRequest(
                provider_batch=pb, item=item, custom_id=custom_id, body=body, answer_request=source
            )
        )
    done = failed = 0
    for owner, outcomes in unjudged.items():
        d, f = write_outcomes(batch_id=batch.pk, owner=owner, outcomes=outcomes)
        done, failed = done + d, failed + f
    ProviderRequest.objects.bulk_update(
        [s for s in waiting if s.outcome == "answered"], ["outcome"], batch_size=500
    )
    owners = {r.item_id: r.answer_request.provider_batch.lease_owner for r in kept}
    with transaction.atomic():
        ours = {
            pk
            for pk, owner in BatchItem.objects.select_for_update()
            .filter(pk__in=list(owners), status=BatchItem.Status.RUNNING)
            .values_list("pk", "lease_owner")
            if owners[pk] == owner
        }
        # An answer whose row another runner took over (its lease ran out) is not judged.
        lost = [r.answer_request_id for r in kept if r.item_id not in ours]
        ProviderRequest.objects.filter(pk__in=lost).update(outcome="dropped")
        kept = [r for r in kept if r.item_id in ours]
        if kept:
            ProviderRequest.objects.bulk_create(kept, batch_size=500)
            BatchItem.objects.filter(pk__in=list(ours)).update(
                lease_owner=pb.lease_owner,
                lease_expires_at=timezone.now() + timedelta(seconds=settings.ECONOMY_LEASE_SECONDS),
            )
            pb.status = ProviderBatch.Status.SUBMITTING
            pb.request_count = len(kept)
            pb.save(update_fields=["status", "request_count"])
    if not kept:
        pb.delete()
        return 0, done, failed
    send(pb, api)
    return len(kept), done, failed


def send(pb: ProviderBatch, api: BatchAPI) -> bool:
    """Call the provider for a submitting ProviderBatch; True once it has it. A transient
    error leaves it submitting (sent again by `recover`); a refusal fails its rows."""
    requests = list(pb.requests.order_by("pk").values_list("custom_id", "body"))
    try:
        submitted = run_on_provider_loop(api.submit(local_id=pb.local_id, requests=requests))
    except TransientProviderError as exc:
        logger.warning("Provider batch %s: submission failed, will retry: %s", pb.local_id, exc)
        ProviderBatch.objects.filter(pk=pb.pk).update(error=str(exc)[:2000])
        return False
    except ProviderError as exc:
        fail_provider_batch(pb, str(exc))
        return False
    _mark_submitted(pb, submitted.provider_batch_id, submitted.input_file_id, submitted.status)
    return True


def _mark_submitted(pb: ProviderBatch, provider_id: str, input_file_id: str, status: str) -> None:
    pb.provider_batch_id = provider_id
    pb.input_file_id = input_file_id
    pb.provider_status = status or ""
    pb.status = ProviderBatch.Status.SUBMITTED
    pb.submitted_at = timezone.now()
    pb.error = ""
    pb.save(
        update_fields=[
            "provider_batch_id",
            "input_file_id",
            "provider_status",
            "status",
            "submitted_at",
            "error",
        ]
    )


def recover(*, batch, api: BatchAPI) -> None:
    """Submissions a worker left half-done (it died, or the provider did not answer):

    - preparing for longer than a lease: the requests were never stored; its rows (if
      their lease still says so) go back to pending and the record goes;
    - submitting: the provider is asked for a batch carrying its local id (made before
      the worker died); found, its id is saved; else the stored requests are sent again.
    """
    stale = timezone.now() - timedelta(seconds=settings.BATCH_LEASE_SECONDS)
    for pb in batch.provider_batches.filter(
        status=ProviderBatch.Status.PREPARING, created_at__lt=stale
    ):
        BatchItem.objects.filter(
            lease_owner=pb.lease_owner, status=BatchItem.Status.RUNNING
        ).release()
        pb.delete()
    for pb in batch.provider_batches.filter(status=ProviderBatch.Status.SUBMITTING):
        known = frozenset(
            ProviderBatch.objects.filter(provider=pb.provider, created_at__gte=pb.created_at)
            .exclude(provider_batch_id="")
            .values_list("provider_batch_id", flat=True)
        )
        try:
            found = run_on_provider_loop(
                api.find(
                    local_id=pb.local_id,
                    created_after=pb.created_at.timestamp() - 60,
                    count=pb.request_count,
                    known=known,
                )
            )
        except TransientProviderError as exc:
            logger.warning("Provider batch %s: lookup failed, will retry: %s", pb.local_id, exc)
            continue
        if found:
            logger.info("Provider batch %s found at the provider as %s", pb.local_id, found)
            _mark_submitted(pb, found, "", "")
        elif batch.is_active:
            send(pb, api)
        else:
            # Cancelled before the provider had it: nothing to send, its rows go back.
            store_results(pb, [], missing_reason="The batch was cancelled.")
