"""Request and response bodies of the HTTP API (the progress document is core.progress)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.budget import Budget


class ErrorBody(BaseModel):
    """Every error the API returns: one readable sentence."""

    detail: str


class GoalRequest(BaseModel):
    """A goal to run. With `plan`, the planner is skipped; with `approve`, the run waits for
    `POST /task/{id}/approve` after planning."""

    model_config = ConfigDict(extra="forbid")

    goal: str = Field(description="what you want done, in words")
    plan: dict[str, Any] | None = Field(
        default=None, description="a ready plan (the plan file format); skips the planner"
    )
    approve: bool = Field(default=False, description="pause after planning until approved")
    budget: Budget | None = None


class GoalCreated(BaseModel):
    id: str = Field(description="the goal run's id (a full UUID)")
    state: str
    progress_url: str
    events_url: str
    prefect_url: str


class GoalSummary(BaseModel):
    id: str
    goal: str
    state: str
    message: str | None = None
    created_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    progress_url: str
    prefect_url: str


class GoalList(BaseModel):
    items: list[GoalSummary]
    limit: int
    offset: int
    next_offset: int | None = Field(description="offset of the next page; null on the last")


class PlanFile(BaseModel):
    """A plan in the plan file's format (see README)."""

    goal: str
    subtasks: list[dict[str, Any]]


class Approval(BaseModel):
    """Approve a paused goal run's plan, or send an edited plan to run instead."""

    model_config = ConfigDict(extra="forbid")

    plan: dict[str, Any] | None = Field(default=None, description="an edited plan (optional)")


class Accepted(BaseModel):
    id: str
    state: str
    message: str
