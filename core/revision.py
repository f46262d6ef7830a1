"""Plan revisions: what a replanner may change in a running goal run's plan, checked like a plan.

A revision adds subtasks; an added subtask may `replace` one that failed, and then the failed
subtask's dependents depend on the replacement instead (they run again once it is done). The
failed subtask stays in the plan, marked `replaced_by`. The revised plan passes the same
validator as every plan, so the plan limits (subtasks, depth) hold over all revisions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from core.errors import PlanError
from core.plan import Plan, PlanLimits, Subtask, validate_plan


class Replan(BaseModel):
    """One replanning point of a goal run, as the progress document lists it: why the plan
    was revised, what was added and replaced; `refused` says why a revision was not run
    (invalid, over the budget, rejected)."""

    revision: int
    at: datetime
    reason: str
    added: list[str] = Field(default_factory=list)
    replaced: dict[str, str] = Field(default_factory=dict)  # failed id -> its replacement
    refused: str | None = None
    waiting: bool = False  # for a person's approval (goal runs with `approve`)

    @property
    def ran(self) -> bool:
        return self.refused is None and not self.waiting


@dataclass(frozen=True)
class Revised:
    """A plan with a revision applied: the whole plan (replaced subtasks kept), what the
    revision added and replaced, and which existing subtasks must run again because what
    they depend on was replaced."""

    plan: Plan
    added: list[str]
    replaced: dict[str, str]
    rerun: list[str] = field(default_factory=list)


def apply_revision(
    plan: Plan,
    data: Mapping[str, Any],
    completed: set[str],
    failed: set[str],
    limits: PlanLimits,
) -> Revised:
    """The plan with the revision `data` (`{"subtasks": [... each maybe with "replaces"]}`)
    applied, or PlanError naming what is wrong with it. `completed`: subtasks that finished;
    `failed`: subtasks that failed or were skipped (and are not replaced yet)."""
    raw = data.get("subtasks")
    if not isinstance(raw, list) or not raw:
        raise PlanError("the revision adds no subtasks")
    existing = plan.by_id()
    replaced: dict[str, str] = {}
    added: list[dict[str, Any]] = []
    for item in raw:
        if not isinstance(item, Mapping):
            raise PlanError("every subtask of a revision must be an object")
        entry = dict(item)
        old = entry.pop("replaces", None)
        new = entry.get("id")
        if isinstance(new, str) and new in existing:
            raise PlanError(f"subtask {new!r}: the plan already has a subtask with this id")
        if old not in (None, ""):
            if not isinstance(old, str) or old not in failed:
                raise PlanError(
                    f"subtask {new!r}: replaces {old!r}, which is not a failed subtask "
                    f"(failed: {', '.join(sorted(failed)) or 'none'})"
                )
            if old in replaced:
                raise PlanError(f"subtask {old!r} is replaced twice")
            replaced[old] = str(new)
        added.append(entry)
    new_ids = {str(entry.get("id")) for entry in added}
    for entry in added:
        for dep in entry.get("depends_on") or ():
            if dep in existing and dep not in completed:
                raise PlanError(
                    f"subtask {entry.get('id')!r}: depends on {dep!r}, which did not complete"
                )
    rewired = [
        s.model_copy(update={"depends_on": tuple(replaced.get(d, d) for d in s.depends_on)})
        for s in plan.subtasks
    ]
    merged = validate_plan(
        {
            "goal": plan.goal,
            "subtasks": [s.model_dump(mode="json") for s in rewired] + added,
        },
        limits,
    )
    rerun = sorted(
        {d for old, new in replaced.items() for d in merged.descendants(new)} - new_ids - completed,
        key=[s.id for s in merged.topological_order()].index,
    )
    return Revised(merged, [str(e["id"]) for e in added], replaced, rerun)


def without(plan: Plan, replaced: Mapping[str, str]) -> Plan:
    """The plan the join answers from: replaced subtasks left out (their replacements and
    rewired dependents are in it)."""
    kept: tuple[Subtask, ...] = tuple(s for s in plan.subtasks if s.id not in replaced)
    return plan.model_copy(update={"subtasks": kept})
