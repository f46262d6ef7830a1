"""Goal runs of the goal deployment: submit, list, count, cancel, retry, approve."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
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
from prefect.events.clients import PrefectEventSubscriber, get_events_subscriber
from prefect.events.filters import EventAnyResourceFilter, EventFilter, EventNameFilter
from prefect.exceptions import ObjectNotFound
from prefect.states import Cancelled, Cancelling, Scheduled

from core.errors import InvalidInput, MissionError
from core.goal_run import FLOW_NAME, STOPPING_EVENT, GoalParameters
from core.states import ACTIVE_TYPES, RETRYABLE_TYPES
from services.busy import when_not_busy
from services.progress import read_goal_run

ACTIVE = [StateType(t) for t in ACTIVE_TYPES]
RETRYABLE = {StateType(t) for t in RETRYABLE_TYPES}
_GOALS = FlowFilter(name=FlowFilterName(any_=[FLOW_NAME]))
# How long a cancel waits for the goal-run process to say it has stopped starting work
# (about 20 ms here); past it, the answer goes anyway and the runner's kill is the fallback.
STOP_ACK_S = 2.0
HELD = {StateType.PENDING, StateType.RUNNING, StateType.PAUSED}  # a runner's process has it
STOPPED = {StateType.CANCELLING, StateType.CANCELLED}


class NotServed(MissionError):
    """No runner has registered the compound-goal deployment: the stack is not up."""


class WrongState(InvalidInput):
    """The goal run is not in a state that allows this (e.g. approving a finished run)."""


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
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=ACTIVE))
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


_deployment_ids: dict[str, UUID] = {}


async def known_goal_deployment(client: PrefectClient, deployment_path: str) -> UUID:
    """`goal_deployment`, read once per process: registering the deployment again keeps its
    id (submit_goal_run forgets it when the server no longer knows it)."""
    if deployment_path not in _deployment_ids:
        _deployment_ids[deployment_path] = await goal_deployment(client, deployment_path)
    return _deployment_ids[deployment_path]


async def submit_goal_run(
    client: PrefectClient, deployment_path: str, parameters: GoalParameters, tag: str | None
) -> FlowRun:
    """Create a goal run of the goal deployment; its runner or a worker starts it."""

    async def create() -> FlowRun:
        deployment_id = await known_goal_deployment(client, deployment_path)
        return await when_not_busy(
            lambda: client.create_flow_run_from_deployment(
                deployment_id,
                parameters=parameters.as_prefect(),
                tags=[tag] if tag else None,
                idempotency_key=tag,
            )
        )

    try:
        return await create()
    except ObjectNotFound:  # the deployment was made anew (a new Prefect database)
        _deployment_ids.pop(deployment_path, None)
        return await create()


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


async def cancel_goal_run(
    client: PrefectClient, flow_run_id: UUID, why: str, ack_s: float = STOP_ACK_S
) -> FlowRun:
    """Stop the run. One that no process holds yet is Cancelled at once (a runner cannot
    claim it then: Prefect refuses Pending after Cancelled). One a process holds (Pending,
    Running, Paused) is asked to stop: Cancelling, proposed, never forced, so a run that
    ended meanwhile keeps its outcome. Its process learns of it from its own state's event,
    stops starting work and aborts what is in flight, says so (STOPPING_EVENT), then ends
    Cancelled. This waits for that word, up to `ack_s`, so that once the caller has its
    answer, no model request of the run starts any more."""
    run = await read_goal_run(client, flow_run_id)
    state = run.state
    if state is None or state.is_final():
        raise WrongState(
            f"goal run {flow_run_id} has already ended ({state.name if state else '-'})"
        )
    if state.type == StateType.CANCELLING:
        return run
    held = state.type in HELD and run.deployment_id is not None
    new_state: State[Any] = Cancelling(message=why) if held else Cancelled(message=why)
    async with contextlib.AsyncExitStack() as stack:
        # Subscribed before the state is set, so the word cannot come before we listen.
        stopping = await stack.enter_async_context(_stopping_events(flow_run_id)) if held else None
        result = await when_not_busy(
            lambda: client.set_flow_run_state(flow_run_id, new_state, force=not held)
        )
        stopped = result.state is not None and result.state.type in STOPPED
        if not stopped:  # refused: it ended (or changed hands) between the read and now
            now = (await read_goal_run(client, flow_run_id)).state
            if now is not None and now.is_final():
                raise WrongState(f"goal run {flow_run_id} has already ended ({now.name})")
            raise WrongState(f"goal run {flow_run_id} could not be cancelled: {result.details}")
        if stopping is not None and result.state is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_first_since(stopping, result.state.timestamp), ack_s)
    return await read_goal_run(client, flow_run_id)


def _stopping_events(flow_run_id: UUID) -> PrefectEventSubscriber:
    """The process's word that it stopped, or the run's end (a process that ended before it
    could say so: the runner marks its run Cancelled)."""
    return get_events_subscriber(
        filter=EventFilter(
            event=EventNameFilter(name=[STOPPING_EVENT, "prefect.flow-run.Cancelled"]),
            any_resource=EventAnyResourceFilter(id=[f"prefect.flow-run.{flow_run_id}"]),
        )
    )


async def _first_since(events: PrefectEventSubscriber, since: datetime) -> None:
    """The first event that occurred at `since` or later (the stream replays the last
    minute: an earlier attempt's word does not count)."""
    async for event in events:
        if event.occurred >= since:
            return


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
