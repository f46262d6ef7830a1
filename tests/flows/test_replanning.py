"""Bounded replanning on a real Prefect server, with the real SDK against the fake model: a
failed subtask replaced, the join asking for more, and every bound that stops a revision."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import reset_settings
from tests.fakes.anthropic_server import FakeAnthropic
from tests.flows.test_compound_goal import run, st

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

REVISE = "Instruction:\nRevise the plan"  # in every replanner prompt
JOIN = "Write the final answer"


def revision(*subtasks: dict[str, Any]) -> dict[str, Any]:
    return {"tool_input": {"subtasks": list(subtasks)}}


def test_a_failed_subtask_is_replaced_its_dependents_wait_for_it_and_the_run_completes(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.on("Subtask id: fetch\n", status=400)  # a permanent error: not retried
    fake_anthropic.on(REVISE, **revision({**st("fetch_alt"), "replaces": "fetch"}))
    state, doc = run(st("fetch"), st("other"), st("report", "fetch", "other"))

    assert state.is_completed(), state.message
    assert "revised 1 time(s), 1 failed subtask(s) replaced" in (state.message or "")
    rows = {s.id: s for s in doc.subtasks}
    assert rows["fetch"].state == "Failed" and rows["fetch"].replaced_by == "fetch_alt"
    assert rows["fetch_alt"].state == "Completed" and rows["fetch_alt"].revision == 1
    assert rows["report"].state == "Completed" and rows["report"].depends_on == [
        "fetch_alt",
        "other",
    ]
    assert doc.plan_revision == 1
    [replan] = doc.replans
    assert replan.replaced == {"fetch": "fetch_alt"} and replan.added == ["fetch_alt"]
    assert replan.refused is None and "fetch" in replan.reason
    # The replanner saw what completed and what failed, and why.
    [asked] = fake_anthropic.calls_for(REVISE)
    assert '<completed id="other">' in asked.prompt
    assert '<failed id="fetch" depends_on="">' in asked.prompt
    # `report` ran again, on the replacement's output; `other` ran once.
    reports = fake_anthropic.calls_for("Subtask id: report\n")
    assert len(reports) == 1 and '<dependency id="fetch_alt">' in reports[0].prompt
    assert len(fake_anthropic.calls_for("Subtask id: other\n")) == 1
    assert doc.result is not None and "Missing from this answer" not in doc.result


def test_the_join_asks_for_more_and_gets_it_as_often_as_the_bound_allows(
    fake_anthropic: FakeAnthropic, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.setenv("MISSION_MAX_REPLANS", "2")
    fake_anthropic.on(
        JOIN, tool_input={"output": "thin", "learned": "thin", "missing": "the prices"}
    )
    fake_anthropic.on("Revision number: 1", times=1, **revision(st("more_1", "base")))
    fake_anthropic.on("Revision number: 2", times=1, **revision(st("more_2", "more_1")))
    state, doc = run(st("base"))

    assert state.is_completed(), state.message
    assert [s.id for s in doc.subtasks] == ["base", "more_1", "more_2"]
    assert all(s.state == "Completed" for s in doc.subtasks)
    assert doc.plan_revision == 2 and [r.revision for r in doc.replans] == [1, 2]
    assert all("insufficient" in r.reason for r in doc.replans), doc.replans
    joins = fake_anthropic.calls_for(JOIN)
    assert len(joins) == 3  # the bound: two revisions, then the join's answer stands
    offered = ["missing" in str(c.body["tools"]) for c in joins]
    assert offered == [True, True, False]  # no more revisions left: not asked for more
    assert "<missing>the prices</missing>" in fake_anthropic.calls_for(REVISE)[0].prompt


def test_an_invalid_revision_is_refused_with_its_reason_and_the_run_finishes(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.on("Subtask id: fetch\n", status=400)
    fake_anthropic.on(REVISE, **revision(st("retry_fetch", "nowhere")))
    state, doc = run(st("fetch"), st("report", "fetch"))

    assert state.is_failed()
    assert "1 revision(s) refused" in (state.message or "")
    [replan] = doc.replans
    assert replan.refused is not None and "unknown subtask 'nowhere'" in replan.refused
    assert doc.plan_revision == 0 and [s.id for s in doc.subtasks] == ["fetch", "report"]
    assert not fake_anthropic.calls_for("Subtask id: retry_fetch")
    assert doc.result is not None  # the join answered from what there was


def test_a_revision_the_budget_cannot_afford_is_not_run(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.on("Subtask id: fetch\n", status=400)
    fake_anthropic.on(REVISE, **revision({**st("fetch_alt"), "replaces": "fetch"}))
    plan = {"subtasks": [st("fetch"), st("report", "fetch")]}
    from flows.compound_goal import compound_goal
    from tests.flows.test_compound_goal import progress

    state = compound_goal("test goal", plan=plan, budget={"max_subtasks": 2}, return_state=True)
    doc = progress(state.state_details.flow_run_id)

    assert state.is_failed()
    [replan] = doc.replans
    assert replan.refused is not None and "over the budget" in replan.refused
    assert "the budget allows 2" in replan.refused
    assert not fake_anthropic.calls_for("Subtask id: fetch_alt")


def test_no_replanning_when_it_is_off_or_nothing_failed(
    fake_anthropic: FakeAnthropic, settings_env: pytest.MonkeyPatch
) -> None:
    state, doc = run(st("a"), st("b", "a"))
    assert state.is_completed() and doc.replans == [] and doc.plan_revision == 0
    join = fake_anthropic.calls_for(JOIN)[0]
    assert "missing" in str(join.body["tools"])  # the join may ask: a revision is left

    settings_env.setenv("MISSION_MAX_REPLANS", "0")
    reset_settings()
    fake_anthropic.on("Subtask id: fetch\n", status=400)
    state, doc = run(st("fetch"), st("report", "fetch"))
    assert state.is_failed() and doc.replans == []
    assert not fake_anthropic.calls_for(REVISE)


def test_the_simulated_replanner_replaces_a_failed_subtask_deterministically() -> None:
    from core.gateway.simulated import simulated_revision

    prompt = (
        '<completed id="scope">x</completed>\n'
        '<failed id="fetch" depends_on="scope,other">boom</failed>\nRevision number: 1'
    )
    assert simulated_revision(prompt) == {
        "subtasks": [
            {
                "id": "fetch_alt1",
                "title": "Another way to do fetch",
                "instruction": "Do what `fetch` was for, another way, from what is known.",
                "kind": "extract",
                "tier": "fast",
                "depends_on": ["scope", "other"],
                "replaces": "fetch",
            }
        ]
    }
    assert simulated_revision(prompt) == simulated_revision(prompt)
    deeper = simulated_revision('<completed id="summary">x</completed>\nRevision number: 2')
    assert deeper["subtasks"][0]["id"] == "deeper_2"
    assert deeper["subtasks"][0]["depends_on"] == ["summary"]


def test_a_replanner_that_cannot_answer_is_refused_and_the_run_finishes(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.on("Subtask id: fetch\n", status=400)
    fake_anthropic.on(REVISE, stop_reason="max_tokens")  # truncated: no revision in it
    state, doc = run(st("fetch"), st("other"))

    assert state.is_failed() and "1 revision(s) refused" in (state.message or "")
    [replan] = doc.replans
    assert replan.refused is not None and "replanner" in replan.refused
    assert doc.result is not None  # the join answered from what there was
    assert {s.id: s.state for s in doc.subtasks} == {"fetch": "Failed", "other": "Completed"}
