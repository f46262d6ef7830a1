"""Token prices per model and the cost of a call's usage.

Prices are US dollars per million tokens (input, output), looked up by model family:
haiku 1/5, sonnet 3/15, opus 5/25, the last list prices we know of for those families (this
machine cannot check the current price list). Cache writes cost 1.25x input and cache reads
0.1x input, as Anthropic bills ephemeral prompt caching. A model of an unknown family is
unpriced: its cost is unknown (None, shown as "unpriced"), never a guess and never $0, and a
sum with an unknown part is unknown. `MISSION_PRICES` (JSON: {"model": [input, output]})
overrides per model; set it to the prices you actually pay (`[0, 0]` for a free local model).

The cost is recomputable from a Usage's own fields: `input_tokens` are the uncached input
tokens only; cache writes and reads are counted apart, as Anthropic reports them.
"""

from __future__ import annotations

from pydantic import BaseModel

from core.settings import get_settings

FAMILY_PRICES: dict[str, tuple[float, float]] = {
    "haiku": (1.00, 5.00),
    "sonnet": (3.00, 15.00),
    "opus": (5.00, 25.00),
}


CACHE_WRITE_FACTOR = 1.25
CACHE_READ_FACTOR = 0.10


class Usage(BaseModel):
    """Tokens and dollars of one or more model calls (`cost_usd` None: unpriced)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float | None = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_creation_input_tokens=self.cache_creation_input_tokens
            + other.cache_creation_input_tokens,
            cache_read_input_tokens=self.cache_read_input_tokens + other.cache_read_input_tokens,
            cost_usd=None
            if self.cost_usd is None or other.cost_usd is None
            else round(self.cost_usd + other.cost_usd, 6),
        )

    @property
    def total_tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
        )


def price_of(model: str, overrides: dict[str, tuple[float, float]]) -> tuple[float, float] | None:
    """Dollars per million (input, output) tokens of `model`, or None when it is unpriced."""
    if model in overrides:
        return overrides[model]
    for family, price in FAMILY_PRICES.items():
        if family in model:
            return price
    return None


def priced(
    model: str,
    input_tokens: int,
    output_tokens: int,
    cache_creation_input_tokens: int = 0,
    cache_read_input_tokens: int = 0,
) -> Usage:
    """The Usage of one call, with its cost in dollars (None for an unpriced model)."""
    price = price_of(model, get_settings().prices)
    cost = None
    if price is not None:
        inp, out = price
        cost = (
            input_tokens * inp
            + cache_creation_input_tokens * inp * CACHE_WRITE_FACTOR
            + cache_read_input_tokens * inp * CACHE_READ_FACTOR
            + output_tokens * out
        ) / 1_000_000
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_creation_input_tokens=cache_creation_input_tokens,
        cache_read_input_tokens=cache_read_input_tokens,
        cost_usd=None if cost is None else round(cost, 6),
    )


def cost_text(cost_usd: float | None, digits: int = 4) -> str:
    """Dollars, or "unpriced" when a model without a price took part (never a made-up $0)."""
    return "unpriced" if cost_usd is None else f"${cost_usd:.{digits}f}"
