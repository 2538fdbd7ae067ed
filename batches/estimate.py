"""The estimate of a batch before it starts (and corrected while it runs): provider
calls, tokens, cost in real-time and economy mode, and duration.

1. calls: one answer call per unfinished row (rows already hold the `repeats`: k rows per
   question at upload), plus one AI judge call per row with an expected answer when the
   judge is on, plus one AI guard call per row when GUARD_AI_CHECK is on (language models
   only). Counted here (`calls_for`), the one place of that arithmetic;
2. tokens per row: the real prompt (guard screen, search, system prompt, history) is
   built for up to SAMPLE_ROWS rows spread over the batch (chats.services.prompt_preview)
   and counted by the provider's tokenizer (chats.providers.tokens); output tokens are
   the mean measured on this provider and model's last answers (answers brought in by
   `migrate_batches` count), else DEFAULT_OUTPUT_TOKENS.
   Once rows of the batch are done, their measured tokens replace the sample's
   ("basis": "measured");
3. cost: the tokens at the model's price (chats.providers.prices), and at the batch
   API's discount for economy mode; no price: `cost.known` is false and the figures are
   None, never a guess;
4. duration: calls at the pace the slowest of these allows: the concurrency over the
   mean latency (measured on the last answers, else DEFAULT_LATENCY_SECONDS), the
   provider's requests per minute, its tokens per minute.

`projected_calls(batch)` is the start step's count from the start (the API's
`projectedCalls`): every row, less the rows the guard's offline step blocked at upload
(`Batch.upload_guard`), which are answered with a fixed message and send nothing.
`calls_for(batch)` is the same arithmetic on the rows left. A projection, not a promise:
retries, rows blocked only by the answer-time guard, and a judge that finds an empty
answer change the real count a little.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Avg, Count, Q, Sum

from batches import hooks
from batches.models import Batch, BatchItem
from chats.models import Interaction
from chats.services import (
    counts_words,
    price_for,
    prompt_preview,
    provider_quota,
    request_tokens,
    run_on_provider_loop,
    tokenizer_name,
    turns_for,
    uses_prompt,
)

SAMPLE_ROWS = 20
# With no answer of this model measured yet: the answer service's typical answer, and a
# typical call's wall time. 190 output tokens is the mean (and the median) of the 23
# answers in the old application's exports (batches/tests/legacy_data/sample: era 1
# `answer_output_tokens`, era 2 `outputTokens`; 62 to 300 tokens): short answers with their
# citation tags, as the system prompt asks. test_estimate checks it against those files.
DEFAULT_OUTPUT_TOKENS = 190
DEFAULT_LATENCY_SECONDS = 3.0
HISTORY_ANSWERS = 200  # the last answers of the model that give the output and latency
# The judge's and the AI guard's calls: their fixed instructions and reply, in tokens.
JUDGE_PROMPT_TOKENS = 250
JUDGE_OUTPUT_TOKENS = 120
GUARD_PROMPT_TOKENS = 300
GUARD_OUTPUT_TOKENS = 40
QUESTION_TOKENS = 30  # a question, or an expected answer, as the judge and guard read it


@dataclass(frozen=True)
class ProjectedCalls:
    questions: int
    repeats: int
    rows: int  # questions × repeats
    blocked_rows: int
    answer_calls: int
    judge_calls: int
    guard_calls: int

    @property
    def total(self) -> int:
        return self.answer_calls + self.judge_calls + self.guard_calls

    def as_dict(self) -> dict:
        return {
            "rows": self.rows,
            "answer": self.answer_calls,
            "judge": self.judge_calls,
            "guard": self.guard_calls,
            "total": self.total,
        }


def _projection(batch: Batch, *, rows: int, blocked: int, judged: int) -> ProjectedCalls:
    """The one arithmetic of calls: `rows` to answer, `blocked` of them answered without a
    call, `judged` with something for the AI judge."""
    repeats = max(batch.repeats or 1, 1)
    blocked = min(blocked, rows)
    sent = rows - blocked
    language_model = not counts_words(batch.ai_provider)
    return ProjectedCalls(
        questions=rows // repeats,
        repeats=repeats,
        rows=rows,
        blocked_rows=blocked,
        answer_calls=sent,
        judge_calls=min(judged, sent) if batch.judge_enabled else 0,
        guard_calls=sent if settings.GUARD_AI_CHECK and language_model else 0,
    )


def projected_calls(batch: Batch) -> ProjectedCalls:
    """The provider calls `batch` makes from the start (module docstring). One query when
    the judge is on (its rows to judge, counted by the graders), none otherwise."""
    return _projection(
        batch,
        rows=batch.total_items,
        blocked=int((batch.upload_guard or {}).get("blocked") or 0),
        judged=hooks.graders().judge_rows(batch) if batch.judge_enabled else 0,
    )


def calls_for(batch: Batch) -> dict:
    """Provider calls left to make, by kind (module docstring, step 1). One query. Before
    the first row finishes, the rows blocked at upload make no call."""
    counts = batch.items.unfinished().aggregate(
        rows=Count("id"),
        judged=Count("id", filter=~Q(expected_answer="")),
    )
    untouched = not (batch.processed_items or batch.failed_items)
    blocked = int((batch.upload_guard or {}).get("blocked") or 0) if untouched else 0
    return _projection(
        batch, rows=counts["rows"], blocked=blocked, judged=counts["judged"]
    ).as_dict()


def _sample(batch: Batch) -> list[BatchItem]:
    """Up to SAMPLE_ROWS unfinished rows spread evenly over the batch (two queries)."""
    ids = list(batch.items.unfinished().order_by("position").values_list("pk", flat=True))
    if not ids:
        ids = list(batch.items.order_by("position").values_list("pk", flat=True))
    step = max(len(ids) / SAMPLE_ROWS, 1)
    chosen = sorted({ids[int(i * step)] for i in range(min(SAMPLE_ROWS, len(ids)))})
    return list(BatchItem.objects.filter(pk__in=chosen).select_related("chat"))


def _sample_input_tokens(batch: Batch, model: str) -> tuple[float, int]:
    """The mean input tokens of the sample's real prompts, and how many were built
    (blocked questions make no call and count no tokens)."""
    items = _sample(batch)
    if not items:
        return 0.0, 0
    turns = turns_for([(i.chat, i.question, i.referring_url) for i in items])

    async def build():
        return await asyncio.gather(*(prompt_preview(turn) for turn in turns))

    requests = [r for r in run_on_provider_loop(build()) if r is not None]
    if not requests:
        return 0.0, 0
    counted = [request_tokens(r, provider=batch.ai_provider) for r in requests]
    # Blocked rows of the sample make no call: the mean is over every sampled row.
    return sum(counted) / len(items), len(items)


def _history(batch: Batch, model: str) -> dict:
    """Mean output tokens and latency of this provider and model's last answers."""
    last = (
        # The chat's model (the one chosen), not the interaction's: providers answer
        # with dated names (gpt-4o-mini-2024-07-18).
        Interaction.objects.filter(
            chat__ai_provider=batch.ai_provider, chat__model=model, output_tokens__isnull=False
        )
        .exclude(guard_status="blocked")
        .order_by("-id")
        .values_list("id", flat=True)[:HISTORY_ANSWERS]
    )
    return Interaction.objects.filter(id__in=list(last)).aggregate(
        n=Count("id"), output=Avg("output_tokens"), latency=Avg("latency_ms")
    )


