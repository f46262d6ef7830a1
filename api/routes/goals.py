"""Goal runs over REST: submit, list, read progress, stream events, cancel, retry, approve."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from prefect.client.schemas.objects import FlowRun

from api import events
from api.auth import UserDep
from api.deps import ActiveRunsDep, DeltasDep, HubDep, PrefectDep, SettingsDep
from api.schemas import (
    Accepted,
    Approval,
    ErrorBody,
    GoalCreated,
    GoalList,
    GoalRequest,
    GoalSummary,
    PlanFile,
)
from api.streams import StreamSlotDep
from core.errors import InvalidInput
from core.goal_run import GoalParameters
from core.plan import SLUG_PATTERN, validate_plan
from core.progress import ProgressDocument
from core.states import bucket_of
from services import goal_runs
from services.prefect_reads import prefect_run_url
from services.progress import (
    SubtaskDetail,
    read_goal_run,
    read_plan,
    read_progress,
    read_subtask,
)

router = APIRouter(
    prefix="/task",
    tags=["goals"],
    responses={
        401: {"model": ErrorBody, "description": "not authenticated"},
        422: {"model": ErrorBody, "description": "the request is invalid; the detail says why"},
        503: {"model": ErrorBody, "description": "the Prefect server is unreachable"},
    },
)
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "no goal run has this id"}
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "the goal run's state does not allow this"}
}


def _created(request: Request, run: FlowRun) -> GoalCreated:
    return GoalCreated(
        id=str(run.id),
        state=run.state.name if run.state else "Scheduled",
        progress_url=str(request.url_for("goal_progress", flow_run_id=run.id)),
        events_url=str(request.url_for("goal_events", flow_run_id=run.id)),
        prefect_url=prefect_run_url(run.id),
    )


def _too_many(active: int, limit: int) -> JSONResponse:
    return JSONResponse(
        {"detail": f"{active} goal runs are active, the limit is {limit}"},
        status_code=429,
        headers={"Retry-After": "10"},
    )


@router.post(
    "/compound",
    status_code=202,
    response_model=GoalCreated,
    responses={
        413: {"model": ErrorBody, "description": "the request body is too large"},
        429: {"model": ErrorBody, "description": "too many goal runs are active"},
    },
)
async def submit_goal(
    body: GoalRequest,
    request: Request,
    user: UserDep,
    settings: SettingsDep,
    prefect: PrefectDep,
    active_runs: ActiveRunsDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Any:
    """Start a goal run. The same `Idempotency-Key` (per client) returns the same run."""
    parameters = GoalParameters.build(
        body.goal,
        plan=body.plan,
        approve=body.approve,
        budget=body.budget,
        max_goal_chars=settings.max_goal_chars,
        limits=settings.plan_limits(),
    )
    tag = goal_runs.idempotency_tag(user.name, idempotency_key) if idempotency_key else None
    await goal_runs.known_goal_deployment(prefect, settings.deployment)  # 503 before the count
    if tag is not None and (earlier := await goal_runs.find_by_idempotency(prefect, tag)):
        if earlier.parameters != parameters.as_prefect():
            raise InvalidInput("this Idempotency-Key was already used for a different request")
        return _created(request, earlier)
    if (active := await active_runs.admit(prefect, settings.max_active_runs)) is not None:
        return _too_many(active, settings.max_active_runs)
    try:
        # Two submissions with the same key at once: Prefect's own idempotency key makes
        # them one goal run.
        run = await goal_runs.submit_goal_run(prefect, settings.deployment, parameters, tag)
    except BaseException:
        active_runs.release()
        raise
    return _created(request, run)


@router.get("", response_model=GoalList)
async def list_goals(
    request: Request,
    user: UserDep,
    prefect: PrefectDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> GoalList:
    """Recent goal runs, newest first."""
    runs = await goal_runs.list_goal_runs(prefect, limit + 1, offset)
    items = [
        GoalSummary(
            id=str(run.id),
            goal=str(run.parameters.get("goal", "")),
            state=run.state.name if run.state else "Scheduled",
            bucket=bucket_of(run.state.name if run.state and run.state.name else "Scheduled"),
            message=run.state.message if run.state else None,
            created_at=run.created,
            started_at=run.start_time,
            ended_at=run.end_time,
            progress_url=str(request.url_for("goal_progress", flow_run_id=run.id)),
            prefect_url=prefect_run_url(run.id),
        )
        for run in runs[:limit]
    ]
    more = len(runs) > limit
    return GoalList(
        items=items, limit=limit, offset=offset, next_offset=offset + limit if more else None
    )


@router.get("/{flow_run_id}/progress", response_model=ProgressDocument, responses=NOT_FOUND)
async def goal_progress(
    flow_run_id: UUID, user: UserDep, prefect: PrefectDep, hub: HubDep
) -> ProgressDocument:
    """The progress document: the event-fed one when someone watches the run, else read from
    the Prefect API."""
    return hub.latest(flow_run_id) or await read_progress(prefect, flow_run_id)


@router.get(
    "/{flow_run_id}/subtasks/{subtask_id}", response_model=SubtaskDetail, responses=NOT_FOUND
)
async def subtask_detail(
    flow_run_id: UUID,
    subtask_id: Annotated[str, Path(max_length=40, pattern=SLUG_PATTERN)],
    user: UserDep,
    prefect: PrefectDep,
) -> SubtaskDetail:
    """One subtask's full output, learned line and error."""
    await read_goal_run(prefect, flow_run_id)
    return await read_subtask(prefect, flow_run_id, subtask_id)


