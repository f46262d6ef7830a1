"""Token prices per model and the cost of a call's usage.

Prices are US dollars per million tokens (input, output), looked up by model family:
haiku 1/5, sonnet 3/15, opus 5/25, the last list prices we know of for those families (this
machine cannot check the current price list). Cache writes cost 1.25x input and cache reads
0.1x input, as Anthropic bills ephemeral prompt caching. A model of an unknown family costs 0
rather than a guess. `MISSION_PRICES` (JSON: {"model": [input, output]}) overrides per model;
set it to the prices you actually pay.
"""

from __future__ import annotations

from pydantic import BaseModel

from core.settings import get_settings

FAMILY_PRICES: dict[str, tuple[float, float]] = {
    "haiku": (1.00, 5.00),
    "sonnet": (3.00, 15.00),
    "opus": (5.00, 25.00),
}


class Usage(BaseModel):
    """Tokens and dollars of one or more model calls."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_creation_input_tokens=self.cache_creation_input_tokens
            + other.cache_creation_input_tokens,
            cache_read_input_tokens=self.cache_read_input_tokens + other.cache_read_input_tokens,
            cost_usd=round(self.cost_usd + other.cost_usd, 6),
        )

    @property
    def total_tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
        )


def price_of(model: str, overrides: dict[str, tuple[float, float]]) -> tuple[float, float]:
    if model in overrides:
        return overrides[model]
    for family, price in FAMILY_PRICES.items():
        if family in model:
            return price
    return (0.0, 0.0)


def priced(
    model: str,
    input_tokens: int,
    output_tokens: int,
    cache_creation_input_tokens: int = 0,
    cache_read_input_tokens: int = 0,
) -> Usage:
    """The Usage of one call, with its cost in dollars."""
    inp, out = price_of(model, get_settings().prices)
    cost = (
        input_tokens * inp
        + cache_creation_input_tokens * inp * 1.25
        + cache_read_input_tokens * inp * 0.10
        + output_tokens * out
    ) / 1_000_000
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_creation_input_tokens=cache_creation_input_tokens,
        cache_read_input_tokens=cache_read_input_tokens,
        cost_usd=round(cost, 6),
    )