def estimate_batch(batch: Batch, *, concurrency: int | None = None) -> dict:
    """The estimate of what is left of `batch` (see the module docstring). A handful of
    queries plus SAMPLE_ROWS searches; no provider call. `concurrency`: the calls the
    runner keeps in flight (default BATCH_CONCURRENCY; run_batch --concurrency)."""
    model = batch.model
    calls = calls_for(batch)
    measured = batch.items.filter(status=BatchItem.Status.DONE).aggregate(
        rows=Count("id"),
        input=Sum("interaction__input_tokens"),
        output=Sum("interaction__output_tokens"),
    )
    history = _history(batch, model)
    if measured["rows"] and measured["input"]:
        basis, sampled = "measured", measured["rows"]
        input_per_row = measured["input"] / measured["rows"]
        output_per_row = (measured["output"] or 0) / measured["rows"]
    else:
        basis = "sample"
        input_per_row, sampled = _sample_input_tokens(batch, model)
        output_per_row = float(history["output"] or DEFAULT_OUTPUT_TOKENS)
    # The judge reads the question, the expected answer and the answer; the guard the question.
    judge_input = JUDGE_PROMPT_TOKENS + 2 * QUESTION_TOKENS + output_per_row
    guard_input = GUARD_PROMPT_TOKENS + QUESTION_TOKENS
    input_tokens = (
        calls["answer"] * input_per_row
        + calls["judge"] * judge_input
        + calls["guard"] * guard_input
    )
    output_tokens = (
        calls["answer"] * output_per_row
        + calls["judge"] * JUDGE_OUTPUT_TOKENS
        + calls["guard"] * GUARD_OUTPUT_TOKENS
    )
    encoding, exact = tokenizer_name(batch.ai_provider, model)

    price = price_for(batch.ai_provider, model)
    rows = calls["answer"] or 1
    cost = {
        "known": price is not None,
        "currency": settings.AI_PRICE_CURRENCY,
        "spent": round(batch.spent, 6),
    }
    if price is None:
        cost.update(realtime=None, economy=None, price=None, cost_per_row=0.0, extra_per_row=0.0)
    else:
        answer_cost = price.cost(input_per_row, output_per_row)
        extra = price.cost(input_tokens, output_tokens) / rows - answer_cost
        cost.update(
            realtime=price.cost(input_tokens, output_tokens),
            economy=price.cost(input_tokens, output_tokens, economy=True),
            price=price.as_dict(),
            cost_per_row=answer_cost,
            extra_per_row=max(extra, 0.0),
        )

    concurrency = max(int(concurrency or settings.BATCH_CONCURRENCY), 1)
    if settings.PROVIDER_MAX_CONCURRENCY:
        concurrency = min(concurrency, settings.PROVIDER_MAX_CONCURRENCY)
    latency = (history["latency"] or DEFAULT_LATENCY_SECONDS * 1000) / 1000
    rpm, tpm = provider_quota(batch.ai_provider, model)
    paces = {"concurrency": concurrency / max(latency, 0.001)}  # calls per second
    if rpm:
        paces["rpm"] = rpm / 60
    tokens_per_call = (input_tokens + output_tokens) / max(calls["total"], 1)
    if tpm and tokens_per_call:
        paces["tpm"] = tpm / 60 / tokens_per_call
    limited_by = min(paces, key=paces.get)
    seconds = math.ceil(calls["total"] / paces[limited_by]) if calls["total"] else 0

    return {
        "calls": calls,
        "repeats": batch.repeats,
        "tokens": {
            "input": round(input_tokens),
            "output": round(output_tokens),
            "input_per_row": round(input_per_row),
            "output_per_row": round(output_per_row),
            "basis": basis,
            "sample_rows": sampled,
            "counted_by": encoding,
            "exact": exact,
            "words": counts_words(batch.ai_provider),
            "prompt": uses_prompt(batch.ai_provider),
        },
        "cost": cost,
        "duration": {
            "seconds": seconds,
            "limited_by": limited_by,
            "concurrency": concurrency,
            "latency_seconds": round(latency, 2),
            "rpm": rpm,
            "tpm": tpm,
        },
    }


def refresh_estimate(batch: Batch, *, concurrency: int | None = None) -> dict:
    """Estimate the batch and keep the figures the engine's budget check reads
    (batches.costs.per_row_cost) on it."""
    estimate = estimate_batch(batch, concurrency=concurrency)
    batch.estimate = {
        "cost_per_row": estimate["cost"]["cost_per_row"],
        "extra_cost_per_row": estimate["cost"]["extra_per_row"],
        "input_per_row": estimate["tokens"]["input_per_row"],
        "output_per_row": estimate["tokens"]["output_per_row"],
    }
    Batch.objects.filter(pk=batch.pk).update(estimate=batch.estimate)
    return estimate
