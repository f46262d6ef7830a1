"""Request and response bodies of the HTTP API (the progress document is core.progress)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.budget import Budget
from core.states import Bucket


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
    bucket: Bucket = Field(description="the state's bucket (see the progress document)")
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


class ScheduleRequest(BaseModel):
    """A recurring goal: the goal (with an optional ready plan and budget) and when to run it,
    as a cron expression in a timezone or an interval in seconds (exactly one of the two)."""

    model_config = ConfigDict(extra="forbid")

    goal: str = Field(description="what you want done, in words")
    cron: str | None = Field(
        default=None,
        max_length=200,
        description='a cron expression of 5 fields, e.g. "0 8 * * 1"; it must fire within a year',
    )
    timezone: str = Field(default="UTC", description="IANA timezone for cron, e.g. Europe/Paris")
    interval_s: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="seconds between runs, from MISSION_MIN_SCHEDULE_S (60) to 31622400 (a year)",
    )
    plan: dict[str, Any] | None = Field(
        default=None, description="a ready plan (the plan file format); skips the planner"
    )
    budget: Budget | None = None
    active: bool = Field(default=True, description="false creates it paused")
    notify: str | None = Field(
        default=None,
        max_length=2000,
        description="a webhook URL: each run's end is POSTed there as JSON (id, goal, state, "
        "message, summary, url, prefect_url) by a Prefect automation; it must pass the SSRF "
        "guard unless MISSION_NOTIFY_ALLOW covers it",
    )


class Schedule(BaseModel):
    """A recurring goal: a Prefect deployment schedule carrying the goal as its parameters."""

    id: str = Field(description="the Prefect deployment schedule's id")
    goal: str
    cron: str | None
    interval_s: int | None
    timezone: str
    active: bool
    plan: dict[str, Any] | None = None
    budget: dict[str, Any] | None = None
    next_runs: list[datetime] = Field(description="the next start times; empty when paused")
    notify: str | None = Field(default=None, description="the webhook told of each run's end")


class ScheduleList(BaseModel):
    items: list[Schedule]
