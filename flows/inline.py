"""Run a goal (or only plan it) in this process against the configured Prefect server: the
`mission run` and `mission plan` path, with no runner in between."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, State
from prefect.flow_engine import run_flow
from prefect.states import Cancelling

from core.goal_run import GoalParameters
from core.plan import Plan
from core.prefect_compat import lean_goal_run
from core.settings import Settings, get_settings
from core.stream import Delta
from flows.compound_goal import compound_goal
from tasks.deltas import deltas
from tasks.ledger import ledger_of
from tasks.planner import make_plan


def plan_here(goal: str, settings: Settings) -> Plan:
    """The planner's validated plan for `goal`, made in this process (no goal run)."""
    return make_plan(goal, settings)


def create_goal_run(parameters: GoalParameters) -> FlowRun:
    """Create the goal run first, so its id is known before it starts."""
    with get_client(sync_client=True) as client:
        return client.create_flow_run(compound_goal, parameters=parameters.as_prefect())


def execute_goal_run(flow_run: FlowRun) -> State:
    with lean_goal_run():
        state = run_flow(
            compound_goal, flow_run=flow_run, parameters=flow_run.parameters, return_type="state"
        )
    assert isinstance(state, State)
    return state


def follow_streamed(listener: Callable[[Delta], None]) -> None:
    """Have `listener` called with every delta of the goal runs of this process (from the
    thread that sends them)."""
    deltas(get_settings()).listeners.append(listener)


def cancel_goal_run(flow_run_id: UUID, why: str) -> None:
    """Stop a goal run running in this process at once, and tell Prefect it is cancelling
    (the flow then ends it Cancelled)."""
    ledger = ledger_of(flow_run_id)
    if ledger is not None:
        ledger.stop.set(why)
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run_id, Cancelling(message=why), force=True)
