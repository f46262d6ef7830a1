"""Run a goal in this process against the configured Prefect server (the CLI's path)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, State
from prefect.flow_engine import run_flow
from prefect.states import Cancelled

from flows.compound_goal import compound_goal


def create_goal_run(goal: str, plan: dict[str, Any] | None = None) -> FlowRun:
    """Create the goal run first, so its id is known before it starts."""
    with get_client(sync_client=True) as client:
        return client.create_flow_run(compound_goal, parameters={"goal": goal, "plan": plan})


def execute_goal_run(flow_run: FlowRun) -> State:
    state = run_flow(
        compound_goal, flow_run=flow_run, parameters=flow_run.parameters, return_type="state"
    )
    assert isinstance(state, State)
    return state


def cancel_goal_run(flow_run_id: UUID, why: str) -> None:
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run_id, Cancelled(message=why), force=True)
