"""A goal run's plan while it runs: its subtasks' futures, and bounded replanning.

When every submitted subtask has settled and some failed (or were skipped), or the join finds
the results insufficient, the replanner may revise the plan (tasks/replanner.py): at most
`MISSION_MAX_REPLANS` times per goal run, within the plan limits and the budget, checked
like a plan (core/revision.py), approved first when the goal run asks for approval. A
revision's subtasks are submitted into the same flow run; a failed subtask's replacement
takes its place, and the dependents it had run again once the replacement is done.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prefect.artifacts import create_table_artifact
from prefect.exceptions import FlowPauseTimeout
from prefect.futures import PrefectFuture
from prefect.input import RunInput

from core.artifacts import PLAN_KEY, REPLANS_KEY, SubtaskResult, plan_rows, table_data
from core.errors import MissionError, PlanError
from core.plan import Plan
from core.prefect_compat import pause_for_input
from core.revision import Replan, Revised, apply_revision, without
from core.settings import Settings
from core.stop import GoalStopped
from flows.cancel_watch import CancelWatch
from flows.compile import compile_plan, submit_subtasks
from tasks import run_log
from tasks.ledger import RunLedger
from tasks.replanner import revise_plan

# How often a goal run paused for approval asks the server whether it was resumed (its own
# events wake it at once; this is the safety net).
APPROVAL_POLL_S = 1


class PlanDecision(RunInput):
    """What `POST /task/{id}/approve` sends a paused goal run: an edited plan, or none to run
    the plan (or the revision) as it is."""

    plan: dict[str, Any] | None = None


def write_plan(
    plan: Plan,
    revision_of: Mapping[str, int] | None = None,
    replaced: Mapping[str, str] | None = None,
) -> None:
    """The `goal-plan` artifact: the plan as it stands (or as a revision proposes it)."""
    rows = plan_rows(plan, revision_of, replaced)
    create_table_artifact(rows, key=PLAN_KEY, description=plan.goal)


def await_approval(
    run_id: Any, key: str, settings: Settings, ledger: RunLedger, watch: CancelWatch
) -> PlanDecision:
    """Pause until a person approves (maybe with an edited plan); a rejection or a cancel
    (GoalStopped) ends the wait at once. FlowPauseTimeout when nobody answers in time."""
    ledger.stop.on_stop(watch.resumed.set)

    def wait(seconds: float) -> None:
        watch.resumed.wait(seconds)
        watch.resumed.clear()

    return pause_for_input(
        run_id,
        PlanDecision,
        key=key,
        timeout_s=settings.approval_timeout_s,
        wait=wait,
        check=ledger.stop.check,
        poll_s=APPROVAL_POLL_S,
    )


def await_futures(futures: list[PrefectFuture[Any]], ledger: RunLedger) -> bool:
    """Wait until every one of `futures` has ended: True then; False as soon as a person
    cancels the goal run. With a wall-clock budget, the run is halted when the time runs
    out: nothing else starts, and what still runs answers without a call."""
    ended = threading.Semaphore(0)
    woken = threading.Event()

    def done(_: object) -> None:
        ended.release()
        woken.set()

    for future in futures:  # one already done calls back at once
        future.add_done_callback(done)
    ledger.stop.on_stop(woken.set)
    settled = 0
    while True:
        woken.clear()
        while ended.acquire(blocking=False):
            settled += 1
        if ledger.stop.is_set() and ledger.stop.kind == "cancelled":
            return False
        if settled == len(futures):
            for future in futures:
                future.wait()  # done: this only fixes its final state (else `.state` asks
            return True  # the server, which may not have it yet)
        left = ledger.seconds_left()
        if left is not None and left <= 0:
            ledger.halt("the wall-clock budget ran out")
            left = None  # halted: now the rest ends without a call
        woken.wait(left)


@dataclass
class Execution:
    """The running plan of one goal run: every subtask's latest future, what revisions
    added and replaced, and the replanning points so far."""

    plan: Plan
    settings: Settings
    ledger: RunLedger
    watch: CancelWatch
    approve: bool = False
    futures: dict[str, PrefectFuture[Any]] = field(default_factory=dict)
    replaced: dict[str, str] = field(default_factory=dict)
    revision_of: dict[str, int] = field(default_factory=dict)
    replans: list[Replan] = field(default_factory=list)

    def start(self) -> Execution:
        self.futures = compile_plan(self.plan, self.settings)
        self.write_plan()  # once the subtasks are under way, so it costs them no time
        return self

    def write_plan(self) -> None:
        write_plan(self.plan, self.revision_of, self.replaced)

    # --- where the run stands ---------------------------------------------------------------
    @property
    def answering_plan(self) -> Plan:
        """The plan the join answers from: replaced subtasks left out."""
        return without(self.plan, self.replaced)

    def live_futures(self) -> dict[str, PrefectFuture[Any]]:
        return {k: f for k, f in self.futures.items() if k not in self.replaced}

    def settle(self) -> bool:
        """Wait until every submitted subtask has ended; False as soon as a person cancels
        the run (its subtasks stop at once)."""
        return await_futures(list(self.futures.values()), self.ledger)

    def completed(self) -> dict[str, str]:
        """Subtasks that completed, with what they learned."""
        done = {}
        for k, f in self.futures.items():
            value = f.result(raise_on_failure=False) if f.state.is_completed() else None
            if isinstance(value, SubtaskResult) and value.status == "completed":
                done[k] = value.learned or value.output[:200]
        return done

    def failures(self) -> dict[str, str]:
        """Subtasks that failed or were skipped (and are not replaced), with why; read from
        their final states (no result is loaded)."""
        return {
            k: f.state.message or f.state.name or "failed"
            for k, f in self.live_futures().items()
            if not f.state.is_completed() or f.state.name in ("Skipped", "Halted")
        }

    def can_replan(self) -> bool:
        return len(self.replans) < self.settings.max_replans and not self.ledger.stop.is_set()

    # --- a replanning point -----------------------------------------------------------------
    def revise(self, reason: str, missing: str | None = None) -> bool:
        """Ask the replanner for a revision and run it; False when none was run (refused,
        invalid, over the budget, not approved), and the replans list says why."""
        number = len(self.replans) + 1
        completed, failed = self.completed(), self.failures()
        entry = Replan(revision=number, at=datetime.now(UTC), reason=reason)
        self.replans.append(entry)
        try:
            data = revise_plan(self.plan, completed, failed, missing, number)
            revised = apply_revision(
                self.plan, data, set(completed), set(failed), self.settings.plan_limits()
            )
            entry.added, entry.replaced = revised.added, revised.replaced
            if over := self._over_budget(revised, len(completed)):
                raise PlanError(over)
            if self.approve and len(revised.added) > self.settings.replan_approve_over:
                revised = self._approved(revised, number, completed, failed)
                entry.added, entry.replaced = revised.added, revised.replaced
        except GoalStopped:
            entry.refused = self.ledger.stop.reason
            self.write_replans()
            if self.ledger.stop.kind == "cancelled":
                raise
            return False  # halted (the budget was spent): the join answers without a call
        except (MissionError, FlowPauseTimeout) as exc:  # invalid, refused, failed, unanswered
            entry.refused = getattr(exc, "message", None) or str(exc)
            self.write_replans()
            run_log.replan(entry)
            return False
        self._run(revised, number)
        run_log.replan(entry)
        run_log.plan(revised.plan, number)
        return True

    def _over_budget(self, revised: Revised, completed: int) -> str | None:
        """Why the budget cannot afford the revision (forecast at this run's average spend
        per completed subtask so far), or None."""
        budget, ledger = self.ledger.budget, self.ledger
        total = len(revised.plan.subtasks)
        if budget.max_subtasks is not None and total > budget.max_subtasks:
            return (
                f"over the budget: the revised plan has {total} subtasks, the budget allows "
                f"{budget.max_subtasks}"
            )
        runs = len(revised.added) + len(revised.rerun)
        per = max(1, completed)
        if budget.max_tokens is not None:
            forecast = ledger.tokens + ledger.tokens * runs // per
            if forecast > budget.max_tokens:
                return (
                    f"over the budget: {runs} more subtask(s) at this run's "
                    f"{ledger.tokens // per:,} tokens each would reach {forecast:,} of "
                    f"{budget.max_tokens:,} tokens"
                )
        if budget.max_cost_usd is not None:
            forecast_usd = ledger.cost_usd + ledger.cost_usd * runs / per
            if forecast_usd > budget.max_cost_usd:
                return (
                    f"over the budget: {runs} more subtask(s) would bring the cost to about "
                    f"${forecast_usd:.4f} of ${budget.max_cost_usd:.4f}"
                )
        return None

    def _approved(
        self, revised: Revised, number: int, completed: dict[str, str], failed: dict[str, str]
    ) -> Revised:
        """Show the revision (the plan with its new rows marked) and wait for approval; an
        edited plan's new subtasks become the revision."""
        write_plan(
            revised.plan,
            {**self.revision_of, **dict.fromkeys(revised.added, number)},
            {**self.replaced, **revised.replaced},
        )
        entry = self.replans[-1]
        entry.waiting = True
        self.write_replans()
        try:
            decision = await_approval(
                self.watch.flow_run_id, f"revision-{number}", self.settings, self.ledger, self.watch
            )
        finally:
            entry.waiting = False
        if decision.plan is None:
            return revised
        known = self.plan.by_id()
        edited = [
            {**s, **({"replaces": old} if (old := _replaced(revised, s.get("id"))) else {})}
            for s in decision.plan.get("subtasks") or []
            if isinstance(s, dict) and s.get("id") not in known
        ]
        limits = self.settings.plan_limits()
        return apply_revision(self.plan, {"subtasks": edited}, set(completed), set(failed), limits)

    def _run(self, revised: Revised, number: int) -> None:
        self.plan = revised.plan
        self.replaced.update(revised.replaced)
        self.revision_of.update(dict.fromkeys(revised.added, number))
        submit_subtasks(self.plan, revised.added + revised.rerun, self.futures, self.settings)
        self.write_plan()
        self.write_replans()

    def write_replans(self) -> None:
        create_table_artifact(table_data(self.replans), key=REPLANS_KEY, description=self.plan.goal)


def _replaced(revised: Revised, new_id: object) -> str | None:
    return next((old for old, new in revised.replaced.items() if new == new_id), None)
