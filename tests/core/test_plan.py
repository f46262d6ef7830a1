"""The plan validator: what it refuses, in words, and that it accepts exactly the valid DAGs."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import InvalidInput, PlanError
from core.plan import PlanLimits, check_goal, validate_plan

LIMITS = PlanLimits(tiers=frozenset({"fast", "deep", "vision"}), max_subtasks=10, max_depth=5)


def subtask(id: str, *deps: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": id,
        "title": f"do {id}",
        "instruction": f"Do {id}.",
        "kind": "extract",
        "tier": "fast",
        "depends_on": list(deps),
        **extra,
    }


def plan(*subtasks: dict[str, Any]) -> dict[str, Any]:
    return {"goal": "a goal", "subtasks": list(subtasks)}


def refusal(data: Any) -> str:
    with pytest.raises(PlanError) as info:
        validate_plan(data, LIMITS)
    return info.value.message


def test_a_valid_plan_keeps_its_order_and_fields() -> None:
    p = validate_plan(plan(subtask("b", "a"), subtask("a", temperature=0.1)), LIMITS)
    assert [s.id for s in p.topological_order()] == ["a", "b"]
    assert p.by_id()["a"].temperature == 0.1
    assert [s.id for s in p.sinks()] == ["b"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (plan(subtask("a"), subtask("a")), "subtask 'a': duplicate id"),
        (plan(subtask("a", "ghost")), "subtask 'a': depends on unknown subtask 'ghost'"),
        (plan(subtask("a", "a")), "subtask 'a': depends on itself"),
        (plan(subtask("a", "b"), subtask("b", "a")), "dependency cycle a -> b -> a"),
        (plan(subtask("a", kind="dance")), "subtask 'a': unknown kind 'dance'"),
        (plan(subtask("a", tier="huge")), "subtask 'a': unknown tier 'huge'"),
        (plan(subtask("a", instruction="   ")), "subtask 'a': empty instruction"),
        (plan(subtask("a", instruction="x" * 5000)), "instruction is 5000 characters"),
        (plan(*[subtask(f"s{i}") for i in range(11)]), "11 subtasks; the limit is 10"),
        (plan(subtask("a", "b", "b"), subtask("b")), "subtask 'a': lists a dependency twice"),
        (plan(subtask("Bad Id")), "subtask 'Bad Id': id: must be a short lowercase slug"),
        (plan(subtask("a", temperature=3)), "subtask 'a': temperature"),
        (plan(subtask("a", kind="browse", url="file:///etc/passwd")), "url must start with http"),
        # Issue 19: a url a model wrote with the sentence's closing quote and comma.
        (
            plan(subtask("a", kind="browse", url="https://www.reddit.com/r/x”,")),
            "subtask 'a': url contains '”'",
        ),
        (plan(subtask("a", kind="browse", url="https://example.com:99999/")), "url is not a URL"),
        ({"goal": "g", "subtasks": []}, "subtasks"),
        ({"subtasks": [subtask("a")]}, "plan: goal: Field required"),
        ("{not json", "plan is not valid JSON"),
        ([1, 2], "plan must be a JSON object"),
    ],
)
def test_invalid_plans_are_refused_with_a_reason_naming_the_subtask(
    data: Any, expected: str
) -> None:
    assert expected in refusal(data)


def test_a_long_cycle_is_named_in_full() -> None:
    message = refusal(plan(subtask("a", "c"), subtask("b", "a"), subtask("c", "b"), subtask("d")))
    assert "a -> c -> b -> a" in message


def test_a_plan_deeper_than_the_limit_is_refused() -> None:
    chain = [subtask("s0")] + [subtask(f"s{i}", f"s{i - 1}") for i in range(1, 6)]
    assert "6 subtasks deep; the limit is 5" in refusal(plan(*chain))


def test_empty_and_huge_goals_are_refused() -> None:
    with pytest.raises(InvalidInput, match="empty"):
        check_goal(" \n ", 100)
    with pytest.raises(InvalidInput, match="101 characters; the limit is 100"):
        check_goal("x" * 101, 100)


def reference_accepts(n: int, edges: dict[int, set[int]]) -> bool:
    """Kahn's algorithm plus the limits, written independently of the validator."""
    if n > LIMITS.max_subtasks or any(i in deps for i, deps in edges.items()):
        return False
    indegree = {i: len(edges[i]) for i in range(n)}
    depth = dict.fromkeys(range(n), 1)
    ready = [i for i in range(n) if indegree[i] == 0]
    seen = 0
    while ready:
        node = ready.pop()
        seen += 1
        for child in range(n):
            if node in edges[child]:
                depth[child] = max(depth[child], depth[node] + 1)
                indegree[child] -= 1
                if indegree[child] == 0:
                    ready.append(child)
    return seen == n and max(depth.values()) <= LIMITS.max_depth


@st.composite
def graphs(draw: st.DrawFn) -> tuple[int, dict[int, set[int]]]:
    n = draw(st.integers(min_value=1, max_value=12))
    edges = {
        i: draw(st.sets(st.integers(min_value=0, max_value=n - 1), max_size=3)) for i in range(n)
    }
    return n, edges


@settings(max_examples=300, deadline=None)
@given(graphs())
def test_validator_accepts_exactly_what_a_reference_topological_sort_accepts(
    graph: tuple[int, dict[int, set[int]]],
) -> None:
    n, edges = graph
    data = plan(*[subtask(f"n{i}", *[f"n{d}" for d in sorted(edges[i])]) for i in range(n)])
    try:
        validate_plan(data, LIMITS)
        accepted = True
    except PlanError:
        accepted = False
    assert accepted == reference_accepts(n, edges)
