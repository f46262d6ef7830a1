"""One model of a goal run's parameters, and the names its task runs carry."""

from __future__ import annotations

import pytest

from core.budget import Budget
from core.errors import InvalidInput, PlanError
from core.goal_run import GoalParameters, subtask_id_of, subtask_run_name
from core.plan import PlanLimits, Subtask

LIMITS = PlanLimits(tiers=frozenset({"fast"}))
PLAN = {"subtasks": [{"id": "a", "title": "A", "instruction": "i", "kind": "extract",
                      "tier": "fast"}]}  # fmt: skip


def build(goal: str = " g ", **kw: object) -> GoalParameters:
    return GoalParameters.build(goal, max_goal_chars=100, limits=LIMITS, **kw)  # type: ignore[arg-type]


def test_parameters_are_checked_once_and_stored_as_prefect_takes_them() -> None:
    params = build(plan=PLAN, approve=True, budget=Budget(max_tokens=10))
    assert params.as_prefect() == {
        "goal": "g",
        "plan": {"subtasks": [{**PLAN["subtasks"][0], "temperature": None, "depends_on": [],
                               "url": None}]},
        "approve": True,
        "budget": {"max_tokens": 10},
    }  # fmt: skip
    assert build(budget={}).budget is None  # no limit set is no budget


@pytest.mark.parametrize(
    ("kw", "error", "says"),
    [
        ({"goal": "  "}, InvalidInput, "the goal is empty"),
        ({"plan": {"subtasks": []}}, PlanError, "subtasks"),
        ({"budget": {"max_tokens": 0}}, InvalidInput, "budget: max_tokens"),
        # Numbers some layer cannot carry: Prefect's serializer (64 bits), JavaScript (2^53).
        (
            {"budget": {"max_tokens": 10**26}},
            InvalidInput,
            "less than or equal to 9007199254740991",
        ),
        ({"budget": {"max_subtasks": 2**53}}, InvalidInput, "budget: max_subtasks"),
        ({"budget": {"max_cost_usd": float("inf")}}, InvalidInput, "finite number"),
        ({"budget": {"max_seconds": float("nan")}}, InvalidInput, "finite number"),
        ({"budget": {"max_seconds": 1e300}}, InvalidInput, "budget: max_seconds"),
        (
            {"plan": {"subtasks": [{**PLAN["subtasks"][0], "temperature": float("nan")}]}},
            PlanError,
            "finite number",
        ),
    ],
)
def test_bad_parameters_are_refused_with_the_reason(
    kw: dict[str, object], error: type[Exception], says: str
) -> None:
    with pytest.raises(error, match=says):
        build(**kw)  # type: ignore[arg-type]


def test_the_largest_numbers_every_layer_carries_are_accepted() -> None:
    budget = {"max_tokens": 2**53 - 1, "max_cost_usd": 1e9, "max_seconds": 366 * 24 * 3600}
    assert build(budget=budget).budget == budget


def test_a_subtask_run_name_gives_back_its_id() -> None:
    subtask = Subtask(id="find_2", title="Find {x}", instruction="i", kind="extract", tier="fast")
    name = subtask_run_name(subtask)
    assert name == "find_2: Find {{x}}"
    assert subtask_id_of(name) == "find_2"
    assert subtask_id_of("plan goal") is None and subtask_id_of("join results") is None