@router.get("/{flow_run_id}/plan", response_model=PlanFile, responses=NOT_FOUND)
async def goal_plan(flow_run_id: UUID, user: UserDep, prefect: PrefectDep) -> dict[str, Any]:
    """The goal run's plan in the plan file's format (instructions included): what
    `approve` accepts, edited."""
    await read_goal_run(prefect, flow_run_id)
    return await read_plan(prefect, flow_run_id)


async def existing_goal_run(flow_run_id: UUID, prefect: PrefectDep) -> UUID:
    """The goal run id, or 404 before a stream starts (a stream's status is sent first)."""
    await read_goal_run(prefect, flow_run_id)
    return flow_run_id


def _json_error(description: str) -> dict[str, Any]:
    """An error answered as JSON on a route whose own media type is not JSON."""
    schema = {"$ref": "#/components/schemas/ErrorBody"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


@router.get(
    "/{flow_run_id}/events",
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "progress documents"},
        401: _json_error("not authenticated"),
        404: _json_error("no goal run has this id"),
        422: _json_error("the request is invalid; the detail says why"),
        429: _json_error("this client holds MISSION_MAX_STREAMS_PER_CLIENT streams already"),
        503: _json_error("the Prefect server is unreachable"),
    },
    response_class=EventSourceResponse,
)
async def goal_events(
    flow_run_id: Annotated[UUID, Depends(existing_goal_run)],
    user: UserDep,
    slot: StreamSlotDep,
    settings: SettingsDep,
    hub: HubDep,
    deltas: DeltasDep,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> AsyncIterator[ServerSentEvent]:
    """Server-Sent Events: one `progress` message (the whole document) per change, pushed
    from Prefect's event stream; `delta` messages (`{"subtask", "text"}`, text to append) while
    a subtask's model writes, the first for each subtask with `"restart": true` and its text so
    far; `: heartbeat` comments while nothing changes; an `end` message after the final
    document. The event id is the document's version: reconnecting with `Last-Event-ID`
    skips a document the client already has. A client holds at most
    `MISSION_MAX_STREAMS_PER_CLIENT` at once (per API process)."""
    async for event in events.goal_events(
        hub, deltas, flow_run_id, settings.events_heartbeat_s, last_event_id
    ):
        yield event


@router.post(
    "/{flow_run_id}/cancel",
    status_code=202,
    response_model=Accepted,
    responses=NOT_FOUND | CONFLICT,
)
async def cancel_goal(flow_run_id: UUID, user: UserDep, prefect: PrefectDep) -> Accepted:
    """Stop the goal run: it becomes Cancelling, then Cancelled once its process has stopped."""
    run = await goal_runs.cancel_goal_run(prefect, flow_run_id, f"cancelled by {user.name}")
    return Accepted(
        id=str(run.id), state=run.state.name if run.state else "-", message="cancelling"
    )


@router.post(
    "/{flow_run_id}/retry",
    status_code=202,
    response_model=Accepted,
    responses=NOT_FOUND
    | CONFLICT
    | {429: {"model": ErrorBody, "description": "too many goal runs are active"}},
)
async def retry_goal(
    flow_run_id: UUID,
    user: UserDep,
    settings: SettingsDep,
    prefect: PrefectDep,
    active_runs: ActiveRunsDep,
) -> Any:
    """Run a Failed, Crashed or Cancelled goal run again, as the same run: subtasks that
    finished are taken from their persisted results (Cached); only the rest call models."""
    await read_goal_run(prefect, flow_run_id)  # 404 before the cap's 429
    if (active := await active_runs.admit(prefect, settings.max_active_runs)) is not None:
        return _too_many(active, settings.max_active_runs)
    try:
        run = await goal_runs.retry_goal_run(prefect, flow_run_id, f"retried by {user.name}")
    except BaseException:
        active_runs.release()
        raise
    state = run.state.name if run.state else "Scheduled"
    return Accepted(id=str(run.id), state=state, message="retrying")


@router.post(
    "/{flow_run_id}/approve",
    status_code=202,
    response_model=Accepted,
    responses=NOT_FOUND | CONFLICT,
)
async def approve_goal(
    flow_run_id: UUID,
    user: UserDep,
    settings: SettingsDep,
    prefect: PrefectDep,
    body: Approval | None = None,
) -> Accepted:
    """Resume a goal run paused for approval, optionally with an edited plan (validated)."""
    plan = None
    if body is not None and body.plan is not None:
        run = await read_goal_run(prefect, flow_run_id)
        goal = str(run.parameters.get("goal", ""))
        checked = validate_plan({**body.plan, "goal": goal}, settings.plan_limits())
        plan = checked.model_dump(mode="json", exclude={"goal"})
    await goal_runs.approve_goal_run(prefect, flow_run_id, plan)
    return Accepted(id=str(flow_run_id), state="Running", message="approved")


@router.post(
    "/{flow_run_id}/reject",
    status_code=202,
    response_model=Accepted,
    responses=NOT_FOUND | CONFLICT,
)
async def reject_goal(flow_run_id: UUID, user: UserDep, prefect: PrefectDep) -> Accepted:
    """Reject the plan of a paused goal run: the run is cancelled."""
    run = await read_goal_run(prefect, flow_run_id)
    if run.state is None or not run.state.is_paused():
        raise goal_runs.WrongState(f"goal run {flow_run_id} is not waiting for approval")
    run = await goal_runs.cancel_goal_run(prefect, flow_run_id, f"plan rejected by {user.name}")
    return Accepted(id=str(run.id), state=run.state.name if run.state else "-", message="rejected")
