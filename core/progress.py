"""The progress document: what `GET /task/{id}/progress` and `mission run --json` return."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from core.budget import Budget
from core.pricing import Usage

# Prefect state names folded into the document's counts.
STATE_BUCKETS: dict[str, str] = {
    "Scheduled": "pending",
    "Pending": "pending",
    "NotReady": "pending",
    "Late": "pending",
    "AwaitingRetry": "pending",
    "Paused": "pending",
    "Suspended": "pending",
    "Running": "running",
    "Retrying": "running",
    "Completed": "completed",
    "Cached": "completed",
    "Failed": "failed",
    "Crashed": "failed",
    "TimedOut": "failed",
    "Cancelling": "cancelled",
    "Cancelled": "cancelled",
    "Skipped": "skipped",
    "Halted": "cancelled",  # not started: the goal run's budget was spent
}
TERMINAL = {"Completed", "Failed", "Crashed", "Cancelled", "TimedOut"}
SUBTASK_TERMINAL = TERMINAL | {"Cached", "Skipped", "Halted"}


class SubtaskProgress(BaseModel):
    id: str
    title: str
    kind: str
    tier: str
    model: str | None = None
    state: str = "Pending"
    depends_on: list[str] = Field(default_factory=list)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    learned: str | None = None
    error: str | None = None


class Counts(BaseModel):
    total: int = 0
    pending: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    skipped: int = 0


def count_states(subtasks: list[SubtaskProgress]) -> Counts:
    counts = Counts(total=len(subtasks))
    for s in subtasks:
        bucket = STATE_BUCKETS.get(s.state, "pending")
        setattr(counts, bucket, getattr(counts, bucket) + 1)
    return counts


class Learned(BaseModel):
    subtask: str
    text: str
    at: datetime


class UsageReport(Usage):
    by_tier: dict[str, Usage] = Field(default_factory=dict)


class BudgetReport(Budget):
    """The goal run's limits, and which one halted it (None while within budget)."""

    exceeded: str | None = None


class ProgressDocument(BaseModel):
    id: str
    goal: str
    state: str
    created_at: datetime | None
    updated_at: datetime | None
    prefect_url: str
    provider: Literal["anthropic", "simulated"] | str
    message: str | None = None
    subtasks: list[SubtaskProgress] = Field(default_factory=list)
    counts: Counts = Field(default_factory=Counts)
    learned: list[Learned] = Field(default_factory=list)
    result: str | None = None
    usage: UsageReport = Field(default_factory=UsageReport)
    budget: BudgetReport | None = None

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL
