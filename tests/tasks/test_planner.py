"""The planner: forced tool use, one retry with the validation error, then a clear failure."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput, PlanError
from tasks.planner import make_plan
from tests.fakes.anthropic_server import FakeAnthropic

GOOD = {
    "subtasks": [
        {
            "id": "find",
            "title": "Find",
            "instruction": "Find them.",
            "kind": "extract",
            "tier": "fast",
        },
        {
            "id": "write",
            "title": "Write",
            "instruction": "Write it.",
            "kind": "write",
            "tier": "writer",
            "depends_on": ["find"],
            "temperature": 0.2,
        },
    ]
}
CYCLIC = {
    "subtasks": [
        {
            "id": "a",
            "title": "A",
            "instruction": "a",
            "kind": "extract",
            "tier": "fast",
            "depends_on": ["b"],
        },
        {
            "id": "b",
            "title": "B",
            "instruction": "b",
            "kind": "extract",
            "tier": "fast",
            "depends_on": ["a"],
        },
    ]
}


def test_the_planner_returns_a_validated_plan_through_a_forced_tool(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.enqueue_plan(GOOD)
    plan = make_plan("  Compare two things  ")
    assert plan.goal == "Compare two things"
    assert [s.id for s in plan.subtasks] == ["find", "write"]
    body = fake_anthropic.calls[0].body
    assert body["tool_choice"] == {"type": "tool", "name": "submit_plan"}
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}  # fixed prompt is cached
    assert body["model"] == "claude-opus-5-5"  # the planner tier (deep)
    assert "<goal>\nCompare two things\n</goal>" in fake_anthropic.calls[0].prompt


def test_an_invalid_plan_is_sent_back_once_with_the_reason(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.enqueue_plan(CYCLIC)
    fake_anthropic.enqueue_plan(GOOD)
    plan = make_plan("goal")
    assert len(plan.subtasks) == 2
    retry_prompt = fake_anthropic.calls[1].prompt
    assert (
        "Your previous plan was rejected: subtask 'a': dependency cycle a -> b -> a" in retry_prompt
    )


def test_two_invalid_plans_fail_clearly(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.enqueue_plan(CYCLIC)
    fake_anthropic.enqueue_plan({"subtasks": []})
    with pytest.raises(PlanError, match="the planner's plan was invalid twice"):
        make_plan("goal")
    assert len(fake_anthropic.calls) == 2


def test_an_empty_goal_never_reaches_the_model(fake_anthropic: FakeAnthropic) -> None:
    with pytest.raises(InvalidInput, match="the goal is empty"):
        make_plan("   ")
    assert fake_anthropic.calls == []
