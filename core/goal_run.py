"""What a goal run is in Prefect: the flow and deployment names, its parameters (one model
for the API, schedules and the CLI), and how its subtasks' task runs are named."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, ValidationError

from core.budget import Budget
from core.errors import InvalidInput
from core.plan import PlanLimits, Subtask, check_goal, validate_plan

FLOW_NAME = "compound-goal"
DEPLOYMENT_NAME = "compound-goal"
DEPLOYMENT_PATH = f"{FLOW_NAME}/{DEPLOYMENT_NAME}"
# Emitted by a goal-run process the moment it has stopped starting work after a cancel; the
# API waits for it before it answers the cancel request.
STOPPING_EVENT = "mission.goal-run.stopping"

# A subtask's task run is named `<id>: <title>`; the planner's and joiner's names contain no
# colon, so this tells a subtask's run from theirs and gives its id.
SUBTASK_RUN_NAME = re.compile(r"^([a-z0-9][a-z0-9_-]{0,39}): ")


def subtask_run_name(subtask: Subtask) -> str:
    """`<id>: <title>`, escaped so Prefect does not read the title as a format string."""
    return f"{subtask.id}: {subtask.title}".replace("{", "{{").replace("}", "}}")


def subtask_id_of(task_run_name: str) -> str | None:
    match = SUBTASK_RUN_NAME.match(task_run_name)
    return match.group(1) if match else None


class GoalParameters(BaseModel):
    """The parameters of one goal run of the `compound-goal` flow, validated.

    `plan` is a validated plan without its goal (the goal is its own parameter); `budget`
    holds only the limits that are set.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    goal: str
    plan: dict[str, Any] | None = None
    approve: bool = False
    budget: dict[str, Any] | None = None

    @classmethod
    def build(
        cls,
        goal: str,
        *,
        plan: dict[str, Any] | None = None,
        approve: bool = False,
        budget: Budget | dict[str, Any] | None = None,
        max_goal_chars: int,
        limits: PlanLimits,
    ) -> GoalParameters:
        """Check everything a goal run will carry, once, here at the boundary."""
        goal = check_goal(goal, max_goal_chars)
        checked_plan = None
        if plan is not None:
            checked = validate_plan({**plan, "goal": goal}, limits)
            checked_plan = checked.model_dump(mode="json", exclude={"goal"})
        checked_budget = None
        if budget is not None:
            try:
                model = budget if isinstance(budget, Budget) else Budget.model_validate(budget)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise InvalidInput(f"budget: {where}: {first['msg']}") from None
            checked_budget = model.model_dump(exclude_none=True) or None
        return cls(goal=goal, plan=checked_plan, approve=approve, budget=checked_budget)

    def as_prefect(self) -> dict[str, Any]:
        """The flow run's parameters, as Prefect stores them."""
        return self.model_dump()


# Emitted by a goal run that a recurring goal started, as it ends; its `notify` automation
# (services/notify.py) follows it and POSTs the payload (core.goal_run.EndedPayload keys).
ENDED_EVENT = "mission.goal-run.ended"


def schedule_resource(schedule_id: object) -> str:
    """The event resource id naming a recurring goal (a deployment schedule)."""
    return f"mission.schedule.{schedule_id}"


def prefect_run_url(flow_run_id: UUID | str) -> str:
    """The goal run's page in the Prefect UI."""
    # Imported here: the CLI imports this module before `connect` points Prefect's settings
    # at the server (they are read once, when Prefect is first imported).
    from prefect.settings import PREFECT_UI_URL

    base = PREFECT_UI_URL.value() or ""
    return f"{base.rstrip('/')}/runs/flow-run/{flow_run_id}"
