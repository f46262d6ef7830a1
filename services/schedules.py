"""Recurring goals: Prefect deployment schedules on the goal deployment (`MISSION_DEPLOYMENT`),
with the goal (and its plan and budget) as the schedule's own parameters."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import DeploymentUpdate
from prefect.client.schemas.objects import DeploymentSchedule
from prefect.client.schemas.schedules import SCHEDULE_TYPES, CronSchedule, IntervalSchedule
from pydantic import ValidationError

from core.budget import Budget
from core.errors import InvalidInput
from core.goal_run import GoalParameters
from core.plan import PlanLimits
from core.web_guard import Allowlist
from services.busy import when_not_busy
from services.goal_runs import WrongState, goal_deployment
from services.notify import Notify, add_notify, check_notify, notify_urls, remove_notify

log = logging.getLogger(__name__)

MIN_INTERVAL_S = 60  # the default floor (MISSION_MIN_SCHEDULE_S)
MAX_INTERVAL_S = 366 * 24 * 3600
# A cron expression must fire within a year, like the longest interval.
FIRES_WITHIN = timedelta(seconds=MAX_INTERVAL_S)
# How many of a cron's next start times are checked against the floor (a 5-field cron fires
# at most once a minute, so with the default floor of 60 s none need be).
STARTS_CHECKED = 1000
# Prefect (croniter) reads these; they are spelt out so cronsim reads them the same way.
CRON_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
UPCOMING_RUNS = 1
# Every schedule we create has a slug: Prefect then updates a deployment's schedules by slug
# when it is registered again (`mission up`, `prefect deploy`) instead of replacing them all.
SLUG_PREFIX = "goal-"


class UnknownSchedule(InvalidInput):
    """No recurring goal has this id."""


class TooManySchedules(WrongState):
    """The goal deployment already has MISSION_MAX_SCHEDULES recurring goals."""


@dataclass(frozen=True)
class ScheduleSpec:
    """A validated recurring goal: what to run (parameters) and when (the Prefect schedule)."""

    parameters: GoalParameters
    schedule: CronSchedule | IntervalSchedule
    active: bool
    notify: Notify | None = None  # a webhook told of each run's end


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
    notify: str | None = None

    @property
    def plan(self) -> dict[str, Any] | None:
        """The ready plan it runs, if any (a schedule made around the API may carry
        anything there: only a mapping is a plan)."""
        plan = self.parameters.get("plan")
        return plan if isinstance(plan, dict) else None

    @property
    def budget(self) -> dict[str, Any] | None:
        budget = self.parameters.get("budget")
        return budget if isinstance(budget, dict) else None


def _error_text(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()))
        what = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {what}" if where and where not in ("cron", "timezone") else what)
    return "; ".join(parts)


def _starts(cron: str, timezone: str, after: datetime) -> Iterator[datetime]:
    """A cron expression's start times after `after`, in UTC, read as Prefect reads them."""
    zone = ZoneInfo(timezone or "UTC")
    for start in CronSim(cron, after.astimezone(zone)):
        yield start.astimezone(UTC)


def check_cron(cron: str, timezone: str, min_period_s: int) -> str:
    """The cron expression (5 fields; a macro such as @daily spelt out) when it fires within
    a year and never sooner than `min_period_s` after its last start; else InvalidInput."""
    text = CRON_MACROS.get(cron.strip().lower(), cron.strip())
    fields = len(text.split())
    if fields != 5:
        raise InvalidInput(
            f"the cron expression {cron!r} has {fields} fields; it needs 5 (minute hour "
            "day-of-month month day-of-week): a seconds field is not accepted"
        )
    now = datetime.now(UTC)
    starts = _starts(text, timezone, now)
    try:
        first = next(starts)
    except CronSimError as exc:
        raise InvalidInput(f"the cron expression {cron!r} never fires ({exc})") from None
    except StopIteration:
        raise InvalidInput(f"the cron expression {cron!r} never fires") from None
    if first - now > FIRES_WITHIN:
        raise InvalidInput(
            f"the cron expression {cron!r} first fires on {first:%Y-%m-%d}, more than a year "
            "from now; a recurring goal must run at least once a year"
        )
    if min_period_s > 60:  # 5 fields fire at most once a minute: only a higher floor can bite
        last = first
        for _, start in zip(range(STARTS_CHECKED), starts, strict=False):
            gap = (start - last).total_seconds()
            if gap < min_period_s:
                raise InvalidInput(
                    f"the cron expression {cron!r} starts runs {gap:g} s apart; the shortest "
                    f"period is {min_period_s} s (MISSION_MIN_SCHEDULE_S)"
                )
            last = start
    return text


