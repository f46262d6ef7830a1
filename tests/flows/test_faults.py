"""Model faults and budgets inside a whole goal run: each ends in a bounded number of requests
at the (fake) model, a clear state and reason, and every attempt's tokens counted."""

from __future__ import annotations

import pytest

from flows.compound_goal import compound_goal
from tests.fakes.anthropic_server import FakeAnthropic
from tests.flows.test_compound_goal import progress, run, st

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


def test_a_failing_tier_is_paused_and_its_remaining_subtasks_fail_without_requests(
    fake_anthropic: FakeAnthropic, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.setenv("MISSION_SDK_MAX_RETRIES", "0")
    settings_env.setenv("MISSION_BREAKER_FAILURES", "3")
    settings_env.setenv("MISSION_BREAKER_COOLDOWN_S", "600")
    settings_env.setenv("MISSION_TIER_LIMITS", "fast=1")
    fake_anthropic.on("Subtask id: down", status=500)  # the fast tier is down for good
    state, doc = run(*(st(f"down{i}") for i in range(8)), st("other", tier="structured"))

    # Without the breaker: 8 subtasks x 2 attempts = 16 requests to the failing tier.
    assert len(fake_anthropic.calls_for("Subtask id: down")) == 3
    assert state.is_failed()
    assert "8 subtask(s) failed" in (state.message or "")
    states = {s.id: s.state for s in doc.subtasks}
    assert states.pop("other") == "Completed"  # another tier carries on
    assert set(states.values()) == {"Failed"}
    paused = [
        s for s in doc.subtasks if "tier fast is paused after 3 failed calls" in (s.error or "")
    ]
    assert len(paused) >= 5  # every subtask after the third failure failed without a request
    assert doc.result  # the join (tier deep) answered from what completed


def test_malformed_tool_input_is_rejected_retried_once_and_both_attempts_are_counted(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.on(
        "Subtask id: garbled\n", tool_input={"output": 7, "learned": ""}, usage=(300, 50)
    )
    state, doc = run(st("garbled"), st("fine"))
    assert len(fake_anthropic.calls_for("Subtask id: garbled\n")) == 2  # 1 + 1 task retry
    garbled = next(s for s in doc.subtasks if s.id == "garbled")
    assert garbled.state == "Failed"
    assert "answered in the wrong shape (output: Input should be a valid string)" in (
        garbled.error or ""
    )
    # Both rejected replies are paid for: 2 x (300 + 50), plus 120 each for fine, the
    # replanner (asked once since garbled failed; it proposes nothing) and the join.
    assert doc.usage.input_tokens + doc.usage.output_tokens == 2 * 350 + 3 * 120
    assert state.is_failed() and "1 subtask(s) failed (garbled)" in (state.message or "")


def test_a_model_reporting_huge_usage_is_stopped_by_the_budget_with_no_further_calls(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.latency = 0.2
    fake_anthropic.on("Subtask id: greedy\n", usage=(50_000_000, 10_000_000))
    state = compound_goal(
        "spend it all",
        plan={"subtasks": [st("greedy"), st("next", "greedy"), st("last", "next")]},
        budget={"max_cost_usd": 5.0},
        return_state=True,
    )
    doc = progress(state.state_details.flow_run_id)
    assert state.is_failed()
    assert (state.message or "").startswith("budget exceeded: $")
    assert doc.budget is not None and (doc.budget.exceeded or "").endswith("spent of $5.0000")
    assert {s.id: s.state for s in doc.subtasks} == {
        "greedy": "Completed", "next": "Halted", "last": "Halted",
    }  # fmt: skip
    assert len(fake_anthropic.calls) == 1  # nothing after the greedy call, not even the join


def test_a_planner_that_grows_the_plan_past_the_budget_runs_nothing(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.enqueue_plan({"subtasks": [st(f"part{i}") for i in range(9)]})
    state = compound_goal("a small goal", budget={"max_subtasks": 3}, return_state=True)
    assert state.is_failed()
    assert state.message == (
        "budget exceeded: the plan has 9 subtasks, the budget allows 3; nothing was run"
    )
    assert len(fake_anthropic.calls) == 1  # the planner only
