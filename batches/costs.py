"""Cost of a batch: what each row's answer cost, the budget check, and raising a budget.

Prices come from `chats.providers.prices.price_for` (admin, AI_PRICES, the shipped
table). Each done row's cost is its interaction's tokens at the batch's price, written on
the row (`BatchItem.cost`) by the engine's writer, and added to `Batch.spent` in the same
transaction: the budget check reads one field of one row, never an aggregate. The judge's
and the AI guard's real-time calls report no tokens: they are counted in the estimate
only. In economy mode the judge's wave reports its tokens: a judged row's cost is its
answer's and its judge call's, both at the batch price (batches.economy.store).
"""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction
from django.utils.translation import gettext

from batches import runners
from batches.errors import BatchStateError
from batches.models import Batch
from chats.services import Price, price_for

MAX_BUDGET = 99_999_999  # Batch.budget holds 12 digits, 4 after the point


def batch_price(batch: Batch) -> Price | None:
    """The price of the batch's provider and model; None when unknown (never guessed).
    The extractive answerer's "tokens" are word counts: it is free (shipped at 0)."""
    return price_for(batch.ai_provider, batch.model)


def answer_cost(price: Price | None, fields: dict, *, economy: bool = False) -> float | None:
    """What one answer call cost, from the tokens it reported (`economy`: at the batch
    API's price); None without a price."""
    if price is None:
        return None
    tokens = (fields.get("input_tokens") or 0, fields.get("output_tokens") or 0)
    return price.cost(*tokens, economy=economy)


def over_budget(*, budget: float | None, spent: float, in_flight: int, per_call: float) -> bool:
    """Whether starting one more row could pass the budget: what is spent, plus the
    estimated cost of the calls in flight and of this one."""
    if budget is None:
        return False
    return spent + (in_flight + 1) * per_call > budget


def budget_left_for_one(batch: Batch, per_call: float) -> bool:
    return not over_budget(
        budget=None if batch.budget is None else float(batch.budget),
        spent=batch.spent,
        in_flight=0,
        per_call=per_call,
    )


def set_budget(*, batch: Batch, budget: Decimal | None) -> Batch:
    """Set (or clear, with None) the batch's budget. A batch paused because its budget
    was reached resumes when the new budget leaves room for a row (queued again and
    handed to the runner); a smaller one simply takes effect at the next row."""
    if budget is not None and budget < 0:
        raise BatchStateError(gettext("A budget cannot be negative."))
    with transaction.atomic():
        batch = Batch.objects.select_for_update().get(pk=batch.pk)
        batch.budget = budget
        batch.save(update_fields=["budget", "updated_at"])
        if batch.budget_reached and budget_left_for_one(batch, per_row_cost(batch)):
            batch.mark_queued()
            runners.schedule(batch.pk)
    return batch


def per_row_cost(batch: Batch) -> float:
    """The estimated cost of one more row: the measured average once rows are done
    (corrected as the batch runs), else the estimate made before start (0 unknown)."""
    estimate = batch.estimate or {}
    planned = float(estimate.get("cost_per_row") or 0.0)
    if batch.processed_items and batch.spent:
        measured = batch.spent / batch.processed_items
        # The answer's tokens are measured; the judge's and guard's share stays estimated.
        extra = float(estimate.get("extra_cost_per_row") or 0.0)
        return measured + extra
    return planned


__all__ = [
    "answer_cost",
    "batch_price",
    "over_budget",
    "per_row_cost",
    "set_budget",
]
