"""The compound-goal flow: plan (or take a plan) -> compile -> execute -> join."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect import allow_failure, flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.client.schemas.objects import State
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.futures import PrefectFuture
from prefect.input import RunInput
from prefect.runtime import flow_run
from prefect.states import Cancelled, Completed, Failed
from prefect.task_runners import ThreadPoolTaskRunner

from core.budget import Budget
from core.plan import Plan, check_goal, validate_plan
from core.settings import Settings, get_settings
from flows.compile import compile_plan
from tasks import records
from tasks.budget import close_budget, halt, open_budget, seconds_left
from tasks.join import join_results, missing_note
from tasks.planner import plan_goal
from tasks.tier_gate import ensure_tier_limits, tier_tags_without_leases

FLOW_NAME = "compound-goal"
# Every subtask holds a worker thread while it waits for its dependencies; threads are made
# on demand, so this is only the ceiling (settings cap a plan far below it).
MAX_THREADS = 256
# How often a goal run paused for approval asks the server whether it was resumed.
APPROVAL_POLL_S = 1


def _run_name() -> str:
    goal = " ".join(str(flow_run.parameters.get("goal") or "goal").split())
    return goal if len(goal) <= 60 else goal[:57] + "..."


def _answer(joined: PrefectFuture[str], run_id: UUID) -> Any:
    """The join's answer. With a wall-clock budget, the run is halted when the time runs out:
    model calls in flight finish, nothing else starts, and the join answers without a call."""
    left = seconds_left(run_id)
    if left is not None:
        try:
            return joined.result(timeout=max(left, 0.0), raise_on_failure=False)
        except TimeoutError:
            halt(run_id, "the wall-clock budget ran out")
    return joined.result(raise_on_failure=False)


def plan_table(plan: Plan) -> list[dict[str, Any]]:
    return [
        {
            "id": s.id,
            "title": s.title,
            "instruction": s.instruction,
            "kind": s.kind,
            "tier": s.tier,
            "temperature": s.temperature,
            "depends_on": ", ".join(s.depends_on),
            "url": s.url or "",
        }
        for s in plan.subtasks
    ]


class PlanDecision(RunInput):
    """What `POST /task/{id}/approve` sends a paused goal run: an edited plan, or none to run
    the plan as it is."""

    plan: dict[str, Any] | None = None


def _await_approval(the_plan: Plan, settings: Settings) -> Plan:
    """Pause after planning until the plan is approved (maybe edited) or the run cancelled."""
    create_table_artifact(plan_table(the_plan), key="goal-plan", description=the_plan.goal)
    decision = pause_flow_run(
        wait_for_input=PlanDecision,
        timeout=settings.approval_timeout_s,
        poll_interval=APPROVAL_POLL_S,
        key="plan-approval",
    )
    if decision.plan is None:
        return the_plan
    return validate_plan({**decision.plan, "goal": the_plan.goal}, settings.plan_limits())


@flow(
    name=FLOW_NAME,
    flow_run_name=_run_name,
    task_runner=ThreadPoolTaskRunner(max_workers=MAX_THREADS),  # type: ignore[arg-type]
    log_prints=False,
)
def compound_goal(
    goal: str,
    plan: dict[str, Any] | None = None,
    approve: bool = False,
    budget: dict[str, Any] | None = None,
) -> State:
    """Plan the goal (unless a plan is given), run every subtask as its inputs are ready, join.

    `approve`: pause after planning until the plan is approved. `budget`: limits (see
    core.budget.Budget) that halt the run when spent.
    """
    settings = get_settings()
    limits = Budget.model_validate(budget or {})
    run_id = UUID(str(flow_run.get_id()))
    open_budget(run_id, limits)
    try:
        return _run_goal(run_id, goal, plan, approve, limits, settings)
    finally:
        close_budget(run_id)


def _run_goal(
    run_id: UUID,
    goal: str,
    plan: dict[str, Any] | None,
    approve: bool,
    limits: Budget,
    settings: Settings,
) -> State:
    if plan is not None:
        the_plan = validate_plan({"goal": goal, **plan}, settings.plan_limits())
    else:
        the_plan = plan_goal(check_goal(goal, settings.max_goal_chars))
    if approve:
        try:
            the_plan = _await_approval(the_plan, settings)
        except FlowPauseTimeout:
            return Cancelled(
                message=f"the plan was not approved within {settings.approval_timeout_s} s"
            )
    if limits.max_subtasks is not None and len(the_plan.subtasks) > limits.max_subtasks:
        create_table_artifact(plan_table(the_plan), key="goal-plan", description=the_plan.goal)
        return Failed(
            message=f"budget exceeded: the plan has {len(the_plan.subtasks)} subtasks, "
            f"the budget allows {limits.max_subtasks}; nothing was run"
        )
    ensure_tier_limits(settings.limits)

    with tier_tags_without_leases({s.tier for s in the_plan.subtasks}):
        futures = compile_plan(the_plan, settings)
        # Written once the subtasks are under way, so it costs them no time.
        create_table_artifact(plan_table(the_plan), key="goal-plan", description=the_plan.goal)
        joined = join_results.submit(the_plan, {k: allow_failure(f) for k, f in futures.items()})
        answer = _answer(joined, run_id)
    join_failed = not isinstance(answer, str)
    if join_failed:
        answer = f"The join step failed, so there is no final answer: {answer}" + missing_note(
            the_plan, {k: f.result(raise_on_failure=False) for k, f in futures.items()}
        )
    # Task run states reach the server's database a moment after the flow sees them; this
    # table makes the finished goal run's document exact the instant the flow returns. Its
    # attempt tells it apart from an earlier attempt's table when the goal run is retried.
    attempt = flow_run.get_run_count()
    outcome = [
        {
            "id": k,
            "state": f.state.name,
            "message": f.state.message or "",
            "at": str(f.state.timestamp),
            "attempt": attempt,
        }
        for k, f in futures.items()
    ]
    create_table_artifact(outcome, key="goal-outcome", description=the_plan.goal)
    create_markdown_artifact(answer, key="goal-result", description=the_plan.goal)
    records.flush()

    halted = close_budget(run_id)
    if halted is not None:
        stopped = [k for k, f in futures.items() if f.state.name != "Completed"]
        return Failed(
            message=f"budget exceeded: {halted}; {len(stopped)} subtask(s) did not finish "
            f"({', '.join(stopped) or '-'})",
            data=answer,
        )
    failed = [k for k, f in futures.items() if not f.state.is_completed()]
    skipped = [k for k, f in futures.items() if f.state.name == "Skipped"]
    if failed or skipped or join_failed:
        return Failed(
            message=("the join step failed; " if join_failed else "")
            + f"{len(failed)} subtask(s) failed ({', '.join(failed) or '-'}), "
            f"{len(skipped)} skipped ({', '.join(skipped) or '-'}); "
            "the result answers from the rest",
            data=answer,
        )
    return Completed(message=f"{len(futures)} subtasks completed", data=answer)
