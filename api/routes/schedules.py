"""Recurring goals over REST: create, list, pause, resume and delete schedules."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, Response

from api.auth import UserDep
from api.deps import PrefectDep, SettingsDep, WritesDep
from api.schemas import ErrorBody, Schedule, ScheduleList, ScheduleRequest
from services import schedules
from services.schedules import RecurringGoal

router = APIRouter(
    prefix="/schedules",
    tags=["schedules"],
    responses={
        401: {"model": ErrorBody, "description": "not authenticated"},
        422: {"model": ErrorBody, "description": "the request is invalid; the detail says why"},
        503: {
            "model": ErrorBody,
            "description": "the Prefect server is unreachable or no "
            "runner has registered the deployment yet",
        },
    },
)
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "no recurring goal has this id"}
}
FULL: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "there are MISSION_MAX_SCHEDULES recurring goals"}
}


def _schedule(recurring: RecurringGoal) -> Schedule:
    return Schedule(
        id=str(recurring.id),
        goal=recurring.goal,
        cron=recurring.cron,
        interval_s=recurring.interval_s,
        timezone=recurring.timezone,
        active=recurring.active,
        plan=recurring.plan,
        budget=recurring.budget,
        next_runs=recurring.next_runs,
        notify=recurring.notify,
    )


@router.post("", status_code=201, response_model=Schedule, responses=FULL)
async def create_schedule(
    body: ScheduleRequest,
    request: Request,
    user: UserDep,
    settings: SettingsDep,
    prefect: PrefectDep,
    writes: WritesDep,
) -> Schedule:
    """Run a goal on a cron schedule (in a timezone) or every `interval_s` seconds, never
    more often than every `MISSION_MIN_SCHEDULE_S`; a cron must fire within a year. Its runs
    are ordinary goal runs: they appear in `GET /task` and on the page. With `notify`, each
    run's end is POSTed to that webhook by a Prefect automation."""
    spec = schedules.build_spec(
        body.goal,
        cron=body.cron,
        interval_s=body.interval_s,
        timezone=body.timezone,
        plan=body.plan,
        budget=body.budget,
        active=body.active,
        max_goal_chars=settings.max_goal_chars,
        limits=settings.plan_limits(),
        min_period_s=settings.min_schedule_s,
        notify=body.notify,
        notify_allow=settings.notify_allow,
    )
    page_url = str(request.base_url).rstrip("/")
    async with writes:  # the count and the create, one creation at a time
        created = await schedules.create_schedule(
            prefect, settings.deployment, spec, settings.max_schedules, page_url
        )
    return _schedule(created)


@router.get("", response_model=ScheduleList)
async def list_schedules(user: UserDep, settings: SettingsDep, prefect: PrefectDep) -> ScheduleList:
    """Every recurring goal of the goal deployment (`MISSION_DEPLOYMENT`)."""
    found = await schedules.list_schedules(prefect, settings.deployment)
    return ScheduleList(items=[_schedule(r) for r in found])


@router.post("/{schedule_id}/pause", response_model=Schedule, responses=NOT_FOUND)
async def pause_schedule(
    schedule_id: UUID, user: UserDep, settings: SettingsDep, prefect: PrefectDep
) -> Schedule:
    """Stop creating runs (its upcoming scheduled runs are dropped)."""
    paused = await schedules.set_active(prefect, settings.deployment, schedule_id, active=False)
    return _schedule(paused)


@router.post("/{schedule_id}/resume", response_model=Schedule, responses=NOT_FOUND)
async def resume_schedule(
    schedule_id: UUID, user: UserDep, settings: SettingsDep, prefect: PrefectDep
) -> Schedule:
    """Start creating runs again."""
    resumed = await schedules.set_active(prefect, settings.deployment, schedule_id, active=True)
    return _schedule(resumed)


@router.delete("/{schedule_id}", status_code=204, responses=NOT_FOUND)
async def delete_schedule(
    schedule_id: UUID, user: UserDep, settings: SettingsDep, prefect: PrefectDep
) -> Response:
    """Remove the recurring goal; goal runs it already started are kept."""
    await schedules.delete_schedule(prefect, settings.deployment, schedule_id)
    return Response(status_code=204)
