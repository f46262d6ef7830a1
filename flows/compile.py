"""Compile a plan into Prefect task submissions: one task run per subtask, edges as futures."""

from __future__ import annotations

from typing import Any

from prefect import allow_failure
from prefect.futures import PrefectFuture

from core.goal_run import subtask_run_name
from core.plan import Plan
from core.prefect_compat import task_variant
from core.settings import Settings
from tasks.subtask import run_subtask


def compile_plan(plan: Plan, settings: Settings) -> dict[str, PrefectFuture[Any]]:
    """Submit every subtask at once; each waits only for its own dependencies' futures.

    A dependency is passed wrapped in `allow_failure`, so a failed one reaches the dependent
    (which then marks itself Skipped) instead of leaving it waiting forever.
    """
    futures: dict[str, PrefectFuture[Any]] = {}
    submit_subtasks(plan, [s.id for s in plan.subtasks], futures, settings)
    return futures


def submit_subtasks(
    plan: Plan, ids: list[str], futures: dict[str, PrefectFuture[Any]], settings: Settings
) -> None:
    """Submit the subtasks `ids` of `plan` (a revision's, into a running goal run), in
    dependency order; their dependencies' futures are read from and theirs written to
    `futures` (a subtask run again replaces its earlier future there)."""
    wanted = set(ids)
    for subtask in plan.topological_order():
        if subtask.id not in wanted:
            continue
        upstream = {dep: allow_failure(futures[dep]) for dep in subtask.depends_on}
        runner = task_variant(
            run_subtask,
            name=subtask_run_name(subtask),
            task_run_name=subtask_run_name(subtask),
            tags=[f"tier:{subtask.tier}"],
            retries=settings.subtask_retries,
        )
        futures[subtask.id] = runner.submit(subtask, upstream, plan.goal)
