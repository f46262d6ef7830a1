"""A goal run that is stopped stops at once: cancelled, its plan rejected, or its budget spent.

Counted at the fake Messages server, with its timestamps: from the moment the stop is
answered (or, for a budget, from the reply that spent it) no model request starts; a request
in flight is aborted (its connection closed) within 0.5 s; the run reaches its final state
within 2 s; no subtask reads Crashed, the ones that never ran read Cancelled (or Halted).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.api.conftest import follow, plan, wait_until_called
from tests.fakes.anthropic_server import Call, FakeAnthropic
from tests.stack import Stack

pytestmark = pytest.mark.slow

ABORT_WITHIN_S = 0.5
FINAL_WITHIN_S = 2.0


def requests_started_after(fake: FakeAnthropic, moment: float) -> list[Call]:
    return [c for c in fake.calls if c.start > moment]


def final_document(stack: Stack, run_id: str, state: str) -> tuple[dict[str, Any], float]:
    """The run's document once it reads `state`, and when that was first seen."""
    docs = follow(stack, run_id, until=state, timeout=30)
    assert docs[-1]["state"] == state, docs[-1]
    return docs[-1], time.time()


def test_cancel_stops_new_requests_aborts_the_one_in_flight_and_ends_cancelled(
    stack: Stack, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.on("Subtask id: slow\n", delay=60)
    run_id = stack.submit(
        goal="cancel me mid-run",
        plan=plan(("quick", []), ("slow", []), ("after_slow", ["slow"]), ("last", ["quick"])),
    )
    wait_until_called(fake_anthropic, "Subtask id: slow\n", within_s=30)
    wait_until_called(fake_anthropic, "Subtask id: last\n", within_s=30)
    with stack.client() as client:
        answer = client.post(f"/task/{run_id}/cancel")
    answered = time.time()
    assert answer.status_code == 202, answer.text

    doc, final_at = final_document(stack, run_id, "Cancelled")
    assert final_at - answered < FINAL_WITHIN_S
    assert requests_started_after(fake_anthropic, answered) == []
    (slow,) = fake_anthropic.calls_for("Subtask id: slow\n")
    assert slow.aborted is not None, "the request in flight was left to run"
    assert slow.aborted - answered < ABORT_WITHIN_S
    states = {s["id"]: s["state"] for s in doc["subtasks"]}
    assert states == {
        "quick": "Completed",
        "last": "Completed",
        "slow": "Cancelled",  # it was running: cancelled with what it had
        "after_slow": "Cancelled",  # it never ran
    }
    assert doc["bucket"] == "cancelled"
    assert "Crashed" not in states.values()


def test_rejecting_a_plan_ends_the_run_cancelled_with_no_request_after(
    stack: Stack, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue_plan(plan(("a", []), ("b", ["a"])))
    with stack.client() as client:
        run_id = client.post(
            "/task/compound", json={"goal": "plan it, then reject it", "approve": True}
        ).json()["id"]
    follow(stack, run_id, until="Paused", timeout=30)
    with stack.client() as client:
        answer = client.post(f"/task/{run_id}/reject")
    answered = time.time()
    assert answer.status_code == 202, answer.text

    doc, final_at = final_document(stack, run_id, "Cancelled")
    assert final_at - answered < FINAL_WITHIN_S
    assert requests_started_after(fake_anthropic, answered) == []
    assert not fake_anthropic.calls_for("Subtask id: ")
    assert "rejected" in (doc["message"] or "")


def test_a_spent_budget_aborts_the_request_in_flight_and_starts_nothing_more(
    stack: Stack, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.on("Subtask id: costly\n", usage=(5_000, 100))
    fake_anthropic.on("Subtask id: slow\n", delay=60)
    run_id = stack.submit(
        goal="spend it all",
        plan=plan(("slow", []), ("costly", []), ("next", ["costly"])),
        budget={"max_tokens": 1_000},
    )
    wait_until_called(fake_anthropic, "Subtask id: slow\n", within_s=30)
    doc, final_at = final_document(stack, run_id, "Failed")
    (costly,) = fake_anthropic.calls_for("Subtask id: costly\n")
    spent = costly.end  # the reply that spent the budget left the server here

    assert final_at - spent < FINAL_WITHIN_S
    assert [c for c in requests_started_after(fake_anthropic, spent)] == []
    (slow,) = fake_anthropic.calls_for("Subtask id: slow\n")
    assert slow.aborted is not None and slow.aborted - spent < ABORT_WITHIN_S
    assert not fake_anthropic.calls_for("Subtask id: next\n")
    states = {s["id"]: s["state"] for s in doc["subtasks"]}
    assert states == {"costly": "Completed", "slow": "Halted", "next": "Halted"}
    assert doc["budget"]["exceeded"] and "budget exceeded" in doc["message"]