def build_schedule(
    cron: str | None,
    interval_s: float | None,
    timezone: str,
    anchor: datetime | None = None,
    min_period_s: int = MIN_INTERVAL_S,
) -> CronSchedule | IntervalSchedule:
    """The Prefect schedule for a cron expression or an interval, or InvalidInput. Runs are
    never closer than `min_period_s` (MISSION_MIN_SCHEDULE_S), a cron fires within a year."""
    if (cron is None) == (interval_s is None):
        raise InvalidInput("give exactly one of cron or interval_s")
    try:
        if cron is not None:
            # Prefect's own check first (syntax, timezone), then when it fires.
            CronSchedule(cron=cron.strip(), timezone=timezone)
            return CronSchedule(cron=check_cron(cron, timezone, min_period_s), timezone=timezone)
        assert interval_s is not None
        if not min_period_s <= interval_s <= MAX_INTERVAL_S:
            raise InvalidInput(
                f"the interval is {interval_s:g} s; it must be between {min_period_s} s "
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
    budget: Budget | dict[str, Any] | None = None,
    active: bool = True,
    max_goal_chars: int,
    limits: PlanLimits,
    anchor: datetime | None = None,
    min_period_s: int = MIN_INTERVAL_S,
    notify: str | None = None,
    notify_allow: Allowlist | None = None,
) -> ScheduleSpec:
    """Validate everything a recurring goal carries, once, here at the boundary; `notify`
    must pass the SSRF guard unless `notify_allow` (MISSION_NOTIFY_ALLOW) covers it."""
    parameters = GoalParameters.build(
        goal, plan=plan, budget=budget, max_goal_chars=max_goal_chars, limits=limits
    )
    schedule = build_schedule(cron, interval_s, timezone, anchor, min_period_s)
    checked = check_notify(notify, notify_allow or Allowlist()) if notify else None
    return ScheduleSpec(parameters=parameters, schedule=schedule, active=active, notify=checked)


def next_runs(schedule: CronSchedule | IntervalSchedule, count: int = 3) -> list[datetime]:
    """The next `count` start times of a schedule, from now."""
    now = datetime.now(UTC)
    if isinstance(schedule, CronSchedule):
        cron = CRON_MACROS.get(schedule.cron.strip().lower(), schedule.cron)
        starts = _starts(cron, schedule.timezone or "UTC", now)
        return [start for _, start in zip(range(count), starts, strict=False)]
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
    upcoming: list[datetime] = []
    if item.active:
        try:
            upcoming = next_runs(schedule)
        except Exception as exc:  # one schedule stored around our checks must not break a list
            log.warning("recurring goal %s: no next runs (%s)", item.id, exc)
    return RecurringGoal(
        id=item.id,
        goal=str(item.parameters.get("goal", "")),
        cron=cron,
        interval_s=interval,
        timezone=schedule.timezone or "UTC",
        active=item.active,
        parameters=dict(item.parameters),
        next_runs=upcoming,
    )


async def create_schedule(
    client: PrefectClient,
    deployment: str,
    spec: ScheduleSpec,
    max_schedules: int,
    page_url: str = "",
) -> RecurringGoal:
    """Add a recurring goal to the goal deployment, unless it has `max_schedules` already;
    with `notify`, its automation too (`page_url`: where the webhook's links point)."""
    existing = await list_schedules(client, deployment)
    if len(existing) >= max_schedules:
        raise TooManySchedules(
            f"there are {len(existing)} recurring goals, the limit is {max_schedules} "
            "(MISSION_MAX_SCHEDULES); delete one first"
        )
    deployment_id = await goal_deployment(client, deployment)
    schedule: SCHEDULE_TYPES = spec.schedule
    slug = f"{SLUG_PREFIX}{uuid.uuid4().hex[:12]}"
    created = await when_not_busy(
        lambda: client.create_deployment_schedules(
            deployment_id,
            [(schedule, spec.active)],
            # Only the next run is created ahead; its next start times are listed with it.
            max_scheduled_runs=UPCOMING_RUNS,
            parameters=spec.parameters.as_prefect(),
            slug=slug,
        )
    )
    recurring = _recurring(created[0])
    assert recurring is not None
    if spec.notify is not None:
        try:
            await add_notify(client, recurring.id, spec.notify, page_url)
        except BaseException:  # no recurring goal whose webhook was promised but never set
            await remove_notify(client, recurring.id)
            await client.delete_deployment_schedule(deployment_id, recurring.id)
            raise
        recurring = replace(recurring, notify=spec.notify.url)
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
    found = [r for item in schedules if (r := _recurring(item)) is not None]
    urls = await notify_urls(client) if found else {}
    return [replace(r, notify=urls.get(r.id)) for r in found]


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
    await remove_notify(client, schedule_id)
