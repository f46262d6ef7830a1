"""The compound-goal flow: plan (or take a plan) -> compile -> execute -> join."""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

from prefect import allow_failure, flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.exceptions import FlowPauseTimeout
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run
from prefect.states import Cancelled, Completed, Failed
from prefect.task_runners import ThreadPoolTaskRunner

from core.artifacts import (
    OUTCOME_KEY,
    RESULT_KEY,
    OutcomeRow,
    SubtaskResult,
    table_data,
)
from core.budget import Budget
from core.goal_run import FLOW_NAME
from core.plan import Plan, check_goal, validate_plan
from core.settings import Settings, get_settings
from core.stop import GoalStopped
from core.tier_limits import ensure_tier_limits
from flows.admission import skip_over_the_cap
from flows.cancel_watch import CancelWatch
from flows.ended import announce_end
from flows.replanning import Execution, await_approval, await_futures, write_plan
from tasks import records, run_log
from tasks.join import Answer, join_results, missing_note
from tasks.ledger import RunLedger, close_ledger, open_ledger
from tasks.planner import plan_goal
from tasks.tier_gate import TagLimits, tier_tags_without_leases

# Every subtask holds a worker thread while it waits for its dependencies; threads are made
# on demand, so this is only the ceiling (settings cap a plan far below it).
MAX_THREADS = 256
# How long a cancelled run waits for its subtasks to settle before marking the rest itself.
SETTLE_S = 1.0


def _run_name() -> str:
    goal = " ".join(str(flow_run.parameters.get("goal") or "goal").split())
    return goal if len(goal) <= 60 else goal[:57] + "..."


def _await_approval(
    the_plan: Plan, settings: Settings, ledger: RunLedger, watch: CancelWatch
) -> Plan:
    """Pause after planning until the plan is approved (maybe edited)."""
    write_plan(the_plan)
    decision = await_approval(watch.flow_run_id, "plan-approval", settings, ledger, watch)
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
    tag_limits = TagLimits()  # read meanwhile
    if skipped := skip_over_the_cap():
        return skipped
    settings = get_settings()
    limits = Budget.model_validate(budget or {})
    run_id = UUID(str(flow_run.get_id()))
    ledger = open_ledger(run_id, limits, settings.home)
    watch = CancelWatch(run_id, ledger.stop).start()
    try:
        state = _run_goal(ledger, watch, goal, plan, approve, settings, tag_limits)
    except GoalStopped:  # stopped while planning or waiting for approval: nothing ran
        state = _stopped_state(ledger, {})
    finally:
        watch.close()
        close_ledger(run_id)
    run_log.outcome(state.name or state.type.value, state.message)
    announce_end(goal, state)
    return state


def _run_goal(
    ledger: RunLedger,
    watch: CancelWatch,
    goal: str,
    plan: dict[str, Any] | None,
    approve: bool,
    settings: Settings,
    tag_limits: TagLimits,
) -> State:
    limits = ledger.budget
    if plan is not None:
        the_plan = validate_plan({"goal": goal, **plan}, settings.plan_limits())
    else:
        the_plan = plan_goal(check_goal(goal, settings.max_goal_chars))
    if approve:
        try:
            the_plan = _await_approval(the_plan, settings, ledger, watch)
        except FlowPauseTimeout:
            return Cancelled(
                message=f"the plan was not approved within {settings.approval_timeout_s} s"
            )
        tag_limits = TagLimits()  # read again: the wait may have been long
    if limits.max_subtasks is not None and len(the_plan.subtasks) > limits.max_subtasks:
        write_plan(the_plan)
        return Failed(
            message=f"budget exceeded: the plan has {len(the_plan.subtasks)} subtasks, "
            f"the budget allows {limits.max_subtasks}; nothing was run"
        )
    ensure_tier_limits(settings.limits)

    with tier_tags_without_leases({s.tier for s in the_plan.subtasks}, tag_limits):
        run = Execution(the_plan, settings, ledger, watch, approve).start()
        run_log.plan(the_plan)  # once the subtasks are under way: the first line starts
        answer = _execute(run)  # the process's log shipping, about 10 ms
    if answer is None:
        return _finish_stopped(run.plan, run.futures, ledger)
    futures = run.live_futures()
    join_failed = not isinstance(answer, Answer)
    if isinstance(answer, Answer):
        text = answer.text
    else:
        results = {k: f.result(raise_on_failure=False) for k, f in futures.items()}
        text = f"The join step failed, so there is no final answer: {answer}" + missing_note(
            run.answering_plan, results
        )
    _write_outcome(run.plan, run.futures, text, ledger)

    if ledger.stop.is_set():  # halted: the budget was spent
        stopped = [k for k, f in futures.items() if f.state.name != "Completed"]
        return Failed(
            message=f"budget exceeded: {ledger.exceeded}; {len(stopped)} subtask(s) did not "
            f"finish ({', '.join(stopped) or '-'})",
            data=text,
        )
    failed = [k for k, f in futures.items() if not f.state.is_completed()]
    skipped = [k for k, f in futures.items() if f.state.name == "Skipped"]
    revised = _revised_note(run)
    if failed or skipped or join_failed:
        return Failed(
            message=("the join step failed; " if join_failed else "")
            + f"{len(failed)} subtask(s) failed ({', '.join(failed) or '-'}), "
            f"{len(skipped)} skipped ({', '.join(skipped) or '-'}); "
            f"the result answers from the rest{revised}",
            data=text,
        )
    return Completed(message=f"{len(futures)} subtasks completed{revised}", data=text)


