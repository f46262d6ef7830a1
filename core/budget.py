"""A goal run's budget: the most subtasks, tokens, dollars and seconds it may spend."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from core.errors import MissionError


class Budget(BaseModel):
    """Limits for one goal run; an unset limit is no limit."""

    model_config = ConfigDict(extra="forbid")

    max_subtasks: int | None = Field(default=None, gt=0, description="most subtasks in the plan")
    max_tokens: int | None = Field(default=None, gt=0, description="input + output tokens")
    max_cost_usd: float | None = Field(default=None, gt=0, description="estimated cost, USD")
    max_seconds: float | None = Field(default=None, gt=0, description="wall-clock seconds")


class BudgetExceeded(MissionError):
    """The goal run spent its budget; nothing more may start."""


def overspent(budget: Budget, tokens: int, cost_usd: float, elapsed_s: float) -> str | None:
    """Which limit the spending so far has reached, in words, or None."""
    if budget.max_tokens is not None and tokens >= budget.max_tokens:
        return f"{tokens:,} tokens used of {budget.max_tokens:,}"
    if budget.max_cost_usd is not None and cost_usd >= budget.max_cost_usd:
        return f"${cost_usd:.4f} spent of ${budget.max_cost_usd:.4f}"
    if budget.max_seconds is not None and elapsed_s >= budget.max_seconds:
        return f"{elapsed_s:.1f} s elapsed of {budget.max_seconds:g} s"
    return None
