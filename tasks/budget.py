"""Keep each goal run inside its budget: charge every model call, refuse calls once spent.

One tracker per goal run, shared by the subtask threads of the process running the flow.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from uuid import UUID

from prefect.artifacts import create_markdown_artifact
from prefect.context import TaskRunContext

from core.budget import Budget, BudgetExceeded, overspent
from core.pricing import Usage

BUDGET_ARTIFACT = "goal-budget"


@dataclass
class _Tracker:
    budget: Budget
    started: float = field(default_factory=time.monotonic)
    tokens: int = 0
    cost_usd: float = 0.0
    exceeded: str | None = None


_trackers: dict[UUID, _Tracker] = {}
_lock = threading.Lock()


def open_budget(flow_run_id: UUID, budget: Budget) -> None:
    with _lock:
        _trackers[flow_run_id] = _Tracker(budget)


def close_budget(flow_run_id: UUID) -> str | None:
    """Forget the goal run's tracker; returns why it was halted, if it was."""
    with _lock:
        tracker = _trackers.pop(flow_run_id, None)
    return tracker.exceeded if tracker is not None else None


def seconds_left(flow_run_id: UUID) -> float | None:
    with _lock:
        tracker = _trackers.get(flow_run_id)
        if tracker is None or tracker.budget.max_seconds is None:
            return None
        return tracker.budget.max_seconds - (time.monotonic() - tracker.started)


def halt(flow_run_id: UUID, why: str) -> None:
    """Mark the goal run as out of budget (once) and say so in an artifact of the run."""
    with _lock:
        tracker = _trackers.get(flow_run_id)
        if tracker is None or tracker.exceeded is not None:
            return
        tracker.exceeded = why
    create_markdown_artifact(
        f"Halted: budget exceeded ({why}). Subtasks not yet started will not run.",
        key=BUDGET_ARTIFACT,
        description=why,
    )


def _current() -> tuple[UUID, _Tracker] | None:
    ctx = TaskRunContext.get()
    flow_run_id = ctx.task_run.flow_run_id if ctx is not None else None
    if flow_run_id is None:
        return None
    with _lock:
        tracker = _trackers.get(flow_run_id)
    return (flow_run_id, tracker) if tracker is not None else None


def check_budget() -> None:
    """Raise BudgetExceeded if the current goal run may not start another model call."""
    current = _current()
    if current is None:
        return
    flow_run_id, tracker = current
    why = tracker.exceeded or overspent(
        tracker.budget, tracker.tokens, tracker.cost_usd, time.monotonic() - tracker.started
    )
    if why is not None:
        halt(flow_run_id, why)
        raise BudgetExceeded(f"halted: budget exceeded ({why})")


def charge(usage: Usage) -> None:
    """Add one model call's usage to the current goal run's spending."""
    current = _current()
    if current is None:
        return
    flow_run_id, tracker = current
    with _lock:
        tracker.tokens += usage.total_tokens
        tracker.cost_usd += usage.cost_usd
        why = overspent(tracker.budget, tracker.tokens, tracker.cost_usd, 0.0)
    if why is not None:
        halt(flow_run_id, why)
