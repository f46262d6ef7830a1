"""When a recurring goal may run: a cron of 5 fields that fires within a year and never
sooner than MISSION_MIN_SCHEDULE_S after its last start, or an interval no shorter."""

from __future__ import annotations

from uuid import uuid4

import pytest
from prefect.client.schemas.objects import DeploymentSchedule
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule

from core.errors import InvalidInput
from services.schedules import _recurring, build_schedule, check_cron, next_runs


@pytest.mark.parametrize(
    ("cron", "says"),
    [
        ("* * * * * *", "has 6 fields; it needs 5"),
        ("0 0 31 2 *", "never fires (Bad day-of-month)"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 29 2 *", "more than a year from now"),  # a leap day: once in four years
    ],
)
def test_crons_that_fire_too_often_never_or_rarely_are_refused(cron: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=says.replace("(", r"\(").replace(")", r"\)")):
        build_schedule(cron, None, "UTC")


def test_the_floor_applies_to_crons_and_intervals_alike() -> None:
    assert check_cron("*/5 * * * *", "UTC", 300) == "*/5 * * * *"
    with pytest.raises(InvalidInput, match="starts runs 60 s apart; the shortest period is 300 s"):
        check_cron("0-10 8 * * *", "UTC", 300)  # every minute from 8:00 to 8:10
    with pytest.raises(InvalidInput, match="between 300 s"):
        build_schedule(None, 299, "UTC", min_period_s=300)
    assert isinstance(build_schedule(None, 300, "UTC", min_period_s=300), IntervalSchedule)


def test_macros_are_spelt_out_and_read_as_prefect_reads_them() -> None:
    hourly = build_schedule("@hourly", None, "Europe/Paris")
    assert isinstance(hourly, CronSchedule) and hourly.cron == "0 * * * *"
    starts = next_runs(hourly)
    assert len(starts) == 3 and all(s.minute == 0 for s in starts)


def test_a_schedule_stored_around_the_checks_is_listed_without_breaking_anything() -> None:
    stored = DeploymentSchedule(
        id=uuid4(),
        deployment_id=uuid4(),
        schedule=CronSchedule(cron="0 0 31 2 *"),
        active=True,
        parameters={"goal": "made in the Prefect UI", "plan": "not a plan", "budget": 5},
    )
    recurring = _recurring(stored)
    assert recurring is not None
    assert recurring.next_runs == [] and recurring.plan is None and recurring.budget is None