def _execute(run: Execution) -> Answer | BaseException | None:
    """Run the plan to its answer, revising it at each replanning point while revisions are
    left: when subtasks did not complete (the join, submitted with them as its inputs, then
    defers without a call), and when the join finds the results insufficient. None when a
    person cancelled the run. With nothing failing, the join starts the moment its inputs
    are done, as without replanning."""
    while True:
        ask = run.can_replan()
        joined = join_results.submit(
            run.answering_plan,
            {k: allow_failure(f) for k, f in run.live_futures().items()},
            ask_missing=ask,
        )
        if not await_futures([joined], run.ledger) or not run.settle():
            return None
        answer = joined.result(raise_on_failure=False)
        if isinstance(answer, Answer) and answer.deferred:
            if run.can_replan():  # not when the run was halted meanwhile
                failures = run.failures()
                names = ", ".join(sorted(failures))
                run.revise(f"{len(failures)} subtask(s) did not complete ({names})")
            continue  # refused: the next join answers from what there is (or tries again)
        if not (isinstance(answer, Answer) and answer.missing and ask):
            return answer
        if not run.revise("the join found the results insufficient", answer.missing):
            return answer


def _revised_note(run: Execution) -> str:
    """What the goal run's message says of its replanning points (revised, replaced,
    refused); empty when the run never reached one."""
    ran = [r for r in run.replans if r.ran]
    replaced = sum(len(r.replaced) for r in ran)
    parts = [f"the plan was revised {len(ran)} time(s)"] if ran else []
    if replaced:
        parts.append(f"{replaced} failed subtask(s) replaced")
    if refused := len(run.replans) - len(ran):
        parts.append(f"{refused} revision(s) refused")
    return "".join(f"; {part}" if i == 0 else f", {part}" for i, part in enumerate(parts))


def _write_outcome(
    the_plan: Plan,
    futures: dict[str, PrefectFuture[Any]],
    answer: str,
    ledger: RunLedger,
    states: dict[str, str] | None = None,
) -> None:
    """The outcome table and the result. Task run states reach the server's database a
    moment after the flow sees them; this table makes the finished goal run's document exact
    the instant the flow returns. Its attempt tells it apart from an earlier attempt's table
    when the goal run is retried. `states` overrides what a future's state says."""
    records.write_now()  # the last records go out while the outcome is written
    attempt = flow_run.get_run_count()
    started = ledger.started_times()
    outcome = [
        OutcomeRow(
            id=k,
            state=(states or {}).get(k) or f.state.name or "Pending",
            message=f.state.message or "",
            at=f.state.timestamp,
            attempt=attempt,
            started_at=started.get(k),
        )
        for k, f in futures.items()
    ]
    create_table_artifact(table_data(outcome), key=OUTCOME_KEY, description=the_plan.goal)
    create_markdown_artifact(answer, key=RESULT_KEY, description=the_plan.goal)
    records.flush()


def _finish_stopped(
    the_plan: Plan, futures: dict[str, PrefectFuture[Any]], ledger: RunLedger
) -> State:
    """A person cancelled the run. Its running subtasks were aborted and end Cancelled with
    what they had; the ones that never ran, or that Prefect left waiting on a cancelled
    dependency, are marked Cancelled here (in the outcome table and in Prefect)."""
    deadline = time.monotonic() + SETTLE_S
    for future in futures.values():
        future.wait(timeout=max(0.0, deadline - time.monotonic()))
    unsettled = {k: f for k, f in futures.items() if not f.state.is_final()}
    with get_client(sync_client=True) as client:
        for future in unsettled.values():
            client.set_task_run_state(
                future.task_run_id, Cancelled(message=ledger.stop.reason), force=True
            )
    results = {k: f.state.data for k, f in futures.items() if f.state.is_completed()}
    done = [r for r in results.values() if isinstance(r, SubtaskResult) and r.learned]
    learned = "\n".join(f"- `{r.id}`: {r.learned}" for r in done) or "- nothing yet"
    answer = (
        f"**Cancelled** ({ledger.stop.reason}), so no final answer was written. "
        f"What was learned before:\n{learned}" + missing_note(the_plan, results)
    )
    _write_outcome(the_plan, futures, answer, ledger, {k: "Cancelled" for k in unsettled})
    return _stopped_state(ledger, futures)


def _stopped_state(ledger: RunLedger, futures: dict[str, PrefectFuture[Any]]) -> State:
    finished = sum(1 for f in futures.values() if f.state.name in ("Completed", "Cached"))
    return Cancelled(
        message=f"{ledger.stop.reason}; {finished} of {len(futures)} subtasks had completed"
    )
