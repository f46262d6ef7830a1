"""Recurring goals: Prefect deployment schedules on the goal deployment (`MISSION_DEPLOYMENT`),
with the goal (and its plan and budget) as the schedule's own parameters."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from prefect._vendor.croniter.croniter import croniter
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import DeploymentUpdate
from prefect.client.schemas.objects import DeploymentSchedule
from prefect.client.schemas.schedules import SCHEDULE_TYPES, CronSchedule, IntervalSchedule
from pydantic import ValidationError

from core.budget import Budget
from core.errors import InvalidInput
from core.plan import PlanLimits, check_goal, validate_plan
from flows.busy import when_not_busy
from flows.goal_runs import goal_deployment

MIN_INTERVAL_S = 60
MAX_INTERVAL_S = 366 * 24 * 3600
UPCOMING_RUNS = 1
# Every schedule we create has a slug: Prefect then updates a deployment's schedules by slug
# when it is registered again (`mission up`, `prefect deploy`) instead of replacing them all.
SLUG_PREFIX = "goal-"


class UnknownSchedule(InvalidInput):
    """No recurring goal has this id."""


@dataclass(frozen=True)
class ScheduleSpec:
    """A validated recurring goal: what to run (parameters) and when (the Prefect schedule)."""

    parameters: dict[str, Any]
    schedule: CronSchedule | IntervalSchedule
    active: bool


@dataclass(frozen=True)
class RecurringGoal:
    """A recurring goal as read back from Prefect."""

    id: UUID
    goal: str
    cron: str | None
    interval_s: int | None
    timezone: str
    active: bool
    parameters: dict[str, Any]
    next_runs: list[datetime]


def _error_text(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()))
        what = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {what}" if where and where not in ("cron", "timezone") else what)
    return "; ".join(parts)


def build_schedule(
    cron: str | None, interval_s: float | None, timezone: str, anchor: datetime | None = None
) -> CronSchedule | IntervalSchedule:
    """The Prefect schedule for a cron expression or an interval, or InvalidInput."""
    if (cron is None) == (interval_s is None):
        raise InvalidInput("give exactly one of cron or interval_s")
    try:
        if cron is not None:
            return CronSchedule(cron=cron.strip(), timezone=timezone)
        assert interval_s is not None
        if not MIN_INTERVAL_S <= interval_s <= MAX_INTERVAL_S:
            raise InvalidInput(
                f"the interval is {interval_s:g} s; it must be between {MIN_INTERVAL_S} s "
                f"(the shortest) and {MAX_INTERVAL_S} s (a year)"
            )
        return IntervalSchedule(
            interval=timedelta(seconds=interval_s),
            anchor_date=anchor or datetime.now(UTC),
            timezone=timezone,
        )
    except ValidationError as exc:
        raise InvalidInput(_error_text(exc)) from None


def build_spec(
    goal: str,
    *,
    cron: str | None = None,
    interval_s: float | None = None,
    timezone: str = "UTC",
    plan: dict[str, Any] | None = None,
    budget: dict[str, Any] | None = None,
    active: bool = True,
    max_goal_chars: int,
    limits: PlanLimits,
    anchor: datetime | None = None,
) -> ScheduleSpec:
    """Validate everything a recurring goal carries, once, here at the boundary."""
    goal = check_goal(goal, max_goal_chars)
    schedule = build_schedule(cron, interval_s, timezone, anchor)
    checked_plan = None
    if plan is not None:
        checked = validate_plan({**plan, "goal": goal}, limits)
        checked_plan = checked.model_dump(mode="json", exclude={"goal"})
    checked_budget = None
    if budget is not None:
        try:
            checked_budget = Budget.model_validate(budget).model_dump(exclude_none=True)
        except ValidationError as exc:
            raise InvalidInput(f"budget: {_error_text(exc)}") from None
    parameters = {"goal": goal, "plan": checked_plan, "approve": False, "budget": checked_budget}
    return ScheduleSpec(parameters=parameters, schedule=schedule, active=active)


def next_runs(schedule: CronSchedule | IntervalSchedule, count: int = 3) -> list[datetime]:
    """The next `count` start times of a schedule, from now."""
    now = datetime.now(UTC)
    if isinstance(schedule, CronSchedule):
        zone = ZoneInfo(schedule.timezone or "UTC")
        # The cron validator Prefect itself uses (vendored croniter), untyped.
        it = croniter(schedule.cron, now.astimezone(zone), day_or=schedule.day_or)  # type: ignore[no-untyped-call]
        starts: list[datetime] = [it.get_next(datetime) for _ in range(count)]  # type: ignore[no-untyped-call]
        return [start.astimezone(UTC) for start in starts]
    anchor = datetime.fromtimestamp(schedule.anchor_date.timestamp(), UTC)
    step = schedule.interval.total_seconds()
    behind = (now - anchor).total_seconds()
    steps = max(0, -(-behind // step))  # whole intervals until the first start not in the past
    return [anchor + timedelta(seconds=step * (steps + i)) for i in range(count)]


def _recurring(item: DeploymentSchedule) -> RecurringGoal | None:
    """A deployment schedule as a recurring goal; None for one that carries no goal (made in
    the Prefect UI without parameters, say) or is of a kind we do not show (RRule)."""
    schedule = item.schedule
    if not isinstance(item.parameters.get("goal"), str):
        return None
    if not isinstance(schedule, CronSchedule | IntervalSchedule):
        return None
    cron = schedule.cron if isinstance(schedule, CronSchedule) else None
    interval = (
        int(schedule.interval.total_seconds()) if isinstance(schedule, IntervalSchedule) else None
    )
    return RecurringGoal(
        id=item.id,
        goal=str(item.parameters.get("goal", "")),
        cron=cron,
        interval_s=interval,
        timezone=schedule.timezone or "UTC",
        active=item.active,
        parameters=dict(item.parameters),
        next_runs=next_runs(schedule) if item.active else [],
    )


async def create_schedule(
    client: PrefectClient, deployment: str, spec: ScheduleSpec
) -> RecurringGoal:
    """Add a recurring goal to the goal deployment."""
    deployment_id = await goal_deployment(client, deployment)
    schedule: SCHEDULE_TYPES = spec.schedule
    slug = f"{SLUG_PREFIX}{uuid.uuid4().hex[:12]}"
    created = await when_not_busy(
        lambda: client.create_deployment_schedules(
            deployment_id,
            [(schedule, spec.active)],
            # Only the next run is created ahead; its next start times are listed with it.
            max_scheduled_runs=UPCOMING_RUNS,
            parameters=spec.parameters,
            slug=slug,
        )
    )
    recurring = _recurring(created[0])
    assert recurring is not None
    await _wake_scheduler(client, deployment_id)
    return recurring


async def _wake_scheduler(client: PrefectClient, deployment_id: UUID) -> None:
    """Mark the deployment as just updated, so Prefect's scheduler service creates the
    schedule's runs within seconds (its loop for recently updated deployments) instead of on
    its next full loop (60 s); schedule changes alone do not mark it."""
    deployment = await client.read_deployment(deployment_id)
    update = DeploymentUpdate(description=deployment.description)
    await when_not_busy(lambda: client.update_deployment(deployment_id, update))


async def list_schedules(client: PrefectClient, deployment: str) -> list[RecurringGoal]:
    deployment_id = await goal_deployment(client, deployment)
    schedules = await client.read_deployment_schedules(deployment_id)
    return [r for item in schedules if (r := _recurring(item)) is not None]


async def read_schedule(client: PrefectClient, deployment: str, schedule_id: UUID) -> RecurringGoal:
    for recurring in await list_schedules(client, deployment):
        if recurring.id == schedule_id:
            return recurring
    raise UnknownSchedule(f"no recurring goal has id {schedule_id}")


async def set_active(
    client: PrefectClient, deployment: str, schedule_id: UUID, active: bool
) -> RecurringGoal:
    """Pause (False) or resume (True) a recurring goal. Pausing drops its upcoming runs at
    once; after a resume, Prefect's scheduler creates them within seconds."""
    recurring = await read_schedule(client, deployment, schedule_id)
    deployment_id = await goal_deployment(client, deployment)
    # Prefect 3.8's server resets a schedule's parameters to {} on any update that leaves
    # them out, so they are sent again.
    await when_not_busy(
        lambda: client.update_deployment_schedule(
            deployment_id, schedule_id, active=active, parameters=recurring.parameters
        )
    )
    await _wake_scheduler(client, deployment_id)
    return await read_schedule(client, deployment, schedule_id)


async def delete_schedule(client: PrefectClient, deployment: str, schedule_id: UUID) -> None:
    await read_schedule(client, deployment, schedule_id)
    deployment_id = await goal_deployment(client, deployment)
    await when_not_busy(lambda: client.delete_deployment_schedule(deployment_id, schedule_id))
