"""What a plan will likely cost before it runs: a range in dollars from its tiers' prices
and the tokens a subtask of each kind typically uses.

Typical tokens are learned from this installation's finished goal runs when it has enough of
them (services/forecast.py reads them); otherwise DEFAULT_TOKENS, a table written from the
sizes of this project's own prompts: a subtask's prompt carries its instruction and its
dependencies' outputs, a browse subtask a page's text and screenshot, and the join every
output. The range runs from a low (10th percentile) to a high (90th percentile) subtask of
each kind; retries are in it only as far as past runs had them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pydantic import BaseModel, Field

from core.pricing import price_of

JOIN_KIND = "join"  # the join's attempts, counted like a kind
MIN_SAMPLES = 3  # subtasks of a kind before its learned range is trusted


class TokenRange(BaseModel):
    """The tokens of one subtask of a kind (all its attempts): a low and a high one."""

    input_low: int
    input_high: int
    output_low: int
    output_high: int
    samples: int = 0  # how many past subtasks it was learned from (0: the default table)


DEFAULT_TOKENS: dict[str, TokenRange] = {
    "browse": TokenRange(input_low=1500, input_high=6000, output_low=300, output_high=1200),
    "extract": TokenRange(input_low=800, input_high=4000, output_low=200, output_high=1000),
    "structure": TokenRange(input_low=800, input_high=4000, output_low=200, output_high=1200),
    "synthesize": TokenRange(input_low=1500, input_high=8000, output_low=400, output_high=2000),
    "write": TokenRange(input_low=1500, input_high=8000, output_low=500, output_high=3000),
    "search": TokenRange(input_low=0, input_high=2000, output_low=0, output_high=500),
    JOIN_KIND: TokenRange(input_low=2000, input_high=12000, output_low=500, output_high=3000),
}
FALLBACK = DEFAULT_TOKENS["synthesize"]  # a kind the table does not know (settings add kinds)


class Forecast(BaseModel):
    """The likely cost of running a plan (its subtasks and the join), in US dollars."""

    low_usd: float
    high_usd: float
    basis: str  # where the token counts came from, in words
    unpriced: list[str] = Field(default_factory=list)  # tiers whose model has no known price


def _percentile(values: list[int], fraction: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * (len(ordered) - 1) + 0.5))]


def learn_tokens(samples: Mapping[str, Iterable[tuple[int, int]]]) -> dict[str, TokenRange]:
    """Each kind's range from past subtasks' (input, output) tokens; kinds with fewer than
    MIN_SAMPLES are left out (the default table serves them)."""
    learned: dict[str, TokenRange] = {}
    for kind, pairs in samples.items():
        seen = list(pairs)
        if len(seen) < MIN_SAMPLES:
            continue
        inputs, outputs = [i for i, _ in seen], [o for _, o in seen]
        learned[kind] = TokenRange(
            input_low=_percentile(inputs, 0.1),
            input_high=_percentile(inputs, 0.9),
            output_low=_percentile(outputs, 0.1),
            output_high=_percentile(outputs, 0.9),
            samples=len(seen),
        )
    return learned


def forecast_cost(
    steps: Iterable[tuple[str, str]],
    models: Mapping[str, str],
    learned: Mapping[str, TokenRange],
    prices: Mapping[str, tuple[float, float]],
) -> Forecast:
    """The cost range of `steps` ((kind, tier) per subtask, and the join's), each tier served
    by `models[tier]` at its price (`prices` override the list prices, as in core.pricing)."""
    low = high = 0.0
    used_learned: set[str] = set()
    used_default: set[str] = set()
    unpriced: list[str] = []
    for kind, tier in steps:
        tokens = learned.get(kind)
        if tokens is None:
            tokens = DEFAULT_TOKENS.get(kind, FALLBACK)
            used_default.add(kind)
        else:
            used_learned.add(kind)
        model = models.get(tier, "")
        price = price_of(model, dict(prices))
        if price is None:  # unpriced: it adds nothing to the range, and is named
            if tier not in unpriced:
                unpriced.append(tier)
            continue
        inp, out = price
        low += (tokens.input_low * inp + tokens.output_low * out) / 1_000_000
        high += (tokens.input_high * inp + tokens.output_high * out) / 1_000_000
    return Forecast(
        low_usd=round(low, 6),
        high_usd=round(high, 6),
        basis=_basis(used_learned, used_default, learned),
        unpriced=unpriced,
    )


def _basis(
    used_learned: set[str], used_default: set[str], learned: Mapping[str, TokenRange]
) -> str:
    if not used_learned:
        return "typical token counts (too few finished goal runs here to learn from)"
    samples = sum(learned[k].samples for k in used_learned)
    said = f"token counts of {samples} past subtasks ({', '.join(sorted(used_learned))})"
    if used_default:
        said += f"; typical counts for {', '.join(sorted(used_default))}"
    return said
