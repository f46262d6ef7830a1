"""A goal run's budget: the most subtasks, tokens, dollars and seconds it may spend."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# The largest integer every layer carries exactly: JavaScript (the page, the Prefect UI) reads
# JSON numbers as doubles, and Prefect's server serializes integers of 64 bits at most (a
# larger one stored in a run's parameters broke every list of runs).
MAX_EXACT_INT = 2**53 - 1
# Wall-clock limits are waited on with a timeout, which the platform caps (about 292 years
# for a thread); a goal run that may take more than a year has no time limit worth the name.
MAX_BUDGET_SECONDS = 366 * 24 * 3600


class Budget(BaseModel):
    """Limits for one goal run; an unset limit is no limit. Numbers are finite (Infinity and
    NaN are refused, not read as "no limit") and within what every layer carries."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    max_subtasks: int | None = Field(
        default=None, gt=0, le=MAX_EXACT_INT, description="most subtasks in the plan"
    )
    max_tokens: int | None = Field(
        default=None, gt=0, le=MAX_EXACT_INT, description="input + output tokens"
    )
    max_cost_usd: float | None = Field(
        default=None, gt=0, le=MAX_EXACT_INT, description="estimated cost, USD"
    )
    max_seconds: float | None = Field(
        default=None, gt=0, le=MAX_BUDGET_SECONDS, description="wall-clock seconds, a year at most"
    )


def overspent(budget: Budget, tokens: int, cost_usd: float, elapsed_s: float) -> str | None:
    """Which limit the spending so far has reached, in words, or None."""
    if budget.max_tokens is not None and tokens >= budget.max_tokens:
        return f"{tokens:,} tokens used of {budget.max_tokens:,}"
    if budget.max_cost_usd is not None and cost_usd >= budget.max_cost_usd:
        return f"${cost_usd:.4f} spent of ${budget.max_cost_usd:.4f}"
    if budget.max_seconds is not None and elapsed_s >= budget.max_seconds:
        return f"{elapsed_s:.1f} s elapsed of {budget.max_seconds:g} s"
    return None
