"""Compile a plan into Prefect task submissions: one task run per subtask, edges as futures."""

from __future__ import annotations

import re
from typing import Any

from prefect import allow_failure
from prefect.futures import PrefectFuture

from core.plan import Plan, Subtask
from core.settings import Settings
from tasks.subtask import run_subtask

# A subtask's task run is named `<id>: <title>`; the planner's and joiner's names contain no colon.
SUBTASK_RUN_NAME = re.compile(r"^([a-z0-9][a-z0-9_-]{0,39}): ")


def subtask_run_name(subtask: Subtask) -> str:
    """`<id>: <title>`, escaped so Prefect does not read the title as a format string."""
    return f"{subtask.id}: {subtask.title}".replace("{", "{{").replace("}", "}}")


def compile_plan(plan: Plan, settings: Settings) -> dict[str, PrefectFuture[Any]]:
    """Submit every subtask at once; each waits only for its own dependencies' futures.

    A dependency is passed wrapped in `allow_failure`, so a failed one reaches the dependent
    (which then marks itself Skipped) instead of leaving it waiting forever.
    """
    futures: dict[str, PrefectFuture[Any]] = {}
    for subtask in plan.topological_order():
        upstream = {dep: allow_failure(futures[dep]) for dep in subtask.depends_on}
        runner = run_subtask.with_options(
            name=subtask_run_name(subtask),
            task_run_name=subtask_run_name(subtask),
            tags=[f"tier:{subtask.tier}"],
            retries=settings.subtask_retries,
        )
        futures[subtask.id] = runner.submit(subtask, upstream, plan.goal)
    return futures
