"""Prices per million tokens, for a batch's estimate, its budget and its cost.

Three sources, the first that knows the model wins:

1. `chats.models.ModelPrice` rows, edited by staff in the admin (read through: the
   shipped table is never copied into the database, so an update of the file reaches
   every model the admin has not priced);
2. the `AI_PRICES` setting (`provider[:model]=IN/OUT`), whose batch discount is the
   shipped one for that model, else the provider's;
3. the table shipped in `data/prices.json` (read once), each price with its date and
   source.

A `provider:model` entry wins over a provider-wide one (model `*` in the file, empty in
the admin, `provider=` in AI_PRICES). A model none of them knows has no price: callers
say so, they never guess. `price_for` is the one function other parts call (the
estimate, the engine's budget, economy mode's batch price).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from django.conf import settings

DATA_FILE = Path(__file__).parent / "data" / "prices.json"
ANY_MODEL = "*"


@dataclass(frozen=True)
class Price:
    """One model's price: USD (AI_PRICE_CURRENCY) per million input and output tokens."""

    provider: str
    model: str  # "*" when the price is the provider's for any model
    input: float
    output: float
    batch_discount: float  # share off in the provider's batch API (0.5 = half price)
    date: str  # ISO date the price was read, "" when unknown (AI_PRICES)
    source: str
    origin: str  # "admin", "setting" (AI_PRICES) or "shipped"

    def cost(self, input_tokens: float, output_tokens: float, *, economy: bool = False) -> float:
        """The cost of these tokens; `economy`: at the batch API's price."""
        cost = (input_tokens * self.input + output_tokens * self.output) / 1_000_000
        return cost * (1 - self.batch_discount) if economy else cost

    def as_dict(self) -> dict:
        return {
            "provider": self.provider,
            "model": self.model,
            "input_per_million": self.input,
            "output_per_million": self.output,
            "batch_discount": self.batch_discount,
            "date": self.date,
            "source": self.source,
            "origin": self.origin,
        }


@cache
def shipped_prices() -> dict[tuple[str, str], Price]:
    """The shipped table by (provider, model), read once."""
    data = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    return {
        (entry["provider"], entry["model"]): Price(
            provider=entry["provider"],
            model=entry["model"],
            input=float(entry["input"]),
            output=float(entry["output"]),
            batch_discount=float(entry.get("batch_discount", 0)),
            date=entry["date"],
            source=entry["source"],
            origin="shipped",
        )
        for entry in data["prices"]
    }


def _admin_price(provider: str, model: str) -> Price | None:
    from chats.models import ModelPrice

    rows = {
        row.model: row
        for row in ModelPrice.objects.filter(provider=provider, model__in=[model, ""])
    }
    row = rows.get(model) or rows.get("")
    if row is None:
        return None
    return Price(
        provider=provider,
        model=row.model or ANY_MODEL,
        input=float(row.input_per_million),
        output=float(row.output_per_million),
        batch_discount=float(row.batch_discount),
        date=row.date.isoformat(),
        source=row.source,
        origin="admin",
    )


def _setting_price(provider: str, model: str) -> Price | None:
    prices = settings.AI_PRICES
    key = f"{provider}:{model}"
    found, priced = (prices.get(key), model) if model else (None, "")
    if found is None:
        found, priced = prices.get(provider), ANY_MODEL
    if found is None:
        return None
    shipped = shipped_prices()
    discount = shipped.get((provider, model)) or shipped.get((provider, ANY_MODEL))
    if discount is None:  # the provider's batch discount, from any of its shipped models
        discount = next((p for (prov, _m), p in shipped.items() if prov == provider), None)
    return Price(
        provider=provider,
        model=priced,
        input=float(found[0]),
        output=float(found[1]),
        batch_discount=discount.batch_discount if discount else 0.0,
        date="",
        source="AI_PRICES",
        origin="setting",
    )


def price_for(provider: str, model: str) -> Price | None:
    """The price of `provider`'s `model` (see the module docstring), or None when no
    source knows it. One query (the admin's prices)."""
    found = _admin_price(provider, model) or _setting_price(provider, model)
    if found is not None:
        return found
    shipped = shipped_prices()
    return shipped.get((provider, model)) or shipped.get((provider, ANY_MODEL))


def currency() -> str:
    return settings.AI_PRICE_CURRENCY
