"""Goal runs of the served deployment: submit, list, count, cancel, approve (for the API)."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.client.schemas.responses import SetStateStatus
from prefect.client.schemas.sorting import FlowRunSort
from prefect.exceptions import ObjectNotFound
from prefect.states import Cancelled, Cancelling, Crashed, Scheduled

from core.errors import InvalidInput, MissionError
from flows.busy import when_not_busy
from flows.compound_goal import FLOW_NAME
from flows.progress import UnknownGoalRun

STARTED = [StateType.PENDING, StateType.RUNNING, StateType.PAUSED, StateType.CANCELLING]
RETRYABLE = {StateType.FAILED, StateType.CRASHED, StateType.CANCELLED}
_GOALS = FlowFilter(name=FlowFilterName(any_=[FLOW_NAME]))


class NotServed(MissionError):
    """No runner has registered the compound-goal deployment: the stack is not up."""


class WrongState(InvalidInput):
    """The goal run is not in a state that allows this (e.g. approving a finished run)."""


async def read_goal_run(client: PrefectClient, flow_run_id: UUID) -> FlowRun:
    try:
        run = await client.read_flow_run(flow_run_id)
    except ObjectNotFound:
        raise UnknownGoalRun(f"no goal run has id {flow_run_id}") from None
    return run


def idempotency_tag(owner: str, key: str) -> str:
    """A tag naming one client's Idempotency-Key, without revealing the key."""
    return "idempotency:" + hashlib.sha256(f"{owner}\0{key}".encode()).hexdigest()[:24]


async def find_by_idempotency(client: PrefectClient, tag: str) -> FlowRun | None:
    runs = await client.read_flow_runs(
        flow_filter=_GOALS,
        flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[tag])),
        limit=1,
    )
    return runs[0] if runs else None


async def count_active(client: PrefectClient) -> int:
    """Goal runs that are due or started and not finished (each needs a runner slot). Runs a
    schedule has created for later are not counted until they are due."""
    started, due = await asyncio.gather(
        client.count_flow_runs(
            flow_filter=_GOALS,
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=STARTED))
            ),
        ),
        client.count_flow_runs(
            flow_filter=_GOALS,
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
                expected_start_time=FlowRunFilterExpectedStartTime(before_=datetime.now(UTC)),
            ),
        ),
    )
    return started + due


async def goal_deployment(client: PrefectClient, deployment_path: str) -> UUID:
    """The id of the goal deployment (`MISSION_DEPLOYMENT`: the one `mission up` serves, or
    the work-pool one of prefect.yaml)."""
    try:
        deployment = await client.read_deployment_by_name(deployment_path)
    except ObjectNotFound:
        raise NotServed(
            f"the {deployment_path} deployment does not exist; start the stack with "
            "`mission up` (or deploy prefect.yaml and start workers)"
        ) from None
    return deployment.id


async def submit_goal_run(
    client: PrefectClient, deployment_id: UUID, parameters: dict[str, Any], tag: str | None
) -> FlowRun:
    """Create a goal run of the goal deployment; its runner or a worker starts it within a
    poll."""
    return await when_not_busy(
        lambda: client.create_flow_run_from_deployment(
            deployment_id,
            parameters=parameters,
            tags=[tag] if tag else None,
            idempotency_key=tag,
        )
    )


async def list_goal_runs(client: PrefectClient, limit: int, offset: int) -> list[FlowRun]:
    """Goal runs that are due or have run, newest first. Runs a schedule created for later
    are left out: they would sort above everything that happened (a recurring goal's next
    runs are listed with the recurring goal instead)."""
    return await client.read_flow_runs(
        flow_filter=_GOALS,
        flow_run_filter=FlowRunFilter(
            expected_start_time=FlowRunFilterExpectedStartTime(before_=datetime.now(UTC))
        ),
        sort=FlowRunSort.EXPECTED_START_TIME_DESC,
        limit=limit,
        offset=offset,
    )


async def crash_active_runs(client: PrefectClient, deployment: str, why: str) -> list[UUID]:
    """Mark the deployment's goal runs that have (had) a process, Crashed: for when the
    process that ran them is known to be gone. Runs still waiting to start are left alone."""
    try:
        deployment_id = await goal_deployment(client, deployment)
    except NotServed:
        return []
    runs = await client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=STARTED))
        ),
    )
    for run in runs:
        await client.set_flow_run_state(run.id, Crashed(message=why), force=True)
    return [run.id for run in runs]


async def cancel_goal_run(client: PrefectClient, flow_run_id: UUID, why: str) -> FlowRun:
    """Ask for the run to stop. A run that has a process is set Cancelling (its runner then
    stops the process and sets Cancelled); one that never started is Cancelled at once."""
    run = await read_goal_run(client, flow_run_id)
    state = run.state
    if state is None or state.is_final():
        raise WrongState(
            f"goal run {flow_run_id} has already ended ({state.name if state else '-'})"
        )
    if state.type == StateType.CANCELLING:
        return run
    started = state.type in (StateType.RUNNING, StateType.PAUSED) and run.deployment_id is not None
    new_state: State[Any] = Cancelling(message=why) if started else Cancelled(message=why)
    result = await when_not_busy(
        lambda: client.set_flow_run_state(flow_run_id, new_state, force=True)
    )
    if result.status != SetStateStatus.ACCEPT:
        raise WrongState(f"goal run {flow_run_id} could not be cancelled: {result.details}")
    return await read_goal_run(client, flow_run_id)


async def retry_goal_run(client: PrefectClient, flow_run_id: UUID, why: str) -> FlowRun:
    """Run a goal run that ended Failed, Crashed or Cancelled again, as the same run: its
    runner or a worker picks it up within a poll, the plan and every subtask that finished
    come from their persisted results (state Cached), and only the rest call their models."""
    run = await read_goal_run(client, flow_run_id)
    state = run.state
    if state is None or state.type not in RETRYABLE:
        raise WrongState(
            f"goal run {flow_run_id} is {state.name if state else 'not started'}; only a "
            "Failed, Crashed or Cancelled goal run can be retried"
        )
    if run.deployment_id is None:
        raise WrongState(
            f"goal run {flow_run_id} was run by `mission run`, not by the service; "
            "run it again there"
        )
    retry: State[Any] = Scheduled(message=why)
    result = await when_not_busy(lambda: client.set_flow_run_state(flow_run_id, retry, force=True))
    if result.status != SetStateStatus.ACCEPT:
        raise WrongState(f"goal run {flow_run_id} could not be retried: {result.details}")
    return await read_goal_run(client, flow_run_id)


async def approve_goal_run(
    client: PrefectClient, flow_run_id: UUID, plan: dict[str, Any] | None
) -> None:
    """Resume a goal run paused for plan approval, with the (maybe edited) plan."""
    run = await read_goal_run(client, flow_run_id)
    if run.state is None or not run.state.is_paused():
        state = run.state.name if run.state else "no state"
        raise WrongState(f"goal run {flow_run_id} is not waiting for approval ({state})")
    result = await when_not_busy(
        lambda: client.resume_flow_run(flow_run_id, run_input={"plan": plan})
    )
    if result.status != SetStateStatus.ACCEPT:
        why = getattr(result.details, "reason", None) or result.status.value
        raise WrongState(f"goal run {flow_run_id} could not be resumed: {why}")
