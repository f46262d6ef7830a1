"""The progress document: what `GET /task/{id}/progress` and `mission run --json` return."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, computed_field

from core.budget import Budget
from core.citations import CitationReport
from core.forecast import Forecast
from core.pricing import Usage
from core.revision import Replan
from core.sources import Source
from core.states import Bucket, bucket_of


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
    revision: int = 0  # the plan revision that added it
    replaced_by: str | None = None  # the subtask that replaced it after it failed

    @computed_field  # type: ignore[prop-decorator]
    @property
    def bucket(self) -> Bucket:
        """pending, running, completed, failed, cancelled or skipped (core.states)."""
        return bucket_of(self.state)


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
        setattr(counts, s.bucket, getattr(counts, s.bucket) + 1)
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


class TierReport(BaseModel):
    """A tier the plan uses: its model and how many of its subtasks may run at once (None: no
    limit), as this installation's settings say."""

    model: str | None = None
    limit: int | None = None


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
    sources: list[Source] = Field(default_factory=list)
    citations: CitationReport = Field(default_factory=CitationReport)
    plan_revision: int = 0  # how many revisions of the plan ran
    replans: list[Replan] = Field(default_factory=list)
    usage: UsageReport = Field(default_factory=UsageReport)
    budget: BudgetReport | None = None
    tiers: dict[str, TierReport] = Field(default_factory=dict)  # the plan's tiers
    forecast: Forecast | None = None  # the plan's likely cost, while it waits for approval

    @computed_field  # type: ignore[prop-decorator]
    @property
    def bucket(self) -> Bucket:
        """pending, running, completed, failed or cancelled (core.states)."""
        return bucket_of(self.state)

    @property
    def finished(self) -> bool:
        """The goal run has ended (completed, failed or cancelled): nothing changes any more."""
        return self.bucket in ("completed", "failed", "cancelled")
