"""The compound-goal flow on a real Prefect server, with the real SDK against the fake model."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.states import Scheduled, State

from core.progress import ProgressDocument
from flows.compound_goal import compound_goal
from flows.inline import execute_goal_run
from services.progress import read_progress
from tests.fakes.anthropic_server import FakeAnthropic

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


def st(id: str, *deps: str, tier: str = "fast", **extra: Any) -> dict[str, Any]:
    return {
        "id": id,
        "title": f"Do {id}",
        "instruction": f"Work on {id}.",
        "kind": "extract",
        "tier": tier,
        "depends_on": list(deps),
        **extra,
    }


def run(*subtasks: dict[str, Any], goal: str = "test goal") -> tuple[State, ProgressDocument]:
    state = compound_goal(goal, plan={"subtasks": list(subtasks)}, return_state=True)
    return state, progress(state.state_details.flow_run_id)


def progress(flow_run_id: UUID | None) -> ProgressDocument:
    async def read() -> ProgressDocument:
        async with get_client() as client:
            return await read_progress(client, str(flow_run_id))

    return asyncio.run(read())


def window(fake: FakeAnthropic, subtask_id: str) -> tuple[float, float]:
    calls = fake.calls_for(f"Subtask id: {subtask_id}\n")
    assert calls, f"{subtask_id} never called the model"
    return min(c.start for c in calls), max(c.end for c in calls)


def test_no_subtask_calls_its_model_before_all_its_dependencies_ended(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.latency = 0.05
    plan = [
        st("a"),
        st("b", "a"),
        st("c", "a"),
        st("d", "a"),
        st("e", "b", "c", "d"),
        st("f"),
        st("g", "e", "f"),
    ]
    state, doc = run(*plan)
    assert state.is_completed(), state.message
    for s in plan:
        start, _ = window(fake_anthropic, s["id"])
        for dep in s["depends_on"]:
            assert start >= window(fake_anthropic, dep)[1], f"{s['id']} started before {dep} ended"
    by_id = {s.id: s for s in doc.subtasks}
    for s in plan:
        for dep in s["depends_on"]:
            assert by_id[s["id"]].started_at >= by_id[dep].ended_at  # type: ignore[operator]


def test_a_subtask_starts_when_its_own_dependencies_finish_not_in_waves(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.on("Subtask id: slow\n", delay=1.5)
    state, _ = run(
        st("slow"), st("quick"), st("after_quick", "quick"), st("end", "slow", "after_quick")
    )
    assert state.is_completed(), state.message
    # a waves executor would hold after_quick until slow (same level as quick) had finished
    assert window(fake_anthropic, "after_quick")[1] < window(fake_anthropic, "slow")[1]


def test_dependency_outputs_reach_the_dependent_as_context(fake_anthropic: FakeAnthropic) -> None:
    state, doc = run(st("a"), st("b", "a"))
    assert state.is_completed()
    prompt = fake_anthropic.calls_for("Subtask id: b\n")[0].prompt
    assert '<dependency id="a">\noutput of a\n</dependency>' in prompt
    assert doc.result == "output of join"


@pytest.mark.parametrize("gate", ["local", "prefect"])
def test_peak_in_flight_per_tier_never_exceeds_its_limit(
    fake_anthropic: FakeAnthropic, settings_env: pytest.MonkeyPatch, gate: str
) -> None:
    settings_env.setenv("MISSION_TIER_LIMITS", "fast=2")
    settings_env.setenv("MISSION_TIER_GATE", gate)
    fake_anthropic.latency = 0.2
    state, _ = run(*[st(f"p{i}") for i in range(6)], st("last", *[f"p{i}" for i in range(6)]))
    assert state.is_completed(), state.message
    fast_model = "claude-haiku-5-5"
    assert fake_anthropic.peak_in_flight[fast_model] == 2  # the limit, used in full, never passed

    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name("tier:fast").limit == 2


def test_a_failing_subtask_skips_exactly_its_descendants(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.on("Subtask id: b\n", status=400)
    state, doc = run(st("a"), st("b", "a"), st("c", "b"), st("d", "a"), st("e"), st("f", "c", "e"))
    states = {s.id: s.state for s in doc.subtasks}
    assert states == {
        "a": "Completed",
        "b": "Failed",
        "c": "Skipped",
        "d": "Completed",
        "e": "Completed",
        "f": "Skipped",
    }
    assert fake_anthropic.calls_for("Subtask id: c\n") == []
    assert state.is_failed()
    assert "1 subtask(s) failed (b), 2 skipped (c, f)" in (doc.message or "")
    assert doc.result is not None and "Missing from this answer" in doc.result
    assert "`c` (Do c): skipped: dependency b did not complete" in doc.result
    assert doc.counts.model_dump() == {
        "total": 6,
        "pending": 0,
        "running": 0,
        "completed": 3,
        "failed": 1,
        "cancelled": 0,
        "skipped": 2,
    }


def test_transient_failures_are_retried_a_bounded_number_of_times(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.on("Subtask id: flaky\n", status=500, retry_after=0.01)
    state, doc = run(st("flaky"), st("fine"))
    # (MISSION_SDK_MAX_RETRIES + 1) x (MISSION_SUBTASK_RETRIES + 1) = 3 x 2 requests, then Failed
    assert len(fake_anthropic.calls_for("Subtask id: flaky\n")) == 6
    assert {s.id: s.state for s in doc.subtasks} == {"flaky": "Failed", "fine": "Completed"}
    assert state.is_failed()


def test_a_model_error_is_retried_once_and_its_cost_is_still_recorded(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.on("Subtask id: long\n", times=1, stop_reason="max_tokens", usage=(10, 4000))
    state, doc = run(st("long"))
    assert state.is_completed(), state.message
    assert len(fake_anthropic.calls_for("Subtask id: long\n")) == 2
    # the truncated attempt's 4000 output tokens count, plus 20 each for the retry and the join
    assert doc.usage.output_tokens == 4000 + 20 + 20


def test_a_rerun_of_the_goal_run_reuses_finished_subtasks(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.on("Subtask id: b\n", times=1, status=400)
    state, doc = run(st("a"), st("b", "a"), st("c"))
    assert state.is_failed()
    run_id = state.state_details.flow_run_id
    assert run_id is not None

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run_id, Scheduled(), force=True)
        flow_run = client.read_flow_run(run_id)
    again = execute_goal_run(flow_run)
    assert again.is_completed(), again.message
    calls = {i: len(fake_anthropic.calls_for(f"Subtask id: {i}\n")) for i in "abc"}
    assert calls == {"a": 1, "b": 2, "c": 1}  # a and c came from their persisted results
    doc = progress(run_id)
    assert {s.id: s.state for s in doc.subtasks} == {"a": "Cached", "b": "Completed", "c": "Cached"}


def test_the_progress_document_has_every_field_of_the_contract(
    fake_anthropic: FakeAnthropic,
) -> None:
    state, doc = run(st("a", temperature=0.1), st("b", "a", tier="deep"))
    assert state.is_completed()
    data = doc.model_dump(mode="json")
    assert {
        "id",
        "goal",
        "state",
        "created_at",
        "updated_at",
        "prefect_url",
        "subtasks",
        "counts",
        "learned",
        "result",
        "usage",
    } <= set(data)
    assert UUID(data["id"]) == state.state_details.flow_run_id
    assert data["prefect_url"].endswith(f"/runs/flow-run/{data['id']}")
    assert set(data["subtasks"][0]) >= {
        "id",
        "title",
        "kind",
        "tier",
        "model",
        "state",
        "depends_on",
        "started_at",
        "ended_at",
        "learned",
        "error",
    }
    assert data["subtasks"][1]["depends_on"] == ["a"]
    assert data["subtasks"][1]["model"] == "claude-opus-5-5"
    assert [item["subtask"] for item in data["learned"]] == ["a", "b", "join"]
    assert data["learned"][0]["text"] == "a learned something"
    assert set(data["usage"]) >= {"input_tokens", "output_tokens", "cost_usd", "by_tier"}
    assert set(data["usage"]["by_tier"]) == {"fast", "deep"}
    assert data["counts"]["completed"] == data["counts"]["total"] == 2
    # the per-subtask temperature reached the wire
    assert fake_anthropic.calls_for("Subtask id: a\n")[0].body["temperature"] == 0.1


def test_a_failing_join_still_leaves_the_outcome_and_a_clear_reason(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.on("Write the final answer", status=400)
    state, doc = run(st("a"))
    assert state.is_failed()
    assert (doc.message or "").startswith("the join step failed")
    assert doc.result is not None and doc.result.startswith("The join step failed")
    assert {s.id: s.state for s in doc.subtasks} == {"a": "Completed"}


def test_a_goal_runs_info_lines_stay_off_a_quiet_console(
    fake_anthropic: FakeAnthropic, capfd: pytest.CaptureFixture[str]
) -> None:
    """PREFECT_LOGGING_LEVEL=WARNING (as `mission up` and `mission run` set it) keeps
    Prefect's console quiet although the run loggers are raised to INFO for the API: their
    lines propagate to the console handler, which printed each through rich."""
    import logging

    from prefect.logging.handlers import PrefectConsoleHandler

    consoles = [h for h in logging.getLogger().handlers if isinstance(h, PrefectConsoleHandler)]
    assert consoles, "Prefect's console handler is not on the root logger"
    state, _ = run(st("a"), st("b", "a"))
    assert state.is_completed(), state.message
    err = capfd.readouterr().err
    assert "attempt ok" not in err and "Finished in state" not in err, err[-2000:]
    assert all(h.level >= logging.WARNING for h in consoles)
